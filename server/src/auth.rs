//! Access tokens: JWTs signed with HS256 by an API key's secret.
//!
//! The header must say `alg: HS256` (anything else, `none` included, is refused); `iss` names the
//! API key; the signature is checked in constant time before any claim is trusted.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

/// A source a token may restrict publishing to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceGrant {
    /// A camera.
    Camera,
    /// A microphone.
    Microphone,
    /// A shared screen.
    Screen,
    /// A shared screen's audio.
    ScreenAudio,
}

impl SourceGrant {
    /// The core's name for it.
    pub fn source(self) -> tern_sfu::TrackSource {
        match self {
            SourceGrant::Camera => tern_sfu::TrackSource::Camera,
            SourceGrant::Microphone => tern_sfu::TrackSource::Microphone,
            SourceGrant::Screen => tern_sfu::TrackSource::Screen,
            SourceGrant::ScreenAudio => tern_sfu::TrackSource::ScreenAudio,
        }
    }
}

/// What a token allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Grants {
    /// May join the room named in the token.
    pub join: bool,
    /// May publish tracks.
    pub publish: bool,
    /// May subscribe to tracks.
    pub subscribe: bool,
    /// May send data messages (over the data channels: see docs/signaling.md).
    pub publish_data: bool,
    /// With `publish`: only these sources (absent: any). Each published m-line must then say
    /// it is one of them, of its kind (`camera` and `screen` are video).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_sources: Option<Vec<SourceGrant>>,
    /// May use the REST API (for the token's room, or every room if the token names none).
    pub admin: bool,
    /// May start and stop recordings of its room from signaling (the demo's Record button).
    pub record: bool,
    /// May start and stop live broadcasts of its room from signaling (the demo's Go live
    /// button).
    pub broadcast: bool,
}

/// The claims of a tern access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed the token.
    pub iss: String,
    /// The participant's identity.
    pub sub: String,
    /// Display name (defaults to the identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The room the token is for. Required to join; optional for admin tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// What the token allows.
    #[serde(default)]
    pub grants: Grants,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Why a token was refused. Each has a stable code used by signaling and the REST API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token at all.
    #[error("an access token is required")]
    Missing,
    /// Not three base64url parts of JSON.
    #[error("the access token is malformed")]
    Malformed,
    /// `alg` is not HS256 (this includes `none`).
    #[error("the token's algorithm {0:?} is not accepted; use HS256")]
    UnsupportedAlgorithm(String),
    /// `iss` names no configured API key.
    #[error("the token's API key is unknown")]
    UnknownKey,
    /// The signature does not match.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The token is for another room.
    #[error("the token is not for room {0:?}")]
    WrongRoom(String),
    /// The grants do not allow this.
    #[error("the token does not grant {0}")]
    NotGranted(&'static str),
}

impl AuthError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Malformed => "token_malformed",
            AuthError::UnsupportedAlgorithm(_) => "token_algorithm",
            AuthError::UnknownKey => "token_unknown_key",
            AuthError::BadSignature => "token_signature",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::WrongRoom(_) => "token_wrong_room",
            AuthError::NotGranted(_) => "permission_denied",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Verifies and mints tokens with the configured API keys.
#[derive(Clone)]
pub struct Auth {
    keys: BTreeMap<String, hmac::Key>,
}

impl Auth {
    /// An authority over these API keys (key to secret).
    pub fn new(keys: &BTreeMap<String, String>) -> Self {
        let keys = keys
            .iter()
            .map(|(k, s)| (k.clone(), hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes())))
            .collect();
        Self { keys }
    }

    /// Checks signature and validity times; returns the claims.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "HS256" {
            return Err(AuthError::UnsupportedAlgorithm(header.alg));
        }
        let claims: Claims = decode_json(p)?;
        let key = self.keys.get(&claims.iss).ok_or(AuthError::UnknownKey)?;
        let signature = B64.decode(s).map_err(|_| AuthError::Malformed)?;
        let signed = &token[..h.len() + 1 + p.len()];
        hmac::verify(key, signed.as_bytes(), &signature).map_err(|_| AuthError::BadSignature)?;
        let now = unix_seconds(now);
        if claims.exp <= now {
            return Err(AuthError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(AuthError::NotYetValid);
        }
        Ok(claims)
    }

    /// Signs `claims` with the secret of `claims.iss`.
    pub fn mint(&self, claims: &Claims) -> Result<String, AuthError> {
        let key = self.keys.get(&claims.iss).ok_or(AuthError::UnknownKey)?;
        Ok(sign(key, claims))
    }
}

/// The shortest API secret tern accepts: 32 bytes, the size of the HS256 key (RFC 7518 section
/// 3.2 requires a key of at least the hash's size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Refuses a secret too short to sign tokens safely, naming its key.
pub fn check_secret(key: &str, secret: &str) -> Result<(), String> {
    if secret.len() >= MIN_SECRET_BYTES {
        return Ok(());
    }
    Err(format!(
        "the secret of API key {key:?} is {} bytes; tokens signed with it can be forged by \
         guessing it. Use at least {MIN_SECRET_BYTES} random bytes, for example \
         `openssl rand -hex 32`",
        secret.len()
    ))
}

/// Signs claims with a raw secret (for `tern token`).
pub fn mint_with_secret(secret: &str, claims: &Claims) -> String {
    sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        claims,
    )
}

fn sign(key: &hmac::Key, claims: &Claims) -> String {
    let header = Header {
        alg: "HS256".into(),
        typ: Some("JWT".into()),
    };
    let encode = |v: &[u8]| B64.encode(v);
    let h = encode(&serde_json::to_vec(&header).unwrap_or_default());
    let p = encode(&serde_json::to_vec(claims).unwrap_or_default());
    let signed = format!("{h}.{p}");
    let tag = hmac::sign(key, signed.as_bytes());
    format!("{signed}.{}", encode(tag.as_ref()))
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = B64.decode(part).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A random string of `n` bytes of CSPRNG output, base64url-encoded.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // aws-lc's CSPRNG only fails if the OS has no entropy source, which tern cannot run without.
    aws_lc_rs::rand::fill(&mut bytes).expect("the OS CSPRNG is available");
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn auth() -> Auth {
        Auth::new(&BTreeMap::from([("k1".to_string(), "s3cret".to_string())]))
    }

    fn claims(now: SystemTime) -> Claims {
        Claims {
            iss: "k1".into(),
            sub: "alice".into(),
            name: None,
            room: Some("demo".into()),
            grants: Grants {
                join: true,
                ..Default::default()
            },
            exp: unix_seconds(now) + 60,
            nbf: None,
            iat: None,
        }
    }

    #[test]
    fn a_minted_token_verifies() {
        let now = SystemTime::now();
        let token = auth().mint(&claims(now)).expect("mints");
        assert_eq!(auth().verify(&token, now), Ok(claims(now)));
    }

    #[test]
    fn refuses_each_kind_of_bad_token() {
        let now = SystemTime::now();
        let a = auth();
        let good = a.mint(&claims(now)).expect("mints");
        assert_eq!(a.verify("", now), Err(AuthError::Missing));
        assert_eq!(a.verify("a.b", now), Err(AuthError::Malformed));
        // Change the first character of the signature (every bit of it is significant).
        let sig_start = good.rfind('.').expect("three parts") + 1;
        let mut tampered = good.clone();
        let swapped = if good[sig_start..].starts_with('A') {
            "B"
        } else {
            "A"
        };
        tampered.replace_range(sig_start..sig_start + 1, swapped);
        assert_eq!(a.verify(&tampered, now), Err(AuthError::BadSignature));
        let other = mint_with_secret("not-the-secret", &claims(now));
        assert_eq!(a.verify(&other, now), Err(AuthError::BadSignature));
        let expired = Claims {
            exp: unix_seconds(now) - 1,
            ..claims(now)
        };
        assert_eq!(
            a.verify(&a.mint(&expired).expect("mints"), now),
            Err(AuthError::Expired)
        );
        let early = Claims {
            nbf: Some(unix_seconds(now + Duration::from_secs(60))),
            ..claims(now)
        };
        assert_eq!(
            a.verify(&a.mint(&early).expect("mints"), now),
            Err(AuthError::NotYetValid)
        );
        let unknown = Claims {
            iss: "k2".into(),
            ..claims(now)
        };
        assert_eq!(
            a.verify(&mint_with_secret("s3cret", &unknown), now),
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn alg_none_is_refused_even_without_signature() {
        let now = SystemTime::now();
        let h = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let p = B64.encode(serde_json::to_vec(&claims(now)).expect("json"));
        let token = format!("{h}.{p}.");
        assert_eq!(
            auth().verify(&token, now),
            Err(AuthError::UnsupportedAlgorithm("none".into()))
        );
    }
}
