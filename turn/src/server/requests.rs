//! Requests: Binding without credentials; Allocate, Refresh, CreatePermission and ChannelBind
//! behind long-term credentials (RFC 8489 section 9.2.4, RFC 8656 sections 7-12).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use super::alloc::{Allocation, Bucket, CHANNEL_LIFETIME, PERMISSION_LIFETIME};
use super::auth::Rejection;
use super::respond::{Reply, none};
use super::{Action, ClientId, DropReason, Host, Server};
use crate::{CHANNEL_MAX, CHANNEL_MIN, Class, IntegrityKey, Message, Method, attr};

/// Who sent an authenticated request.
struct Authed {
    username: Box<str>,
    quota_user: Box<str>,
    key: IntegrityKey,
}

/// An authenticated request on its way through a method handler.
#[derive(Clone, Copy)]
struct Ctx<'r, 'm> {
    now: Instant,
    client: ClientId,
    msg: &'r Message<'m>,
    authed: &'r Authed,
}

/// A request's outcome before it is written: an error code or a drop.
enum Refusal {
    Code(u16),
    Drop(DropReason),
}

impl From<u16> for Refusal {
    fn from(code: u16) -> Self {
        Self::Code(code)
    }
}

impl Server {
    pub(super) fn client_stun<'a>(
        &mut self,
        now: Instant,
        host: &mut impl Host,
        client: ClientId,
        input: &'a [u8],
        out: &mut [u8],
    ) -> Action<'a> {
        let msg = match Message::parse(input) {
            Ok(m) => m,
            Err(_) => return self.malformed(now, host, client, input, out),
        };
        if msg.fingerprint_ok() == Some(false) {
            return Action::Drop(DropReason::BadFingerprint);
        }
        match msg.class() {
            Class::Request => self.request(now, host, client, &msg, out),
            Class::Indication if msg.method() == Method::SEND => {
                self.send_indication(now, client, &msg)
            }
            _ => Action::Drop(DropReason::Unexpected),
        }
    }

    /// A request whose attributes do not parse cannot be authenticated: like coturn, answer a
    /// non-Binding request with a 401 challenge; anything else is dropped.
    fn malformed<'a>(
        &mut self,
        now: Instant,
        host: &mut impl Host,
        client: ClientId,
        input: &[u8],
        out: &mut [u8],
    ) -> Action<'a> {
        let header_ok = input.len() >= 20
            && input.len() == 20 + usize::from(u16::from_be_bytes([input[2], input[3]]))
            && input[4..8] == crate::MAGIC_COOKIE.to_be_bytes();
        let t = u16::from_be_bytes([input[0], *input.get(1).unwrap_or(&0)]);
        let is_request = t & 0x0110 == 0;
        let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
        if !header_ok || !is_request || method == Method::BINDING.0 {
            return Action::Drop(DropReason::Malformed);
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&input[8..20]);
        let config = self.config.clone();
        let reply = Reply {
            method: Method(method),
            transaction_id: tid,
            key: None,
            fingerprint: false,
            software: config.software.as_deref(),
        };
        self.challenge(now, host, client, &reply, 401, out)
    }

    fn request<'a>(
        &mut self,
        now: Instant,
        host: &mut impl Host,
        client: ClientId,
        msg: &Message<'_>,
        out: &mut [u8],
    ) -> Action<'a> {
        let config = self.config.clone();
        let mut reply = Reply::to(msg, config.software.as_deref());
        let unknown = msg.unknown_required();
        if msg.method() == Method::BINDING {
            if let Some(unknown) = unknown {
                return self.unknown_attribute(&reply, out, unknown);
            }
            return self.written(reply.success(out, |w| {
                w.xor_address(attr::XOR_MAPPED_ADDRESS, client.remote)
            }));
        }
        if !matches!(
            msg.method(),
            Method::ALLOCATE | Method::REFRESH | Method::CREATE_PERMISSION | Method::CHANNEL_BIND
        ) {
            return self.error(&reply, out, 400, none);
        }
        let authed = match self.authenticate(now, client, msg) {
            Ok(a) => a,
            Err(Refusal::Code(code @ (401 | 438))) => {
                return self.challenge(now, host, client, &reply, code, out);
            }
            Err(Refusal::Code(code)) => return self.error(&reply, out, code, none),
            Err(Refusal::Drop(r)) => return Action::Drop(r),
        };
        reply.key = Some(&authed.key);
        // Unknown attributes are checked once the request is authenticated (RFC 5389 7.3.1).
        if let Some(unknown) = unknown {
            return self.unknown_attribute(&reply, out, unknown);
        }
        let cx = Ctx {
            now,
            client,
            msg,
            authed: &authed,
        };
        let outcome = match msg.method() {
            Method::ALLOCATE => self.allocate(&cx, host, &reply, out),
            Method::REFRESH => self.refresh(&cx, host, &reply, out),
            Method::CREATE_PERMISSION => self.create_permission(&cx),
            _ => self.channel_bind(&cx),
        };
        match outcome {
            Ok(Some(n)) => Action::Reply(n),
            Ok(None) => self.written(reply.success(out, none)),
            Err(Refusal::Code(code)) => self.error(&reply, out, code, none),
            Err(Refusal::Drop(r)) => Action::Drop(r),
        }
    }

    fn authenticate(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'_>,
    ) -> Result<Authed, Refusal> {
        let unix = self.unix(now);
        let ip = client.remote.ip();
        // The allocation this 5-tuple holds, if it was made with the same username.
        let own = self
            .allocations
            .of_client(&client)
            .and_then(|i| self.allocations.get(i))
            .is_some_and(|a| Some(a.username.as_bytes()) == msg.value(attr::USERNAME));
        match self
            .credentials
            .validate(&self.shared.nonces, msg, unix, ip)
        {
            Ok(v) if v.user.expired(unix) && !own => {
                self.auth_failure(super::auth::AuthFailure::Expired.as_str());
                Err(401.into())
            }
            Ok(v) if self.shared.is_revoked(&v.user.quota_user, unix) => {
                self.auth_failure("revoked");
                Err(401.into())
            }
            Ok(v) => Ok(Authed {
                username: v.username.into(),
                quota_user: v.user.quota_user.clone(),
                key: v.integrity.clone(),
            }),
            Err(Rejection::Unsigned) => Err(401.into()),
            Err(Rejection::Incomplete) => Err(400.into()),
            Err(Rejection::StaleNonce) => {
                self.auth_failure("stale_nonce");
                Err(438.into())
            }
            Err(Rejection::Failed(f)) => {
                self.auth_failure(f.as_str());
                Err(401.into())
            }
        }
    }

    fn unknown_attribute<'a>(
        &mut self,
        reply: &Reply<'_>,
        out: &mut [u8],
        kind: u16,
    ) -> Action<'a> {
        self.error(reply, out, 420, |w| {
            w.attr(attr::UNKNOWN_ATTRIBUTES, &kind.to_be_bytes())
        })
    }

    fn auth_failure(&mut self, reason: &'static str) {
        *self.stats.auth_failures.entry(reason).or_default() += 1;
    }

    /// 401 or 438 with REALM and a fresh NONCE. Over UDP these are rate-limited per source
    /// address, since a forged source would turn them into reflected traffic; a stream client's
    /// address was proven by its handshake, and it would not retransmit a dropped answer.
    fn challenge<'a>(
        &mut self,
        now: Instant,
        host: &mut impl Host,
        client: ClientId,
        reply: &Reply<'_>,
        code: u16,
        out: &mut [u8],
    ) -> Action<'a> {
        if !client.transport.is_stream() && !self.limiter.allow(client.remote.ip(), now) {
            return Action::Drop(DropReason::RateLimited);
        }
        let mut random = [0u8; 4];
        host.random(&mut random);
        let nonce = self.shared.nonces.issue(
            self.unix(now),
            u32::from_be_bytes(random),
            client.remote.ip(),
        );
        let config = self.config.clone();
        self.error(reply, out, code, |w| {
            w.attr(attr::REALM, config.realm.as_bytes())?;
            w.attr(attr::NONCE, &nonce)
        })
    }

    fn error<'a>(
        &mut self,
        reply: &Reply<'_>,
        out: &mut [u8],
        code: u16,
        body: impl FnOnce(&mut crate::MessageWriter<'_>) -> Result<(), crate::WriteError>,
    ) -> Action<'a> {
        *self.stats.errors.entry(code).or_default() += 1;
        self.written(reply.error(out, code, body))
    }

    fn written<'a>(&self, n: Option<usize>) -> Action<'a> {
        n.map_or(Action::Drop(DropReason::TooLarge), Action::Reply)
    }

    /// The lifetime to grant: the request's, within [default, max] (RFC 8656 section 7.2).
    fn lifetime(&self, msg: &Message<'_>) -> Duration {
        let asked = msg.value(attr::LIFETIME).and_then(attr::decode_u32);
        let asked = asked.map_or(self.config.default_lifetime, |s| {
            Duration::from_secs(u64::from(s))
        });
        asked.clamp(self.config.default_lifetime, self.config.max_lifetime)
    }

    /// The allocation of `client`, if `authed` owns it.
    fn owned(&self, client: ClientId, authed: &Authed) -> Result<u32, Refusal> {
        let idx = self
            .allocations
            .of_client(&client)
            .ok_or(Refusal::Code(437))?;
        match self.allocations.get(idx) {
            Some(a) if a.username == authed.username => Ok(idx),
            Some(_) => Err(441.into()),
            None => Err(437.into()),
        }
    }

    fn allocate(
        &mut self,
        cx: &Ctx<'_, '_>,
        host: &mut impl Host,
        reply: &Reply<'_>,
        out: &mut [u8],
    ) -> Result<Option<usize>, Refusal> {
        let Ctx {
            now,
            client,
            msg,
            authed,
        } = *cx;
        if let Some(idx) = self.allocations.of_client(&client) {
            let a = self.allocations.get(idx).ok_or(Refusal::Code(437))?;
            if a.transaction != msg.transaction_id() || a.username != authed.username {
                return Err(437.into());
            }
            // A retransmission: answer it again.
            let (relays, left) = (a.relays, a.expires.saturating_duration_since(now));
            return Ok(self.allocate_success(reply, out, client, relays, left, false));
        }
        match msg.value(attr::REQUESTED_TRANSPORT) {
            None => return Err(400.into()),
            Some([17, _, _, _]) => {}
            Some(v) if v.len() == 4 => return Err(442.into()),
            Some(_) => return Err(400.into()),
        }
        if msg.get(attr::DONT_FRAGMENT).is_some() {
            // Relay sockets cannot set DF, so the attribute counts as unknown (RFC 8656 7.2).
            let n = reply.error(out, 420, |w| {
                w.attr(attr::UNKNOWN_ATTRIBUTES, &attr::DONT_FRAGMENT.to_be_bytes())
            });
            return n.map(Some).ok_or(Refusal::Drop(DropReason::TooLarge));
        }
        let requested = msg.value(attr::REQUESTED_ADDRESS_FAMILY);
        let additional = msg.value(attr::ADDITIONAL_ADDRESS_FAMILY);
        let even = msg.value(attr::EVEN_PORT);
        let token = msg.get(attr::RESERVATION_TOKEN).is_some();
        if (requested.is_some() && additional.is_some())
            || (token && (even.is_some() || requested.is_some()))
        {
            return Err(400.into());
        }
        if token || even.is_some_and(|v| v.first().is_some_and(|b| b & 0x80 != 0)) {
            // Port reservations are not offered, so no token is valid (RFC 8656 7.2).
            return Err(508.into());
        }
        let (want_v4, want_v6) = match (requested, additional) {
            (Some([1, 0, 0, 0]), _) | (None, None) => (true, false),
            (Some([2, 0, 0, 0]), _) => (false, true),
            (None, Some([2, 0, 0, 0])) => (true, true),
            (Some(_), _) => return Err(440.into()),
            (None, Some(_)) => return Err(400.into()),
        };
        let v6_missing = want_v6 && self.config.relay_v6.is_none();
        if (want_v4 && self.config.relay_v4.is_none()) || (v6_missing && !want_v4) {
            return Err(440.into());
        }
        if !self.shared.try_reserve(&authed.quota_user, &self.config) {
            return Err(486.into());
        }
        let Some(relays) = self.open_relays(host, want_v4, want_v6 && !v6_missing, even.is_some())
        else {
            self.shared.release(&authed.quota_user);
            return Err(508.into());
        };
        let lifetime = self.lifetime(msg);
        let rate = self.config.bandwidth_bytes_per_sec as f64;
        self.allocations.insert(Allocation {
            client,
            relays,
            username: authed.username.clone(),
            quota_user: authed.quota_user.clone(),
            transaction: msg.transaction_id(),
            expires: now + lifetime,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            channel_of_peer: HashMap::new(),
            bucket: Bucket::new(now, rate),
        });
        self.stats.allocations = self.allocations.len() as u64;
        Ok(self.allocate_success(reply, out, client, relays, lifetime, v6_missing))
    }

    fn allocate_success(
        &self,
        reply: &Reply<'_>,
        out: &mut [u8],
        client: ClientId,
        relays: [Option<SocketAddr>; 2],
        lifetime: Duration,
        v6_missing: bool,
    ) -> Option<usize> {
        let public = [self.config.relay_v4, self.config.relay_v6];
        reply.success(out, |w| {
            for (relay, ip) in relays.iter().zip(public) {
                if let (Some(r), Some(ip)) = (relay, ip) {
                    w.xor_address(
                        attr::XOR_RELAYED_ADDRESS,
                        SocketAddr::new(ip.public, r.port()),
                    )?;
                }
            }
            w.u32(attr::LIFETIME, lifetime.as_secs() as u32)?;
            w.xor_address(attr::XOR_MAPPED_ADDRESS, client.remote)?;
            if v6_missing {
                // ADDRESS-ERROR-CODE: IPv6, 440 (RFC 8656 section 18.9).
                let mut v = [0u8; 4 + 28];
                v[0] = attr::FAMILY_IPV6;
                v[2] = 4;
                v[3] = 40;
                v[4..].copy_from_slice(b"Address Family not Supported");
                w.attr(attr::ADDRESS_ERROR_CODE, &v)?;
            }
            Ok(())
        })
    }

    /// Opens relay sockets at random free ports; `None` when the pool is exhausted.
    fn open_relays(
        &mut self,
        host: &mut impl Host,
        v4: bool,
        v6: bool,
        even: bool,
    ) -> Option<[Option<SocketAddr>; 2]> {
        let ips = [self.config.relay_v4, self.config.relay_v6];
        let mut relays = [None, None];
        for (i, wanted) in [v4, v6].into_iter().enumerate() {
            let Some(ip) = ips[i].filter(|_| wanted) else {
                continue;
            };
            match self.open_relay(host, ip.bind, even) {
                Some(addr) => relays[i] = Some(addr),
                None => {
                    relays.iter().flatten().for_each(|r| host.close_relay(*r));
                    return None;
                }
            }
        }
        Some(relays)
    }

    fn open_relay(
        &mut self,
        host: &mut impl Host,
        ip: std::net::IpAddr,
        even: bool,
    ) -> Option<SocketAddr> {
        const BIND_ATTEMPTS: usize = 32;
        let (min, max) = (
            u32::from(self.config.min_port),
            u32::from(self.config.max_port),
        );
        let span = max.checked_sub(min)? + 1;
        let mut r = [0u8; 4];
        host.random(&mut r);
        let start = u32::from_be_bytes(r) % span;
        let mut attempts = 0;
        for step in 0..span {
            let port = (min + (start + step) % span) as u16;
            let addr = SocketAddr::new(ip, port);
            if (even && port % 2 == 1) || self.allocations.relay_in_use(&addr) {
                continue;
            }
            if host.open_relay(addr) {
                return Some(addr);
            }
            attempts += 1;
            if attempts == BIND_ATTEMPTS {
                break;
            }
        }
        None
    }

    fn refresh(
        &mut self,
        cx: &Ctx<'_, '_>,
        host: &mut impl Host,
        reply: &Reply<'_>,
        out: &mut [u8],
    ) -> Result<Option<usize>, Refusal> {
        let Ctx { now, msg, .. } = *cx;
        let idx = self.owned(cx.client, cx.authed)?;
        if let Some(family) = msg.value(attr::REQUESTED_ADDRESS_FAMILY) {
            let a = self.allocations.get(idx).ok_or(Refusal::Code(437))?;
            let has = match family {
                [1, 0, 0, 0] => a.relays[0].is_some(),
                [2, 0, 0, 0] => a.relays[1].is_some(),
                _ => false,
            };
            if !has {
                return Err(443.into());
            }
        }
        let asked = msg.value(attr::LIFETIME).and_then(attr::decode_u32);
        let lifetime = if asked == Some(0) {
            self.delete_allocation(host, idx);
            Duration::ZERO
        } else {
            let lifetime = self.lifetime(msg);
            if let Some(a) = self.allocations.get_mut(idx) {
                a.expires = now + lifetime;
            }
            lifetime
        };
        let n = reply.success(out, |w| w.u32(attr::LIFETIME, lifetime.as_secs() as u32));
        n.map(Some).ok_or(Refusal::Drop(DropReason::TooLarge))
    }

    /// Checks a peer for this allocation: family (443) and policy (403). With `port`, the peer
    /// is an endpoint (ChannelBind) and its port is judged too; a permission covers every port.
    fn check_peer(&mut self, idx: u32, peer: SocketAddr, port: bool) -> Result<(), Refusal> {
        let a = self.allocations.get(idx).ok_or(Refusal::Code(437))?;
        if a.relay_for(peer).is_none() {
            return Err(443.into());
        }
        let policy = &self.config.peer_policy;
        let verdict = if port {
            policy.check_endpoint(peer)
        } else {
            policy.check(peer.ip())
        };
        if let Err(reason) = verdict {
            *self.stats.refused_peers.entry(reason).or_default() += 1;
            return Err(403.into());
        }
        Ok(())
    }

    fn create_permission(&mut self, cx: &Ctx<'_, '_>) -> Result<Option<usize>, Refusal> {
        let Ctx { now, msg, .. } = *cx;
        let idx = self.owned(cx.client, cx.authed)?;
        let tid = msg.transaction_id();
        let mut peers = 0;
        for a in msg
            .counted_attrs()
            .filter(|a| a.kind == attr::XOR_PEER_ADDRESS)
        {
            let peer = attr::decode_xor_address(a.value, &tid).ok_or(Refusal::Code(400))?;
            self.check_peer(idx, peer, false)?;
            peers += 1;
        }
        if peers == 0 {
            return Err(400.into());
        }
        let max = self.config.max_permissions;
        let a = self.allocations.get_mut(idx).ok_or(Refusal::Code(437))?;
        for raw in msg
            .counted_attrs()
            .filter(|a| a.kind == attr::XOR_PEER_ADDRESS)
        {
            if let Some(peer) = attr::decode_xor_address(raw.value, &tid) {
                if a.permissions.len() >= max && !a.permissions.contains_key(&peer.ip()) {
                    return Err(508.into());
                }
                a.permit(peer.ip(), now + PERMISSION_LIFETIME);
            }
        }
        Ok(None)
    }

    fn channel_bind(&mut self, cx: &Ctx<'_, '_>) -> Result<Option<usize>, Refusal> {
        let Ctx { now, msg, .. } = *cx;
        let idx = self.owned(cx.client, cx.authed)?;
        let channel = match msg.value(attr::CHANNEL_NUMBER) {
            Some([a, b, 0, 0]) => u16::from_be_bytes([*a, *b]),
            _ => return Err(400.into()),
        };
        if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&channel) {
            return Err(400.into());
        }
        let peer = msg
            .xor_address(attr::XOR_PEER_ADDRESS)
            .ok_or(Refusal::Code(400))?;
        if peer.port() == 0 {
            return Err(400.into()); // no datagram can reach port 0
        }
        self.check_peer(idx, peer, true)?;
        let max = self.config.max_permissions;
        let a = self.allocations.get_mut(idx).ok_or(Refusal::Code(437))?;
        let bound_peer = a.channels.get(&channel).map(|c| c.peer);
        let bound_channel = a.channel_of_peer.get(&peer).copied();
        if bound_peer.is_some_and(|p| p != peer) || bound_channel.is_some_and(|c| c != channel) {
            return Err(400.into());
        }
        if a.permissions.len() >= max && !a.permissions.contains_key(&peer.ip()) {
            return Err(508.into());
        }
        a.bind(channel, peer, now + CHANNEL_LIFETIME);
        a.permit(peer.ip(), now + PERMISSION_LIFETIME);
        Ok(None)
    }
}
