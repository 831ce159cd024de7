//! The embedded TURN relay: started with the server, allowed to reach only the SFU's own media
//! addresses, and handing each participant short-lived TURN REST credentials at join.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tern_turn::net::Relay;
use tern_turn::peer_policy::{PeerPolicy, PeerRule};
use tern_turn::server::auth::rest_credential;

use crate::config::Config;
use crate::protocol::IceServer;

/// A running relay and what clients need to use it.
#[derive(Debug)]
pub struct TurnService {
    relay: Relay,
    secret: String,
    host: String,
    ttl: Duration,
}

impl TurnService {
    /// Starts the relay `config.turn` describes, or returns `None` when it is disabled. It may
    /// reach exactly the SFU's media sockets, `sfu` (the workers' advertised addresses), on
    /// their advertised and bound IPs, plus `turn.allow_peers`.
    pub fn start_embedded(config: &Config, sfu: &[SocketAddr]) -> anyhow::Result<Option<Self>> {
        let t = &config.turn;
        if !t.enabled {
            return Ok(None);
        }
        let mut ips = vec![config.rtc.advertised_ip()];
        if !config.rtc.bind_ip.is_unspecified() {
            ips.push(config.rtc.bind_ip);
        }
        let mut allowed: Vec<PeerRule> = sfu
            .iter()
            .flat_map(|a| ips.iter().map(|ip| SocketAddr::new(*ip, a.port()).into()))
            .collect();
        allowed.extend(&t.allow_peers);
        let secret = t
            .secret
            .clone()
            .unwrap_or_else(|| crate::auth::random_token(32));
        let server = t.server_config(&secret, PeerPolicy::only(allowed))?;
        let relay = Relay::start(server, t.net_config()?)
            .map_err(|e| anyhow::anyhow!("starting the TURN relay on {:?}: {e}", t.listen))?;
        tracing::info!(udp = ?relay.udp_addrs, tcp = ?relay.tcp_addrs, tls = ?relay.tls_addrs, "TURN relay is listening");
        Ok(Some(Self {
            relay,
            secret,
            host: t.public_host(),
            ttl: Duration::from_secs(t.credential_ttl_secs),
        }))
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// ICE servers for one participant: `turn:` over UDP and TCP, `turns:` when TLS is on,
    /// with a REST username `expiry:participant` and its HMAC password.
    pub fn ice_servers(&self, participant: &str) -> Vec<IceServer> {
        let expiry = unix_now() + self.ttl.as_secs();
        let username = format!("{expiry}:{participant}");
        let credential = rest_credential(&self.secret, &username);
        let mut urls = Vec::new();
        if let Some(a) = self.relay.udp_addrs.first() {
            urls.push(format!(
                "turn:{}:{}?transport=udp",
                self.host_for_url(),
                a.port()
            ));
        }
        if let Some(a) = self.relay.tcp_addrs.first() {
            urls.push(format!(
                "turn:{}:{}?transport=tcp",
                self.host_for_url(),
                a.port()
            ));
        }
        if let Some(a) = self.relay.tls_addrs.first() {
            urls.push(format!(
                "turns:{}:{}?transport=tcp",
                self.host_for_url(),
                a.port()
            ));
        }
        vec![IceServer {
            urls,
            username: Some(username),
            credential: Some(credential),
        }]
    }

    fn host_for_url(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.host.clone(),
        }
    }

    /// The participant is gone from tern: its allocations end and its credentials, including
    /// any handed out since, are refused until the last of them would have expired anyway.
    pub fn revoke(&self, participant: &str) {
        self.relay
            .revoke_user(participant, unix_now() + self.ttl.as_secs());
    }

    /// How often a session should hand its participant fresh credentials: halfway through
    /// their lifetime.
    pub fn refresh_interval(&self) -> Duration {
        (self.ttl / 2).max(Duration::from_secs(1))
    }

    /// Tells the relay to stop; its threads end on their own.
    pub fn signal_stop(&self) {
        self.relay.signal_stop();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
