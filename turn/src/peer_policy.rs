//! Which peer addresses a relay may send to. Every IANA special-purpose range is denied, after
//! canonicalising the encodings that smuggle an IPv4 address inside IPv6 (IPv4-mapped,
//! IPv4-translated, IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16). Addresses, or some
//! ports of them, can be allowed on top (the embedded relay allows exactly the SFU's media
//! sockets), and the relay's own listening and relay addresses are never peers.
//!
//! [`PeerPolicy::check`] runs at CreatePermission (an address), [`PeerPolicy::check_endpoint`]
//! at ChannelBind (an address and port), and [`PeerPolicy::check_port`], two hash probes, on
//! every datagram that no channel carries (Send and Data indications): a channel's peer was
//! judged once, at ChannelBind.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// IPv4 special-purpose ranges (IANA registry, RFC 6890 and updates): network, prefix, name.
const V4_DENIED: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "this_network"),
    (0x0A00_0000, 8, "private"),
    (0x6440_0000, 10, "cgnat"),
    (0x7F00_0000, 8, "loopback"),
    (0xA9FE_0000, 16, "link_local"),
    (0xAC10_0000, 12, "private"),
    (0xC000_0000, 24, "ietf_protocol"),
    (0xC000_0200, 24, "documentation"),
    (0xC01F_C400, 24, "as112"),
    (0xC034_C100, 24, "amt"),
    (0xC058_6300, 24, "6to4_relay"),
    (0xC0A8_0000, 16, "private"),
    (0xC0AF_3000, 24, "as112"),
    (0xC612_0000, 15, "benchmarking"),
    (0xC633_6400, 24, "documentation"),
    (0xCB00_7100, 24, "documentation"),
    (0xE000_0000, 4, "multicast"),
    (0xF000_0000, 4, "reserved"),
];

/// IPv6 special-purpose ranges that carry no IPv4 address.
const V6_DENIED: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified"),
    (1, 128, "loopback"),
    (0x0064_ff9b_0001 << 80, 48, "nat64_local"),
    (0x0100 << 112, 64, "discard"),
    (0x0100_0000_0000_0001 << 64, 64, "dummy"),
    (0x2001 << 112, 23, "ietf_protocol"),
    (0x2001_0db8 << 96, 32, "documentation"),
    (0x2620_004f_8000 << 80, 48, "as112"),
    (0x3fff << 112, 20, "documentation"),
    (0x5f00 << 112, 16, "srv6"),
    (0xfc00 << 112, 7, "unique_local"),
    (0xfe80 << 112, 10, "link_local"),
    (0xfec0 << 112, 10, "site_local"),
    (0xff00 << 112, 8, "multicast"),
];

/// The address to judge: an IPv4 address hidden in an IPv6 encoding is taken out of it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from(bits as u32);
    let prefix96 = bits >> 32;
    if prefix96 == 0x0000_ffff {
        return IpAddr::V4(low32); // ::ffff:a.b.c.d, IPv4-mapped
    }
    if prefix96 == 0xffff_0000 {
        return IpAddr::V4(low32); // ::ffff:0:a.b.c.d, IPv4-translated (RFC 2765)
    }
    if prefix96 == 0 && bits > 1 {
        return IpAddr::V4(low32); // ::a.b.c.d, IPv4-compatible (deprecated)
    }
    if prefix96 == 0x0064_ff9b_0000_0000_0000_0000 {
        return IpAddr::V4(low32); // 64:ff9b::a.b.c.d, NAT64 well-known prefix
    }
    if bits >> 112 == 0x2002 {
        return IpAddr::V4(Ipv4Addr::from((bits >> 80) as u32)); // 2002:AABB:CCDD::/48, 6to4
    }
    ip
}

/// Why `ip` may not be a peer, or `None` if it may.
pub fn denied_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            V4_DENIED
                .iter()
                .find(|(net, len, _)| a >> (32 - len) == net >> (32 - len))
                .map(|e| e.2)
        }
        IpAddr::V6(v6) => {
            let a = u128::from(v6);
            V6_DENIED
                .iter()
                .find(|(net, len, _)| a >> (128 - len) == net >> (128 - len))
                .map(|e| e.2)
        }
    }
}

/// One allow-list entry: an address with every port, or with a range of ports. Written `IP`,
/// `IP:PORT`, `IP:FIRST-LAST`, or with an IPv6 address in brackets: `[2001:db8::1]:5000-5100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRule {
    /// The address.
    pub ip: IpAddr,
    /// The ports, first and last; `None` for all of them.
    pub ports: Option<(u16, u16)>,
}

impl From<IpAddr> for PeerRule {
    fn from(ip: IpAddr) -> Self {
        Self { ip, ports: None }
    }
}

impl From<SocketAddr> for PeerRule {
    fn from(a: SocketAddr) -> Self {
        Self {
            ip: a.ip(),
            ports: Some((a.port(), a.port())),
        }
    }
}

impl FromStr for PeerRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not IP, IP:PORT or IP:FIRST-LAST");
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ip.into());
        }
        let (host, ports) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip: IpAddr = host.parse().map_err(|_| bad())?;
        let (first, last) = ports.split_once('-').unwrap_or((ports, ports));
        let (first, last): (u16, u16) = (
            first.parse().map_err(|_| bad())?,
            last.parse().map_err(|_| bad())?,
        );
        if first == 0 || first > last {
            return Err(format!("{s:?}: ports run from 1 up, first to last"));
        }
        Ok(Self {
            ip,
            ports: Some((first, last)),
        })
    }
}

/// Ports per address, for the allow-list and for the relay's own addresses.
#[derive(Debug, Clone, Default)]
struct PortsByIp(HashMap<IpAddr, Vec<(u16, u16)>>);

impl PortsByIp {
    fn add(&mut self, ip: IpAddr, ports: (u16, u16)) {
        self.0.entry(canonical(ip)).or_default().push(ports);
    }

    /// How the entries of `ip` cover `port`.
    fn cover(&self, ip: &IpAddr, port: u16) -> Cover {
        let Some(ranges) = self.0.get(ip) else {
            return Cover::Unlisted;
        };
        let mut cover = Cover::Outside;
        for &(first, last) in ranges {
            if first == port && last == port {
                return Cover::Exact;
            }
            if (first..=last).contains(&port) {
                cover = Cover::Inside;
            }
        }
        cover
    }
}

/// Whether an address's entries name a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    /// The address has no entry.
    Unlisted,
    /// It has entries, none with this port.
    Outside,
    /// A range holds the port.
    Inside,
    /// An entry names exactly this port.
    Exact,
}

/// The relay's peer policy: special-purpose ranges denied, allowed addresses and ports on top,
/// the relay's own addresses never.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// Addresses allowed with every port.
    any_port: HashSet<IpAddr>,
    /// Addresses allowed with some ports only.
    some_ports: PortsByIp,
    /// Only allowed addresses may be peers.
    only_allowed: bool,
    /// The relay's own listening and relay addresses.
    own: PortsByIp,
}

impl PeerPolicy {
    /// A policy that also allows these addresses or ports (compared after canonicalisation).
    pub fn allowing<R: Into<PeerRule>>(rules: impl IntoIterator<Item = R>) -> Self {
        let mut p = Self::default();
        for rule in rules.into_iter().map(Into::into) {
            match rule.ports {
                None => {
                    p.any_port.insert(canonical(rule.ip));
                }
                Some(ports) => p.some_ports.add(rule.ip, ports),
            }
        }
        p
    }

    /// A policy that allows these addresses or ports and nothing else (the embedded relay,
    /// which exists to reach the SFU's media sockets).
    pub fn only<R: Into<PeerRule>>(rules: impl IntoIterator<Item = R>) -> Self {
        Self {
            only_allowed: true,
            ..Self::allowing(rules)
        }
    }

    /// Marks the relay's own listening and relay addresses, which are never peers: relaying to
    /// them would nest TURN in TURN or loop. An allowed entry naming one exact port still wins,
    /// since no relay socket can hold a port another socket on that address holds.
    pub fn with_own(mut self, own: impl IntoIterator<Item = PeerRule>) -> Self {
        for rule in own {
            self.own.add(rule.ip, rule.ports.unwrap_or((0, u16::MAX)));
        }
        self
    }

    /// `Err(reason)` when `ip` may not be a peer at any port (CreatePermission).
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = canonical(ip);
        if self.any_port.contains(&ip) || self.some_ports.0.contains_key(&ip) {
            return Ok(());
        }
        match denied_reason(ip) {
            Some(reason) => Err(reason),
            None if self.only_allowed => Err("not_allowed"),
            None => Ok(()),
        }
    }

    /// `Err(reason)` when `peer` may not be a peer (ChannelBind).
    pub fn check_endpoint(&self, peer: SocketAddr) -> Result<(), &'static str> {
        if peer.port() == 0 {
            return Err("port_zero");
        }
        self.check_port(peer)?;
        self.check(peer.ip())
    }

    /// The part of [`PeerPolicy::check_endpoint`] a permission does not settle: the port. Two
    /// hash probes; run on every relayed datagram.
    pub fn check_port(&self, peer: SocketAddr) -> Result<(), &'static str> {
        let ip = canonical(peer.ip());
        let port = peer.port();
        let allowed = self.some_ports.cover(&ip, port);
        let own = self.own.cover(&ip, port);
        if allowed != Cover::Exact && matches!(own, Cover::Inside | Cover::Exact) {
            return Err("own_address");
        }
        if allowed == Cover::Outside && !self.any_port.contains(&ip) {
            return Err("port_not_allowed");
        }
        Ok(())
    }
}

/// Every encoding of an IPv4 address that [`canonical`] must see through (for tests and docs).
pub fn ipv6_encodings(v4: Ipv4Addr) -> [Ipv6Addr; 5] {
    let b = u32::from(v4) as u128;
    [
        v4.to_ipv6_mapped(),
        Ipv6Addr::from((0xffff_0000_u128 << 32) | b),
        Ipv6Addr::from(b),
        Ipv6Addr::from((0x0064_ff9b_u128 << 96) | b),
        Ipv6Addr::from((0x2002_u128 << 112) | (b << 80)),
    ]
}
