//! Table-driven: every special-purpose range, in every encoding, is refused; public addresses in
//! the same encodings are not; the allow-list lets exact addresses through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tern_turn::peer_policy::{PeerPolicy, PeerRule, canonical, denied_reason, ipv6_encodings};

/// First and last address of each IPv4 special-purpose range.
const V4: &[(&str, &str)] = &[
    ("0.0.0.0", "0.255.255.255"),
    ("10.0.0.0", "10.255.255.255"),
    ("100.64.0.0", "100.127.255.255"),
    ("127.0.0.0", "127.255.255.255"),
    ("169.254.0.0", "169.254.255.255"),
    ("172.16.0.0", "172.31.255.255"),
    ("192.0.0.0", "192.0.0.255"),
    ("192.0.2.0", "192.0.2.255"),
    ("192.31.196.0", "192.31.196.255"),
    ("192.52.193.0", "192.52.193.255"),
    ("192.88.99.0", "192.88.99.255"),
    ("192.168.0.0", "192.168.255.255"),
    ("192.175.48.0", "192.175.48.255"),
    ("198.18.0.0", "198.19.255.255"),
    ("198.51.100.0", "198.51.100.255"),
    ("203.0.113.0", "203.0.113.255"),
    ("224.0.0.0", "239.255.255.255"),
    ("240.0.0.0", "255.255.255.255"),
];

const V6: &[&str] = &[
    "::",
    "::1",
    "64:ff9b:1::",
    "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
    "100::",
    "100::ffff:ffff:ffff:ffff",
    "2001::",
    "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db8::1",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    "3fff::",
    "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
    "5f00::1",
    "fc00::",
    "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "100:0:0:1::",
    "100:0:0:1:ffff:ffff:ffff:ffff",
    "2620:4f:8000::",
    "2620:4f:8000:ffff:ffff:ffff:ffff:ffff",
    "fe80::1",
    "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fec0::1",
    "ff02::1",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

const PUBLIC_V4: &[&str] = &[
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
];
const PUBLIC_V6: &[&str] = &["2606:4700:4700::1111", "2a00:1450:4001::1", "2001:200::1"];

#[test]
fn every_special_purpose_address_is_denied_in_every_encoding() {
    let mut accepted = Vec::new();
    for (first, last) in V4 {
        for s in [first, last] {
            let v4: Ipv4Addr = s.parse().expect("v4");
            let all = std::iter::once(IpAddr::V4(v4)).chain(ipv6_encodings(v4).map(IpAddr::V6));
            for ip in all {
                if denied_reason(ip).is_none() {
                    accepted.push(ip);
                }
            }
        }
    }
    for s in V6 {
        let ip: IpAddr = s.parse().expect("v6");
        if denied_reason(ip).is_none() {
            accepted.push(ip);
        }
    }
    assert_eq!(accepted, Vec::<IpAddr>::new(), "0 accepted");
}

#[test]
fn public_addresses_are_allowed_in_every_encoding() {
    for s in PUBLIC_V4 {
        let v4: Ipv4Addr = s.parse().expect("v4");
        assert_eq!(denied_reason(IpAddr::V4(v4)), None, "{v4}");
        for e in ipv6_encodings(v4) {
            assert_eq!(denied_reason(IpAddr::V6(e)), None, "{e} ({v4})");
            assert_eq!(canonical(IpAddr::V6(e)), IpAddr::V4(v4));
        }
    }
    for s in PUBLIC_V6 {
        let ip: IpAddr = s.parse().expect("v6");
        assert_eq!(denied_reason(ip), None, "{ip}");
    }
}

#[test]
fn the_cve_2026_27624_encodings_are_refused() {
    for s in [
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:0:127.0.0.1",
        "::ffff:0:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ] {
        let ip: Ipv6Addr = s.parse().expect("v6");
        assert!(
            denied_reason(IpAddr::V6(ip)).is_some(),
            "{ip} must be refused"
        );
    }
}

#[test]
fn the_allow_list_admits_exact_addresses_only() {
    let policy = PeerPolicy::allowing(["127.0.0.1".parse::<IpAddr>().expect("ip")]);
    assert_eq!(policy.check("127.0.0.1".parse().expect("ip")), Ok(()));
    assert_eq!(
        policy.check("::ffff:127.0.0.1".parse().expect("ip")),
        Ok(()),
        "same address, mapped"
    );
    assert_eq!(
        policy.check("127.0.0.2".parse().expect("ip")),
        Err("loopback")
    );
    assert_eq!(
        PeerPolicy::default().check("10.1.2.3".parse().expect("ip")),
        Err("private")
    );
}

#[test]
fn the_embedded_policy_admits_only_the_listed_addresses() {
    let sfu: IpAddr = "127.0.0.1".parse().expect("ip");
    let policy = PeerPolicy::only([sfu]);
    assert_eq!(policy.check(sfu), Ok(()));
    assert_eq!(
        policy.check("8.8.8.8".parse().expect("ip")),
        Err("not_allowed")
    );
    assert_eq!(
        policy.check("127.0.0.2".parse().expect("ip")),
        Err("loopback")
    );
    assert_eq!(
        policy.check("2606:4700::1111".parse().expect("ip")),
        Err("not_allowed")
    );
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// The embedded relay reaches the SFU's media sockets and no other port of the SFU's host:
/// not its DNS, not a worker it was not told of, not the relay's own listener.
#[test]
fn the_embedded_policy_admits_the_listed_sockets_and_no_other_port() {
    let sfu = [addr("127.0.0.1:7882"), addr("127.0.0.1:7883")];
    let policy = PeerPolicy::only(sfu).with_own([
        PeerRule::from(addr("127.0.0.1:3478")),
        "127.0.0.1:49152-65535".parse().expect("range"),
    ]);
    assert_eq!(policy.check("127.0.0.1".parse().expect("ip")), Ok(()));
    for ok in sfu {
        assert_eq!(policy.check_endpoint(ok), Ok(()));
        assert_eq!(policy.check_port(ok), Ok(()));
    }
    assert_eq!(
        policy.check_endpoint(addr("[::ffff:127.0.0.1]:7882")),
        Ok(()),
        "same socket, mapped"
    );
    for (refused, reason) in [
        ("127.0.0.1:53", "port_not_allowed"),
        ("127.0.0.1:7884", "port_not_allowed"),
        ("127.0.0.1:3478", "own_address"),
        ("127.0.0.1:50000", "own_address"),
        ("127.0.0.1:0", "port_zero"),
        ("127.0.0.2:7882", "loopback"),
    ] {
        assert_eq!(
            policy.check_endpoint(addr(refused)),
            Err(reason),
            "{refused}"
        );
    }
}

/// A socket named exactly is trusted even inside the relay port range: no relay socket can
/// hold a port another socket holds.
#[test]
fn an_exact_socket_wins_over_the_relay_port_range() {
    let policy = PeerPolicy::only([addr("127.0.0.1:50000")])
        .with_own(["127.0.0.1:49152-65535".parse::<PeerRule>().expect("range")]);
    assert_eq!(policy.check_port(addr("127.0.0.1:50000")), Ok(()));
    assert_eq!(
        policy.check_port(addr("127.0.0.1:50001")),
        Err("own_address")
    );
}

/// The standalone relay's allow-list takes ranges of ports, and its own addresses stay
/// refused whatever the list says.
#[test]
fn a_port_range_in_the_allow_list_admits_those_ports_only() {
    let rules: Vec<PeerRule> = ["10.0.0.5:5000-5100", "[fd00::7]:6000", "192.168.1.1"]
        .iter()
        .map(|r| r.parse().expect("rule"))
        .collect();
    let policy = PeerPolicy::allowing(rules).with_own([addr("203.0.113.9:3478").into()]);
    assert_eq!(policy.check_endpoint(addr("10.0.0.5:5000")), Ok(()));
    assert_eq!(policy.check_endpoint(addr("10.0.0.5:5100")), Ok(()));
    assert_eq!(
        policy.check_endpoint(addr("10.0.0.5:5101")),
        Err("port_not_allowed")
    );
    assert_eq!(policy.check_endpoint(addr("[fd00::7]:6000")), Ok(()));
    assert_eq!(policy.check_endpoint(addr("192.168.1.1:9")), Ok(()));
    assert_eq!(policy.check_endpoint(addr("8.8.8.8:53")), Ok(()), "public");
    assert_eq!(
        policy.check_endpoint(addr("203.0.113.9:3478")),
        Err("own_address")
    );
}

#[test]
fn allow_list_entries_parse_from_text_and_refuse_nonsense() {
    let ip: IpAddr = "10.0.0.5".parse().expect("ip");
    assert_eq!("10.0.0.5".parse(), Ok(PeerRule { ip, ports: None }));
    assert_eq!(
        "10.0.0.5:7".parse(),
        Ok(PeerRule {
            ip,
            ports: Some((7, 7))
        })
    );
    let v6: IpAddr = "2001:db8::1".parse().expect("ip");
    assert_eq!(
        "[2001:db8::1]:5000-5100".parse(),
        Ok(PeerRule {
            ip: v6,
            ports: Some((5000, 5100))
        })
    );
    for bad in [
        "",
        "10.0.0.5:",
        "10.0.0.5:0",
        "10.0.0.5:9-8",
        "10.0.0.5:x",
        "host:80",
        ":80",
    ] {
        assert!(bad.parse::<PeerRule>().is_err(), "{bad:?}");
    }
}
