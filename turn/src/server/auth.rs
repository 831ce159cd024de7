//! Long-term credentials (RFC 8489 section 9.2): static users and the TURN REST API scheme
//! (`expiry:user` usernames, password = base64(HMAC-SHA1(secret, username))), stateless nonces,
//! a per-user key cache, and the per-source rate limit on 401 answers.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::hmac::{KeyedHmac, SHA1};
use crate::{IntegrityKey, Message, attr, long_term_key_md5};

/// Cached keys kept before the cache is emptied (REST usernames are unique per grant).
const KEY_CACHE_MAX: usize = 65_536;
/// Sources tracked by the 401 limiter before idle ones are forgotten.
const LIMITER_MAX: usize = 65_536;
/// Hex digits in a nonce: issue time (8), CSPRNG bytes (8), tag (16).
pub(crate) const NONCE_LEN: usize = 32;

/// A user's MESSAGE-INTEGRITY keys, made once and reused.
#[derive(Debug, Clone)]
pub struct UserKey {
    /// The part of the username quotas count against (the user of `expiry:user`).
    pub quota_user: Box<str>,
    /// HMAC-SHA1 state for MESSAGE-INTEGRITY.
    pub sha1: IntegrityKey,
    /// HMAC-SHA256 state for MESSAGE-INTEGRITY-SHA256 (same long-term key).
    pub sha256: IntegrityKey,
    /// REST credentials stop working at this Unix time (see [`UserKey::expired`]).
    pub expires_unix: Option<u64>,
}

impl UserKey {
    /// A REST credential past its expiry. It can no longer make an allocation; one it already
    /// made lives on through Refresh, CreatePermission and ChannelBind from its own 5-tuple,
    /// until it is deleted or its user revoked ([`crate::server::Shared::revoke`]).
    pub fn expired(&self, unix_now: u64) -> bool {
        self.expires_unix.is_some_and(|t| t < unix_now)
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Not a static user and not a REST username.
    UnknownUser,
    /// A REST username whose expiry has passed.
    Expired,
    /// The HMAC did not match.
    BadIntegrity,
}

impl AuthFailure {
    /// A label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Expired => "expired",
            Self::BadIntegrity => "bad_integrity",
        }
    }
}

/// Why a request's credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No MESSAGE-INTEGRITY(-SHA256): the client has to be challenged (401).
    Unsigned,
    /// Signed, but USERNAME, REALM or NONCE is missing or the username is not UTF-8 (400).
    Incomplete,
    /// The nonce is stale, forged or another address's (438).
    StaleNonce,
    /// Unknown or expired user, or a wrong HMAC (401).
    Failed(AuthFailure),
}

/// A request whose long-term credentials checked out.
#[derive(Debug)]
pub struct Validated<'c, 'm> {
    /// The USERNAME it carried.
    pub username: &'m str,
    /// That user's cached keys.
    pub user: &'c UserKey,
    /// The key that signed it (and signs the answer: SHA-256 if it used -SHA256).
    pub integrity: &'c IntegrityKey,
}

/// The credential store: static users, an optional REST secret, and the key cache.
#[derive(Debug)]
pub struct Credentials {
    realm: String,
    users: HashMap<String, String>,
    rest_secret: Option<KeyedHmac<5>>,
    /// Username to its index in `keys`: one hash per lookup on a hit.
    cache: HashMap<Box<str>, usize>,
    keys: Vec<UserKey>,
}

impl Credentials {
    /// Static `users` (name to password) and, for REST credentials, the shared secret.
    pub fn new(realm: &str, users: HashMap<String, String>, rest_secret: Option<&str>) -> Self {
        Self {
            realm: realm.to_owned(),
            users,
            rest_secret: rest_secret.map(|s| KeyedHmac::new(SHA1, s.as_bytes())),
            cache: HashMap::new(),
            keys: Vec::new(),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Checks a request's long-term credentials (RFC 8489 section 9.2.4) in the order the RFC
    /// gives: integrity present, USERNAME/REALM/NONCE present, nonce valid for `ip` at
    /// `unix_now`, user known, then the HMAC with the user's cached key. Whether an expired
    /// REST credential may still act is the caller's to judge ([`UserKey::expired`]).
    pub fn validate<'c, 'm>(
        &'c mut self,
        nonces: &Nonces,
        msg: &Message<'m>,
        unix_now: u64,
        ip: IpAddr,
    ) -> Result<Validated<'c, 'm>, Rejection> {
        let sha256 = msg.get(attr::MESSAGE_INTEGRITY_SHA256).is_some();
        if !sha256 && msg.get(attr::MESSAGE_INTEGRITY).is_none() {
            return Err(Rejection::Unsigned);
        }
        let (Some(username), Some(_realm), Some(nonce)) = (
            msg.value(attr::USERNAME),
            msg.value(attr::REALM),
            msg.value(attr::NONCE),
        ) else {
            return Err(Rejection::Incomplete);
        };
        if !nonces.valid(nonce, unix_now, ip) {
            return Err(Rejection::StaleNonce);
        }
        let username = std::str::from_utf8(username).map_err(|_| Rejection::Incomplete)?;
        let user = self.key(username).map_err(Rejection::Failed)?;
        let integrity = if sha256 { &user.sha256 } else { &user.sha1 };
        if msg.integrity_ok(integrity) != Some(true) {
            return Err(Rejection::Failed(AuthFailure::BadIntegrity));
        }
        Ok(Validated {
            username,
            user,
            integrity,
        })
    }

    /// The keys for `username`, from the cache when possible.
    pub fn key(&mut self, username: &str) -> Result<&UserKey, AuthFailure> {
        let idx = match self.cache.get(username) {
            Some(&idx) => idx,
            None => {
                let key = self.derive(username)?;
                if self.keys.len() >= KEY_CACHE_MAX {
                    self.cache.clear();
                    self.keys.clear();
                }
                self.keys.push(key);
                self.cache.insert(username.into(), self.keys.len() - 1);
                self.keys.len() - 1
            }
        };
        self.keys.get(idx).ok_or(AuthFailure::UnknownUser)
    }

    fn derive(&self, username: &str) -> Result<UserKey, AuthFailure> {
        let (password, quota_user, expires_unix) = match self.users.get(username) {
            Some(p) => (p.clone(), username, None),
            None => {
                let secret = self.rest_secret.as_ref().ok_or(AuthFailure::UnknownUser)?;
                let (expiry, user) = match username.split_once(':') {
                    Some((e, u)) => (e, u),
                    None => (username, ""),
                };
                let expiry: u64 = expiry.parse().map_err(|_| AuthFailure::UnknownUser)?;
                (rest_password(secret, username), user, Some(expiry))
            }
        };
        let long_term = long_term_key_md5(username, &self.realm, &password);
        Ok(UserKey {
            quota_user: quota_user.into(),
            sha1: IntegrityKey::sha1(&long_term),
            sha256: IntegrityKey::sha256(&long_term),
            expires_unix,
        })
    }
}

/// The TURN REST password for `username`: base64(HMAC-SHA1(secret, username)).
fn rest_password(secret: &KeyedHmac<5>, username: &str) -> String {
    let mut tag = [0u8; 20];
    secret.tag(&[username.as_bytes()], &mut tag);
    base64_standard(&tag)
}

/// The TURN REST password for `username` under `secret` (what an application server hands out).
pub fn rest_credential(secret: &str, username: &str) -> String {
    rest_password(&KeyedHmac::new(SHA1, secret.as_bytes()), username)
}

fn base64_standard(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Stateless nonces: issue time, CSPRNG bytes, and a keyed tag over both and the client's IP,
/// all hex. Any worker can check a nonce another issued; a nonce from another IP is refused.
#[derive(Debug, Clone)]
pub struct Nonces {
    tag_key: std::collections::hash_map::RandomState,
    lifetime: Duration,
}

impl Nonces {
    /// Nonces valid for `lifetime`, tagged with keys drawn from the OS when this is made.
    pub fn new(lifetime: Duration) -> Self {
        Self {
            tag_key: std::collections::hash_map::RandomState::new(),
            lifetime,
        }
    }

    fn tag(&self, issued: u32, random: u32, ip: IpAddr) -> u64 {
        let mut h = self.tag_key.build_hasher();
        h.write_u32(issued);
        h.write_u32(random);
        match ip {
            IpAddr::V4(v4) => h.write(&v4.octets()),
            IpAddr::V6(v6) => h.write(&v6.octets()),
        }
        h.finish()
    }

    /// A fresh nonce for `ip`, issued at Unix time `unix_now` with `random` from a CSPRNG.
    pub fn issue(&self, unix_now: u64, random: u32, ip: IpAddr) -> [u8; NONCE_LEN] {
        let issued = unix_now as u32;
        let mut out = [0u8; NONCE_LEN];
        hex_into(&issued.to_be_bytes(), &mut out[0..8]);
        hex_into(&random.to_be_bytes(), &mut out[8..16]);
        hex_into(
            &self.tag(issued, random, ip).to_be_bytes(),
            &mut out[16..32],
        );
        out
    }

    /// Whether `nonce` was issued by us, to `ip`, and is still within its lifetime.
    pub fn valid(&self, nonce: &[u8], unix_now: u64, ip: IpAddr) -> bool {
        let (Some(issued), Some(random), Some(tag)) = (
            nonce.get(0..8).and_then(unhex::<4>),
            nonce.get(8..16).and_then(unhex::<4>),
            nonce.get(16..32).and_then(unhex::<8>),
        ) else {
            return false;
        };
        let issued = u32::from_be_bytes(issued);
        let random = u32::from_be_bytes(random);
        let fresh = (unix_now as u32).wrapping_sub(issued) as u64 <= self.lifetime.as_secs();
        nonce.len() == NONCE_LEN && fresh && self.tag(issued, random, ip).to_be_bytes() == tag
    }
}

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (digit(*s.get(2 * i)?)? << 4) | digit(*s.get(2 * i + 1)?)?;
    }
    Some(out)
}

/// A token bucket per source IP for 401 answers, so the relay cannot be used to reflect
/// traffic at someone who never authenticates.
#[derive(Debug)]
pub struct UnauthorizedLimiter {
    per_second: f64,
    burst: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl UnauthorizedLimiter {
    /// `per_second` answers per source, bursts of twice that.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(per_second.max(1)) * 2.0,
            buckets: HashMap::new(),
        }
    }

    /// Whether `ip` may get another 401 now (and takes a token if so).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= LIMITER_MAX && !self.buckets.contains_key(&ip) {
            self.forget_idle(now);
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops sources whose buckets have refilled (they carry no state worth keeping).
    pub fn forget_idle(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(self.burst / self.per_second.max(1.0));
        self.buckets
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < refill);
        if self.buckets.len() >= LIMITER_MAX {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64_standard(b""), "");
        assert_eq!(base64_standard(b"f"), "Zg==");
        assert_eq!(base64_standard(b"fo"), "Zm8=");
        assert_eq!(base64_standard(b"foo"), "Zm9v");
        assert_eq!(base64_standard(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn rest_password_matches_coturns_scheme() {
        // echo -n "1700000000:alice" | openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(
            rest_credential("secret", "1700000000:alice"),
            "d8soP47RbdIKLDUOpnJPVQyq5Ts="
        );
    }

    #[test]
    fn nonces_verify_only_for_their_ip_and_lifetime() {
        let nonces = Nonces::new(Duration::from_secs(600));
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let n = nonces.issue(1_000_000, 42, ip);
        assert!(nonces.valid(&n, 1_000_000, ip));
        assert!(nonces.valid(&n, 1_000_600, ip));
        assert!(!nonces.valid(&n, 1_000_601, ip), "stale");
        assert!(!nonces.valid(&n, 1_000_000, "192.0.2.8".parse().expect("ip")));
        let mut forged = n;
        forged[31] = if forged[31] == b'0' { b'1' } else { b'0' };
        assert!(!nonces.valid(&forged, 1_000_000, ip));
        assert!(!nonces.valid(b"short", 1_000_000, ip));
    }

    #[test]
    fn limiter_allows_a_burst_then_the_rate() {
        let mut l = UnauthorizedLimiter::new(5);
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let t0 = Instant::now();
        let burst = (0..100).filter(|_| l.allow(ip, t0)).count();
        assert_eq!(burst, 10);
        assert!(l.allow(ip, t0 + Duration::from_millis(200)));
        assert!(!l.allow(ip, t0 + Duration::from_millis(200)));
        assert!(
            l.allow("192.0.2.8".parse().expect("ip"), t0),
            "other sources unaffected"
        );
    }
}
