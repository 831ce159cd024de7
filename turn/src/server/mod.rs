//! The TURN server as a sans-IO state machine (RFC 8656 over RFC 8489). The shell hands it
//! datagrams (or framed stream messages), the time, and a [`Host`] that supplies CSPRNG bytes
//! and opens relay sockets; it answers with one [`Action`] per input.

mod alloc;
pub mod auth;
mod relay;
mod requests;
mod respond;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::peer_policy::PeerPolicy;
use alloc::Allocations;
use auth::{Credentials, Nonces, UnauthorizedLimiter};

/// How a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (RFC 8656 section 3.1).
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Stream transports frame messages and pad ChannelData to 4 bytes.
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// A client's 5-tuple: transport, its address, and the server address it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId {
    /// The transport.
    pub transport: Transport,
    /// The client's address as the server sees it.
    pub remote: SocketAddr,
    /// The server's listening address the client reached.
    pub local: SocketAddr,
}

/// A relay IP: the address relay sockets bind to and the one advertised to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayIp {
    /// Where relay sockets bind.
    pub bind: IpAddr,
    /// What XOR-RELAYED-ADDRESS says (differs behind 1:1 NAT).
    pub public: IpAddr,
}

/// Relay settings shared by every worker.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The realm of long-term credentials.
    pub realm: String,
    /// SOFTWARE in responses, if any.
    pub software: Option<String>,
    /// Static users: name to password.
    pub users: HashMap<String, String>,
    /// The TURN REST API shared secret, if REST credentials are accepted.
    pub rest_secret: Option<String>,
    /// The IPv4 relay address, if IPv4 allocations are offered.
    pub relay_v4: Option<RelayIp>,
    /// The IPv6 relay address, if IPv6 allocations are offered.
    pub relay_v6: Option<RelayIp>,
    /// First relay port.
    pub min_port: u16,
    /// Last relay port.
    pub max_port: u16,
    /// Lifetime of an allocation when the client asks for none or less.
    pub default_lifetime: Duration,
    /// The longest lifetime granted.
    pub max_lifetime: Duration,
    /// How long a nonce is valid before 438.
    pub nonce_lifetime: Duration,
    /// Allocations per user (the `user` of a REST `expiry:user` name).
    pub max_allocations_per_user: u32,
    /// Allocations in total.
    pub max_allocations: u32,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Relayed bytes per second per allocation, both directions together; 0 means no cap.
    pub bandwidth_bytes_per_sec: u64,
    /// 401 answers per second per source IP.
    pub unauthorized_per_sec: u32,
    /// Which peers may be reached.
    pub peer_policy: PeerPolicy,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            realm: "tern".into(),
            software: Some("tern".into()),
            users: HashMap::new(),
            rest_secret: None,
            relay_v4: None,
            relay_v6: None,
            min_port: 49152,
            max_port: 65535,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
            max_allocations_per_user: 64,
            max_allocations: 10_000,
            max_permissions: 64,
            bandwidth_bytes_per_sec: 2_500_000,
            unauthorized_per_sec: 10,
            peer_policy: PeerPolicy::default(),
        }
    }
}

/// State every worker shares: nonce keys, allocation quotas and revoked users. Touched at
/// Allocate, when an allocation ends, at authenticated requests once a user has been revoked,
/// and at each worker's once-a-second sweep; never per packet.
#[derive(Debug)]
pub struct Shared {
    nonces: Nonces,
    total: AtomicU32,
    per_user: Mutex<HashMap<Box<str>, u32>>,
    /// Revoked users (the `user` of `expiry:user`) and the Unix time their revocation ends.
    revoked: Mutex<HashMap<Box<str>, u64>>,
    /// Bumped at each revocation, so workers look at `revoked` only when it changed.
    revocations: AtomicU64,
}

impl Shared {
    /// Shared state for `config`.
    pub fn new(config: &ServerConfig) -> Self {
        Self {
            nonces: Nonces::new(config.nonce_lifetime),
            total: AtomicU32::new(0),
            per_user: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashMap::new()),
            revocations: AtomicU64::new(0),
        }
    }

    /// Revokes `user` until Unix time `until`: its credentials are refused (401), and every
    /// worker deletes its allocations at its next sweep (within a second). `until` should be
    /// the expiry of the last credential handed to that user.
    pub fn revoke(&self, user: &str, until: u64) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.insert(user.into(), until);
        self.revocations.fetch_add(1, Ordering::Release);
    }

    /// Whether `user` is revoked at `unix_now`. A lock only once anything was ever revoked.
    pub fn is_revoked(&self, user: &str, unix_now: u64) -> bool {
        if self.revocations.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, until| *until >= unix_now);
        revoked.contains_key(user)
    }

    /// Allocations alive on every worker.
    pub fn allocations(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    fn try_reserve(&self, user: &str, config: &ServerConfig) -> bool {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_user.get(user).copied().unwrap_or(0);
        if n >= config.max_allocations_per_user
            || self.total.load(Ordering::Relaxed) >= config.max_allocations
        {
            return false;
        }
        per_user.insert(user.into(), n + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn release(&self, user: &str) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                per_user.remove(user);
            }
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the server needs from its shell.
pub trait Host {
    /// Fills `buf` from a CSPRNG.
    fn random(&mut self, buf: &mut [u8]);
    /// Opens a relay socket bound to `addr`; false if that port cannot be had.
    fn open_relay(&mut self, addr: SocketAddr) -> bool;
    /// Closes the relay socket bound to `addr`.
    fn close_relay(&mut self, addr: SocketAddr);
}

/// Why an input was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// Not a STUN message or ChannelData, or malformed beyond an answer.
    Malformed,
    /// FINGERPRINT present and wrong.
    BadFingerprint,
    /// A response or an indication the server does not take.
    Unexpected,
    /// No allocation for this client or relay address.
    NoAllocation,
    /// No permission for the peer.
    NoPermission,
    /// No live channel with that number.
    NoChannel,
    /// The peer's port, or the peer itself, is refused by the peer policy (a port the
    /// allow-list does not name, or one of the relay's own addresses).
    PeerRefused,
    /// The allocation's bandwidth cap.
    Bandwidth,
    /// 401 answers to this source are rate-limited.
    RateLimited,
    /// The answer did not fit the output buffer.
    TooLarge,
    /// The shell could not send it: a socket refused the datagram (full buffer, unroutable)
    /// or a stream connection's output queue was full.
    SendFailed,
}

impl DropReason {
    /// A label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadFingerprint => "bad_fingerprint",
            Self::Unexpected => "unexpected",
            Self::NoAllocation => "no_allocation",
            Self::NoPermission => "no_permission",
            Self::NoChannel => "no_channel",
            Self::PeerRefused => "peer_refused",
            Self::Bandwidth => "bandwidth",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::SendFailed => "send_failed",
        }
    }
}

/// What to do with one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Nothing to send.
    Drop(DropReason),
    /// Send `out[..len]` back to the client that sent the input.
    Reply(usize),
    /// Send `out[..len]` to this client (data from a peer).
    ToClient {
        /// The client.
        client: ClientId,
        /// Bytes of `out` to send.
        len: usize,
    },
    /// Send `data` from the relay socket bound to `relay` to `peer`.
    ToPeer {
        /// The relay socket's address.
        relay: SocketAddr,
        /// The peer.
        peer: SocketAddr,
        /// The payload, borrowed from the input.
        data: &'a [u8],
    },
}

/// Counters and gauges for metrics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Allocations on this worker.
    pub allocations: u64,
    /// Live permissions (updated each second).
    pub permissions: u64,
    /// Live channel bindings (updated each second).
    pub channels: u64,
    /// Datagrams relayed from clients to peers.
    pub to_peer_packets: u64,
    /// Bytes relayed from clients to peers.
    pub to_peer_bytes: u64,
    /// Datagrams relayed from peers to clients.
    pub to_client_packets: u64,
    /// Bytes relayed from peers to clients.
    pub to_client_bytes: u64,
    /// Inputs dropped, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
    /// Authentication failures, by reason.
    pub auth_failures: BTreeMap<&'static str, u64>,
    /// Peers refused at CreatePermission or ChannelBind, and datagrams to or from a refused
    /// peer port, by reason.
    pub refused_peers: BTreeMap<&'static str, u64>,
    /// Error responses, by code.
    pub errors: BTreeMap<u16, u64>,
}

/// One worker's TURN server.
#[derive(Debug)]
pub struct Server {
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    credentials: Credentials,
    limiter: UnauthorizedLimiter,
    allocations: Allocations,
    started: Instant,
    unix_at_start: u64,
    next_sweep: Instant,
    /// The `Shared::revocations` count this worker has acted on.
    revocations_seen: u64,
    indication_seq: u64,
    stats: Stats,
}

impl Server {
    /// A server starting at `now`, which is `unix_now` seconds since the Unix epoch.
    pub fn new(
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
        now: Instant,
        unix_now: u64,
    ) -> Self {
        Self {
            credentials: Credentials::new(
                &config.realm,
                config.users.clone(),
                config.rest_secret.as_deref(),
            ),
            limiter: UnauthorizedLimiter::new(config.unauthorized_per_sec),
            config,
            shared,
            allocations: Allocations::default(),
            started: now,
            unix_at_start: unix_now,
            next_sweep: now + Duration::from_secs(1),
            revocations_seen: 0,
            indication_seq: 0,
            stats: Stats::default(),
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn unix(&self, now: Instant) -> u64 {
        self.unix_at_start + now.saturating_duration_since(self.started).as_secs()
    }

    /// Handles one datagram (or framed stream message) from `client`; `out` must hold at least
    /// 1,500 bytes, and 65,600 to relay the largest payloads.
    pub fn handle_client<'a>(
        &mut self,
        now: Instant,
        host: &mut impl Host,
        client: ClientId,
        input: &'a [u8],
        out: &mut [u8],
    ) -> Action<'a> {
        let action = match input.first() {
            Some(b) if b & 0xC0 == 0x40 => self.client_channel_data(now, client, input),
            Some(b) if b & 0xC0 == 0 => self.client_stun(now, host, client, input, out),
            _ => Action::Drop(DropReason::Malformed),
        };
        self.count(action)
    }

    /// Handles a datagram that `peer` sent to the relay socket bound to `relay`.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        input: &[u8],
        out: &mut [u8],
    ) -> Action<'static> {
        let action = self.peer_data(now, relay, peer, input, out);
        self.count(action)
    }

    /// A stream client went away: its allocation goes too (RFC 8656 section 3.1).
    pub fn client_closed(&mut self, host: &mut impl Host, client: ClientId) {
        if let Some(idx) = self.allocations.of_client(&client) {
            self.delete_allocation(host, idx);
        }
    }

    /// When [`Server::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    /// Expires allocations, permissions and channels; refreshes gauges.
    pub fn handle_timeout(&mut self, now: Instant, host: &mut impl Host) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + Duration::from_secs(1);
        for idx in self.allocations.expired(now) {
            self.delete_allocation(host, idx);
        }
        let revocations = self.shared.revocations.load(Ordering::Acquire);
        if revocations != self.revocations_seen {
            self.revocations_seen = revocations;
            let unix = self.unix(now);
            let revoked: Vec<u32> = self
                .allocations
                .iter()
                .filter(|(_, a)| self.shared.is_revoked(&a.quota_user, unix))
                .map(|(i, _)| i)
                .collect();
            for idx in revoked {
                self.delete_allocation(host, idx);
            }
        }
        let (mut permissions, mut channels) = (0, 0);
        for a in self.allocations.iter_mut() {
            a.sweep(now);
            permissions += a.permissions.len() as u64;
            channels += a.live_channels(now) as u64;
        }
        self.stats.permissions = permissions;
        self.stats.channels = channels;
        self.limiter.forget_idle(now);
    }

    /// Deletes every allocation (shutdown).
    pub fn close_all(&mut self, host: &mut impl Host) {
        let all: Vec<u32> = self.allocations.iter().map(|(i, _)| i).collect();
        for idx in all {
            self.delete_allocation(host, idx);
        }
    }

    fn delete_allocation(&mut self, host: &mut impl Host, idx: u32) {
        if let Some(a) = self.allocations.remove(idx) {
            for r in a.relays.iter().flatten() {
                host.close_relay(*r);
            }
            self.shared.release(&a.quota_user);
            self.stats.allocations = self.allocations.len() as u64;
        }
    }

    fn count<'a>(&mut self, action: Action<'a>) -> Action<'a> {
        match action {
            Action::Drop(r) => *self.stats.dropped.entry(r).or_default() += 1,
            Action::ToPeer { data, .. } => {
                self.stats.to_peer_packets += 1;
                self.stats.to_peer_bytes += data.len() as u64;
            }
            Action::ToClient { .. } | Action::Reply(_) => {}
        }
        action
    }
}
