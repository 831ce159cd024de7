//! Which peer addresses a relay may send to. Every IANA special-purpose range is denied, after
//! canonicalising the encodings that smuggle an IPv4 address inside IPv6 (IPv4-mapped,
//! IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16). Exact addresses can be allowed on top
//! (the embedded relay allows the SFU's own media addresses).
//!
//! Used at CreatePermission and ChannelBind, not per packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    (0x2001 << 112, 23, "ietf_protocol"),
    (0x2001_0db8 << 96, 32, "documentation"),
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

/// The relay's peer policy: special-purpose ranges denied, plus exact allowed addresses.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allowed: Vec<IpAddr>,
    only_allowed: bool,
}

impl PeerPolicy {
    /// A policy that also allows these exact addresses (compared after canonicalisation).
    pub fn allowing(allowed: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            allowed: allowed.into_iter().map(canonical).collect(),
            only_allowed: false,
        }
    }

    /// A policy that allows these exact addresses and nothing else (the embedded relay, which
    /// exists to reach the SFU).
    pub fn only(allowed: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            only_allowed: true,
            ..Self::allowing(allowed)
        }
    }

    /// `Err(reason)` when `ip` may not be a peer.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.allowed.contains(&canonical(ip)) {
            return Ok(());
        }
        match denied_reason(ip) {
            Some(reason) => Err(reason),
            None if self.only_allowed => Err("not_allowed"),
            None => Ok(()),
        }
    }
}

/// Every encoding of an IPv4 address that [`canonical`] must see through (for tests and docs).
pub fn ipv6_encodings(v4: Ipv4Addr) -> [Ipv6Addr; 4] {
    let b = u32::from(v4) as u128;
    [
        v4.to_ipv6_mapped(),
        Ipv6Addr::from(b),
        Ipv6Addr::from((0x0064_ff9b_u128 << 96) | b),
        Ipv6Addr::from((0x2002_u128 << 112) | (b << 80)),
    ]
}
