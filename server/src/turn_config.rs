//! `[turn]`: the STUN/TURN relay, embedded in `tern` or alone as `tern turn`. Every key is also a
//! `--turn-*` flag and a `TERN_TURN_*` variable; docs/turn.md documents them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tern_turn::net::NetConfig;
use tern_turn::peer_policy::{PeerPolicy, PeerRule};
use tern_turn::server::{RelayIp, ServerConfig};

/// `[turn]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Run the relay inside `tern` and hand out credentials at join. Default true.
    pub enabled: bool,
    /// UDP and TCP listening addresses. Default `127.0.0.1:3478`.
    pub listen: Vec<SocketAddr>,
    /// TLS listening addresses, used when `tls_cert` and `tls_key` are set. Default
    /// `127.0.0.1:5349`.
    pub tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// IPv4 address relay sockets bind to. Default: the first IPv4 `listen` address, or
    /// 127.0.0.1 when that is unspecified.
    pub relay_ip: Option<IpAddr>,
    /// IPv6 address relay sockets bind to; without it there are no IPv6 allocations.
    pub relay_ip6: Option<IpAddr>,
    /// IPv4 address advertised in XOR-RELAYED-ADDRESS (behind 1:1 NAT). Default `relay_ip`.
    pub external_ip: Option<IpAddr>,
    /// IPv6 address advertised. Default `relay_ip6`.
    pub external_ip6: Option<IpAddr>,
    /// Public host name or IP put in the `turn:`/`turns:` URLs given to clients. Default: the
    /// external IP.
    pub public_host: Option<String>,
    /// First relay port. Default 49152.
    pub min_port: u16,
    /// Last relay port. Default 65535.
    pub max_port: u16,
    /// Realm. Default `tern`.
    pub realm: String,
    /// Static users, `name:password`.
    pub users: Vec<String>,
    /// TURN REST API shared secret. Default: generated at start (and printed by `tern turn`).
    pub secret: Option<String>,
    /// How long the REST credentials `tern` hands out may make new allocations, in seconds; an
    /// allocation lives on past it, and sessions get fresh credentials halfway through. Default
    /// 600.
    pub credential_ttl_secs: u64,
    /// Allocation lifetime when the client asks for less, in seconds. Default 600.
    pub default_lifetime_secs: u64,
    /// Longest allocation lifetime, in seconds. Default 3600.
    pub max_lifetime_secs: u64,
    /// Seconds before a nonce goes stale (438). Default 600.
    pub nonce_lifetime_secs: u64,
    /// Allocations in total. Default 10000.
    pub max_allocations: u32,
    /// Allocations per user. Default 64.
    pub max_allocations_per_user: u32,
    /// Permissions per allocation. Default 64.
    pub max_permissions: usize,
    /// Relayed bytes per second per allocation; 0 means no cap. Default 2500000 (20 Mbit/s).
    pub bandwidth_bytes_per_sec: u64,
    /// 401 answers per second per source IP. Default 10.
    pub unauthorized_per_sec: u32,
    /// Worker threads; 0 means one per core. Default 0.
    pub workers: usize,
    /// Buffer of each listening UDP socket, in bytes. Default 4 MiB.
    pub socket_buffer: usize,
    /// Buffer of each relay socket, in bytes; 0 keeps the OS default. Default 0.
    pub relay_socket_buffer: usize,
    /// Batch UDP I/O with recvmmsg/sendmmsg (Linux). Default true; false takes the portable
    /// path of one system call per datagram.
    pub batch_io: bool,
    /// Peers allowed even in denied ranges: `IP` (every port), `IP:PORT` or `IP:FIRST-LAST`
    /// (IPv6 in brackets). For the embedded relay they add to the SFU's media sockets.
    #[serde(deserialize_with = "peer_rules")]
    pub allow_peers: Vec<PeerRule>,
    /// `tern turn` only: where to serve `/metrics` and `/healthz` over HTTP. Default none.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Self {
            enabled: true,
            listen: vec![SocketAddr::new(local, 3478)],
            tls_listen: vec![SocketAddr::new(local, 5349)],
            tls_cert: None,
            tls_key: None,
            relay_ip: None,
            relay_ip6: None,
            external_ip: None,
            external_ip6: None,
            public_host: None,
            min_port: 49152,
            max_port: 65535,
            realm: "tern".into(),
            users: Vec::new(),
            secret: None,
            credential_ttl_secs: 600,
            default_lifetime_secs: 600,
            max_lifetime_secs: 3600,
            nonce_lifetime_secs: 600,
            max_allocations: 10_000,
            max_allocations_per_user: 64,
            max_permissions: 64,
            bandwidth_bytes_per_sec: 2_500_000,
            unauthorized_per_sec: 10,
            workers: 0,
            socket_buffer: 4 << 20,
            relay_socket_buffer: 0,
            batch_io: true,
            allow_peers: Vec::new(),
            metrics_listen: None,
        }
    }
}

impl TurnConfig {
    /// The IPv4 relay address.
    pub fn relay_v4(&self) -> RelayIp {
        let bind = self.relay_ip.unwrap_or_else(|| {
            self.listen
                .iter()
                .map(|a| a.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_unspecified())
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        });
        RelayIp {
            bind,
            public: self.external_ip.unwrap_or(bind),
        }
    }

    /// The host clients are told to reach.
    pub fn public_host(&self) -> String {
        self.public_host
            .clone()
            .unwrap_or_else(|| self.relay_v4().public.to_string())
    }

    /// The relay's own addresses, never peers: its relay addresses with the whole relay port
    /// range, and its listening addresses (on each relay address, for a wildcard listener).
    pub fn own_addresses(&self) -> Vec<PeerRule> {
        let v4 = self.relay_v4();
        let mut ips = vec![v4.bind, v4.public];
        ips.extend(self.relay_ip6.iter().chain(&self.external_ip6));
        let mut own: Vec<PeerRule> = ips
            .iter()
            .map(|&ip| PeerRule {
                ip,
                ports: Some((self.min_port, self.max_port)),
            })
            .collect();
        for l in self.listen.iter().chain(&self.tls_listen) {
            if l.ip().is_unspecified() {
                own.extend(
                    ips.iter()
                        .map(|&ip| PeerRule::from(SocketAddr::new(ip, l.port()))),
                );
            } else {
                own.push((*l).into());
            }
        }
        own
    }

    /// The relay core's settings; `secret` is the REST secret in force and `policy` the peers
    /// (the relay's own addresses are refused on top of it).
    pub fn server_config(&self, secret: &str, policy: PeerPolicy) -> anyhow::Result<ServerConfig> {
        let mut users = std::collections::HashMap::new();
        for u in &self.users {
            let (name, password) = u
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("turn.users entries are name:password"))?;
            users.insert(name.to_owned(), password.to_owned());
        }
        anyhow::ensure!(
            self.min_port <= self.max_port,
            "turn.min_port is above turn.max_port"
        );
        // Clients are told their relayed address: a wildcard there reaches nothing.
        let v6_public = self.external_ip6.or(self.relay_ip6);
        anyhow::ensure!(
            !self.relay_v4().public.is_unspecified()
                && !v6_public.is_some_and(|ip| ip.is_unspecified()),
            "turn.relay_ip / turn.relay_ip6 is a wildcard address, which clients cannot reach: \
             bind relay sockets to a concrete address, or set turn.external_ip / \
             turn.external_ip6 to the address clients reach"
        );
        Ok(ServerConfig {
            realm: self.realm.clone(),
            software: Some("tern".into()),
            users,
            rest_secret: Some(secret.to_owned()),
            relay_v4: Some(self.relay_v4()),
            relay_v6: self.relay_ip6.map(|bind| RelayIp {
                bind,
                public: self.external_ip6.unwrap_or(bind),
            }),
            min_port: self.min_port,
            max_port: self.max_port,
            default_lifetime: Duration::from_secs(self.default_lifetime_secs),
            max_lifetime: Duration::from_secs(self.max_lifetime_secs),
            nonce_lifetime: Duration::from_secs(self.nonce_lifetime_secs),
            max_allocations_per_user: self.max_allocations_per_user,
            max_allocations: self.max_allocations,
            max_permissions: self.max_permissions,
            bandwidth_bytes_per_sec: self.bandwidth_bytes_per_sec,
            unauthorized_per_sec: self.unauthorized_per_sec,
            peer_policy: policy.with_own(self.own_addresses()),
        })
    }

    /// Sockets and threads.
    pub fn net_config(&self) -> anyhow::Result<NetConfig> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(tern_turn::net::load_tls(cert, key).map_err(anyhow::Error::msg)?)
            }
            (None, None) => None,
            _ => anyhow::bail!("turn.tls_cert and turn.tls_key go together"),
        };
        Ok(NetConfig {
            listen: self.listen.clone(),
            tls_listen: self.tls_listen.clone(),
            tls,
            workers: self.workers,
            socket_buffer: self.socket_buffer,
            relay_socket_buffer: self.relay_socket_buffer,
            batch: self.batch_io,
        })
    }
}

/// `--turn-*` flags and `TERN_TURN_*` variables, one per key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TurnOverrides {
    /// turn.enabled
    #[arg(long, env = "TERN_TURN_ENABLED")]
    pub turn_enabled: Option<bool>,
    /// turn.listen (repeat or comma-separate)
    #[arg(long, env = "TERN_TURN_LISTEN", value_delimiter = ',')]
    pub turn_listen: Option<Vec<SocketAddr>>,
    /// turn.tls_listen (repeat or comma-separate)
    #[arg(long, env = "TERN_TURN_TLS_LISTEN", value_delimiter = ',')]
    pub turn_tls_listen: Option<Vec<SocketAddr>>,
    /// turn.tls_cert
    #[arg(long, env = "TERN_TURN_TLS_CERT")]
    pub turn_tls_cert: Option<PathBuf>,
    /// turn.tls_key
    #[arg(long, env = "TERN_TURN_TLS_KEY")]
    pub turn_tls_key: Option<PathBuf>,
    /// turn.relay_ip
    #[arg(long, env = "TERN_TURN_RELAY_IP")]
    pub turn_relay_ip: Option<IpAddr>,
    /// turn.relay_ip6
    #[arg(long, env = "TERN_TURN_RELAY_IP6")]
    pub turn_relay_ip6: Option<IpAddr>,
    /// turn.external_ip
    #[arg(long, env = "TERN_TURN_EXTERNAL_IP")]
    pub turn_external_ip: Option<IpAddr>,
    /// turn.external_ip6
    #[arg(long, env = "TERN_TURN_EXTERNAL_IP6")]
    pub turn_external_ip6: Option<IpAddr>,
    /// turn.public_host
    #[arg(long, env = "TERN_TURN_PUBLIC_HOST")]
    pub turn_public_host: Option<String>,
    /// turn.min_port
    #[arg(long, env = "TERN_TURN_MIN_PORT")]
    pub turn_min_port: Option<u16>,
    /// turn.max_port
    #[arg(long, env = "TERN_TURN_MAX_PORT")]
    pub turn_max_port: Option<u16>,
    /// turn.realm
    #[arg(long, env = "TERN_TURN_REALM")]
    pub turn_realm: Option<String>,
    /// turn.users (name:password; repeat or comma-separate)
    #[arg(
        long,
        env = "TERN_TURN_USERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub turn_users: Option<Vec<String>>,
    /// turn.secret
    #[arg(long, env = "TERN_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// turn.credential_ttl_secs
    #[arg(long, env = "TERN_TURN_CREDENTIAL_TTL_SECS")]
    pub turn_credential_ttl_secs: Option<u64>,
    /// turn.default_lifetime_secs
    #[arg(long, env = "TERN_TURN_DEFAULT_LIFETIME_SECS")]
    pub turn_default_lifetime_secs: Option<u64>,
    /// turn.max_lifetime_secs
    #[arg(long, env = "TERN_TURN_MAX_LIFETIME_SECS")]
    pub turn_max_lifetime_secs: Option<u64>,
    /// turn.nonce_lifetime_secs
    #[arg(long, env = "TERN_TURN_NONCE_LIFETIME_SECS")]
    pub turn_nonce_lifetime_secs: Option<u64>,
    /// turn.max_allocations
    #[arg(long, env = "TERN_TURN_MAX_ALLOCATIONS")]
    pub turn_max_allocations: Option<u32>,
    /// turn.max_allocations_per_user
    #[arg(long, env = "TERN_TURN_MAX_ALLOCATIONS_PER_USER")]
    pub turn_max_allocations_per_user: Option<u32>,
    /// turn.max_permissions
    #[arg(long, env = "TERN_TURN_MAX_PERMISSIONS")]
    pub turn_max_permissions: Option<usize>,
    /// turn.bandwidth_bytes_per_sec
    #[arg(long, env = "TERN_TURN_BANDWIDTH_BYTES_PER_SEC")]
    pub turn_bandwidth_bytes_per_sec: Option<u64>,
    /// turn.unauthorized_per_sec
    #[arg(long, env = "TERN_TURN_UNAUTHORIZED_PER_SEC")]
    pub turn_unauthorized_per_sec: Option<u32>,
    /// turn.workers
    #[arg(long, env = "TERN_TURN_WORKERS")]
    pub turn_workers: Option<usize>,
    /// turn.socket_buffer
    #[arg(long, env = "TERN_TURN_SOCKET_BUFFER")]
    pub turn_socket_buffer: Option<usize>,
    /// turn.relay_socket_buffer
    #[arg(long, env = "TERN_TURN_RELAY_SOCKET_BUFFER")]
    pub turn_relay_socket_buffer: Option<usize>,
    /// turn.batch_io
    #[arg(long, env = "TERN_TURN_BATCH_IO")]
    pub turn_batch_io: Option<bool>,
    /// turn.allow_peers: IP, IP:PORT or IP:FIRST-LAST (repeat or comma-separate)
    #[arg(long, env = "TERN_TURN_ALLOW_PEERS", value_delimiter = ',')]
    pub turn_allow_peers: Option<Vec<PeerRule>>,
    /// turn.metrics_listen
    #[arg(long, env = "TERN_TURN_METRICS_LISTEN")]
    pub turn_metrics_listen: Option<SocketAddr>,
}

impl TurnOverrides {
    /// Writes every given override into `c`.
    pub fn apply(&self, c: &mut TurnConfig) {
        fn set<T: Clone>(slot: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *slot = v.clone();
            }
        }
        fn set_some<T: Clone>(slot: &mut Option<T>, v: &Option<T>) {
            if v.is_some() {
                *slot = v.clone();
            }
        }
        set(&mut c.enabled, &self.turn_enabled);
        set(&mut c.listen, &self.turn_listen);
        set(&mut c.tls_listen, &self.turn_tls_listen);
        set_some(&mut c.tls_cert, &self.turn_tls_cert);
        set_some(&mut c.tls_key, &self.turn_tls_key);
        set_some(&mut c.relay_ip, &self.turn_relay_ip);
        set_some(&mut c.relay_ip6, &self.turn_relay_ip6);
        set_some(&mut c.external_ip, &self.turn_external_ip);
        set_some(&mut c.external_ip6, &self.turn_external_ip6);
        set_some(&mut c.public_host, &self.turn_public_host);
        set(&mut c.min_port, &self.turn_min_port);
        set(&mut c.max_port, &self.turn_max_port);
        set(&mut c.realm, &self.turn_realm);
        set(&mut c.users, &self.turn_users);
        set_some(&mut c.secret, &self.turn_secret);
        set(&mut c.credential_ttl_secs, &self.turn_credential_ttl_secs);
        set(
            &mut c.default_lifetime_secs,
            &self.turn_default_lifetime_secs,
        );
        set(&mut c.max_lifetime_secs, &self.turn_max_lifetime_secs);
        set(&mut c.nonce_lifetime_secs, &self.turn_nonce_lifetime_secs);
        set(&mut c.max_allocations, &self.turn_max_allocations);
        set(
            &mut c.max_allocations_per_user,
            &self.turn_max_allocations_per_user,
        );
        set(&mut c.max_permissions, &self.turn_max_permissions);
        set(
            &mut c.bandwidth_bytes_per_sec,
            &self.turn_bandwidth_bytes_per_sec,
        );
        set(&mut c.unauthorized_per_sec, &self.turn_unauthorized_per_sec);
        set(&mut c.workers, &self.turn_workers);
        set(&mut c.socket_buffer, &self.turn_socket_buffer);
        set(&mut c.relay_socket_buffer, &self.turn_relay_socket_buffer);
        set(&mut c.batch_io, &self.turn_batch_io);
        set(&mut c.allow_peers, &self.turn_allow_peers);
        set_some(&mut c.metrics_listen, &self.turn_metrics_listen);
    }
}

/// `allow_peers` entries from their text form.
fn peer_rules<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PeerRule>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| t.parse().map_err(serde::de::Error::custom))
        .collect()
}
