//! Test helpers (feature `testkit`): a deterministic [`Host`], a client that builds signed
//! requests, and a harness that runs a [`Server`] on a fake clock. For tests, fuzzing and
//! benches only.

#![allow(missing_docs, clippy::missing_panics_doc)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::{Action, ClientId, DropReason, Host, Server, ServerConfig, Shared, Transport};
use crate::{Class, IntegrityKey, Message, MessageWriter, Method, WriteError, attr};

/// Opens any relay port not listed in `refused`; randomness from a fixed xorshift.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub open: HashSet<SocketAddr>,
    pub refused: HashSet<SocketAddr>,
    state: u64,
}

impl Host for FakeHost {
    fn random(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.state >> 33) as u8;
        }
    }
    fn open_relay(&mut self, addr: SocketAddr) -> bool {
        !self.refused.contains(&addr) && self.open.insert(addr)
    }
    fn close_relay(&mut self, addr: SocketAddr) {
        self.open.remove(&addr);
    }
}

/// What the server did with one input, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Dropped(DropReason),
    Reply(Vec<u8>),
    ToClient(ClientId, Vec<u8>),
    ToPeer {
        relay: SocketAddr,
        peer: SocketAddr,
        data: Vec<u8>,
    },
}

impl Outcome {
    /// The reply's class and error code (0 for success); panics if this is not a reply.
    pub fn status(&self) -> (Class, u16) {
        let Outcome::Reply(bytes) = self else {
            panic!("not a reply: {self:?}")
        };
        let m = Message::parse(bytes).expect("reply parses");
        let code = m
            .value(attr::ERROR_CODE)
            .and_then(attr::decode_error_code)
            .map_or(0, |(c, _)| c);
        (m.class(), code)
    }

    /// The error code of a reply (0 for success).
    pub fn code(&self) -> u16 {
        self.status().1
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Outcome::Reply(b) | Outcome::ToClient(_, b) => b,
            Outcome::ToPeer { data, .. } => data,
            Outcome::Dropped(_) => &[],
        }
    }
}

/// A server on a fake clock.
pub struct Harness {
    pub server: Server,
    /// The state the server shares with other workers (quotas, revocations).
    pub shared: Arc<Shared>,
    pub host: FakeHost,
    pub now: Instant,
    pub out: Vec<u8>,
}

/// Unix time the harness starts at.
pub const UNIX_START: u64 = 1_800_000_000;

impl Harness {
    pub fn new(config: ServerConfig) -> Self {
        let now = Instant::now();
        let shared = Arc::new(Shared::new(&config));
        Self::with_shared(Arc::new(config), shared, now)
    }

    pub fn with_shared(config: Arc<ServerConfig>, shared: Arc<Shared>, now: Instant) -> Self {
        Self {
            server: Server::new(config, shared.clone(), now, UNIX_START),
            shared,
            host: FakeHost::default(),
            now,
            out: vec![0; 70_000],
        }
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.server.handle_timeout(self.now, &mut self.host);
    }

    pub fn from_client(&mut self, client: ClientId, input: &[u8]) -> Outcome {
        let action =
            self.server
                .handle_client(self.now, &mut self.host, client, input, &mut self.out);
        owned(action, &self.out, client)
    }

    pub fn from_peer(&mut self, relay: SocketAddr, peer: SocketAddr, input: &[u8]) -> Outcome {
        let action = self
            .server
            .handle_peer(self.now, relay, peer, input, &mut self.out);
        match action {
            Action::ToClient { client, len } => Outcome::ToClient(client, self.out[..len].to_vec()),
            Action::Drop(r) => Outcome::Dropped(r),
            other => panic!("peer input gave {other:?}"),
        }
    }
}

fn owned(action: Action<'_>, out: &[u8], _client: ClientId) -> Outcome {
    match action {
        Action::Drop(r) => Outcome::Dropped(r),
        Action::Reply(n) => Outcome::Reply(out[..n].to_vec()),
        Action::ToClient { client, len } => Outcome::ToClient(client, out[..len].to_vec()),
        Action::ToPeer { relay, peer, data } => Outcome::ToPeer {
            relay,
            peer,
            data: data.to_vec(),
        },
    }
}

/// How a test request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// No credentials.
    None,
    /// USERNAME, REALM, NONCE and MESSAGE-INTEGRITY.
    Sha1,
    /// The same with MESSAGE-INTEGRITY-SHA256.
    Sha256,
}

/// A TURN client's side of the conversation.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: ClientId,
    pub username: String,
    pub password: String,
    pub realm: String,
    pub nonce: Vec<u8>,
    pub fingerprint: bool,
    next_tid: u64,
}

impl TestClient {
    pub fn new(transport: Transport, remote: &str, username: &str, password: &str) -> Self {
        Self {
            id: ClientId {
                transport,
                remote: remote.parse().expect("remote address"),
                local: "192.0.2.1:3478".parse().expect("local address"),
            },
            username: username.into(),
            password: password.into(),
            realm: "tern".into(),
            nonce: Vec::new(),
            fingerprint: true,
            next_tid: 0,
        }
    }

    pub fn udp(remote: &str, username: &str, password: &str) -> Self {
        Self::new(Transport::Udp, remote, username, password)
    }

    pub fn next_transaction(&mut self) -> [u8; 12] {
        self.next_tid += 1;
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&[0x7e, 0x72, 0x6e, 0x21]);
        t[4..].copy_from_slice(&self.next_tid.to_be_bytes());
        t
    }

    /// A message with attributes from `body`, signed as `sign` says.
    pub fn message(
        &mut self,
        method: Method,
        class: Class,
        sign: Sign,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), WriteError>,
    ) -> Vec<u8> {
        let tid = self.next_transaction();
        self.message_with(tid, method, class, sign, body)
    }

    pub fn message_with(
        &mut self,
        tid: [u8; 12],
        method: Method,
        class: Class,
        sign: Sign,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), WriteError>,
    ) -> Vec<u8> {
        let mut buf = vec![0u8; 70_000];
        let mut w = MessageWriter::new(&mut buf, method, class, tid).expect("header");
        body(&mut w).expect("attributes fit");
        if sign != Sign::None {
            w.attr(attr::USERNAME, self.username.as_bytes())
                .expect("fits");
            w.attr(attr::REALM, self.realm.as_bytes()).expect("fits");
            w.attr(attr::NONCE, &self.nonce).expect("fits");
            let lt = crate::long_term_key_md5(&self.username, &self.realm, &self.password);
            let key = match sign {
                Sign::Sha256 => IntegrityKey::sha256(&lt),
                _ => IntegrityKey::sha1(&lt),
            };
            w.integrity(&key).expect("fits");
        }
        let n = if self.fingerprint {
            w.fingerprint().expect("fits")
        } else {
            w.finish()
        };
        buf.truncate(n);
        buf
    }

    /// A signed request.
    pub fn request(
        &mut self,
        method: Method,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), WriteError>,
    ) -> Vec<u8> {
        self.message(method, Class::Request, Sign::Sha1, body)
    }

    /// Takes REALM and NONCE from a 401 or 438 answer.
    pub fn learn(&mut self, reply: &Outcome) {
        let m = Message::parse(reply.bytes()).expect("reply parses");
        if let Some(n) = m.value(attr::NONCE) {
            self.nonce = n.to_vec();
        }
        if let Some(r) = m.value(attr::REALM) {
            self.realm = String::from_utf8_lossy(r).into_owned();
        }
    }

    /// An unsigned Allocate for UDP: the first leg of every conversation.
    pub fn allocate_request(&mut self, sign: Sign) -> Vec<u8> {
        self.message(Method::ALLOCATE, Class::Request, sign, |w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        })
    }

    /// Sends the request `build` makes; on 438 learns the new nonce and sends it once more,
    /// as real clients do.
    pub fn transact(&mut self, h: &mut Harness, build: impl Fn(&mut Self) -> Vec<u8>) -> Outcome {
        let req = build(self);
        let reply = h.from_client(self.id, &req);
        if matches!(reply, Outcome::Reply(_)) && reply.code() == 438 {
            self.learn(&reply);
            let req = build(self);
            return h.from_client(self.id, &req);
        }
        reply
    }

    /// Sends an unsigned Allocate and learns REALM and NONCE from the 401.
    pub fn challenge(&mut self, h: &mut Harness) {
        let req = self.allocate_request(Sign::None);
        let challenge = h.from_client(self.id, &req);
        assert_eq!(challenge.code(), 401, "unauthenticated Allocate");
        self.learn(&challenge);
    }

    /// Runs the 401 round trip and a signed Allocate; returns the relayed address.
    pub fn allocate(&mut self, h: &mut Harness) -> SocketAddr {
        self.challenge(h);
        let req = self.allocate_request(Sign::Sha1);
        let ok = h.from_client(self.id, &req);
        assert_eq!(ok.status(), (Class::Success, 0), "Allocate: {ok:?}");
        let m = Message::parse(ok.bytes()).expect("parses");
        m.xor_address(attr::XOR_RELAYED_ADDRESS)
            .expect("relayed address")
    }

    pub fn create_permission(&mut self, peers: &[SocketAddr]) -> Vec<u8> {
        self.request(Method::CREATE_PERMISSION, |w| {
            peers
                .iter()
                .try_for_each(|p| w.xor_address(attr::XOR_PEER_ADDRESS, *p))
        })
    }

    pub fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> Vec<u8> {
        self.request(Method::CHANNEL_BIND, |w| {
            let mut v = [0u8; 4];
            v[..2].copy_from_slice(&channel.to_be_bytes());
            w.attr(attr::CHANNEL_NUMBER, &v)?;
            w.xor_address(attr::XOR_PEER_ADDRESS, peer)
        })
    }

    pub fn refresh(&mut self, lifetime: u32) -> Vec<u8> {
        self.request(Method::REFRESH, |w| w.u32(attr::LIFETIME, lifetime))
    }

    pub fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        self.message(Method::SEND, Class::Indication, Sign::None, |w| {
            w.xor_address(attr::XOR_PEER_ADDRESS, peer)?;
            w.attr(attr::DATA, data)
        })
    }
}

/// A peer the test config allows (documentation range, so denied by default).
pub const PEER_V4: &str = "203.0.113.5:9000";
/// An IPv6 peer the test config allows.
pub const PEER_V6: &str = "[2001:db8::5]:9000";

/// A config for tests: one static user `alice`/`secret`, REST secret `rest-secret`, relay on
/// 192.0.2.1 (IPv4) and 2001:db8::1 (IPv6), ports 50000-50099, [`PEER_V4`] and [`PEER_V6`]
/// allowed on top of the default policy.
pub fn config() -> ServerConfig {
    use crate::server::RelayIp;
    let peers = [PEER_V4, PEER_V6].map(|p| p.parse::<SocketAddr>().expect("peer").ip());
    let v4 = "192.0.2.1".parse().expect("ip");
    let v6 = "2001:db8::1".parse().expect("ip");
    ServerConfig {
        users: [("alice".to_owned(), "secret".to_owned())].into(),
        rest_secret: Some("rest-secret".into()),
        relay_v4: Some(RelayIp {
            bind: v4,
            public: v4,
        }),
        relay_v6: Some(RelayIp {
            bind: v6,
            public: v6,
        }),
        min_port: 50000,
        max_port: 50099,
        peer_policy: crate::peer_policy::PeerPolicy::allowing(peers),
        ..ServerConfig::default()
    }
}
