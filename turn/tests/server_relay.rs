//! The sans-IO server's data path on a fake clock: permissions, channels, Send/Data
//! indications, ChannelData, lifetimes, denied peers and the bandwidth cap.

use std::net::SocketAddr;
use std::time::Duration;

use tern_turn::server::{DropReason, Transport};
use tern_turn::testkit::{Harness, Outcome, PEER_V4, TestClient, config};
use tern_turn::{ChannelData, Class, Message, Method, attr};

fn peer() -> SocketAddr {
    PEER_V4.parse().expect("peer")
}

fn ready(transport: Transport) -> (Harness, TestClient, SocketAddr) {
    let mut h = Harness::new(config());
    let mut c = TestClient::new(transport, "198.18.0.10:40000", "alice", "secret");
    let relay = c.allocate(&mut h);
    (h, c, relay)
}

fn to_peer(relay: SocketAddr, data: &[u8]) -> Outcome {
    Outcome::ToPeer {
        relay,
        peer: peer(),
        data: data.to_vec(),
    }
}

#[test]
fn send_and_data_indications_need_a_permission() {
    let (mut h, mut c, relay) = ready(Transport::Udp);
    let send = c.send_indication(peer(), b"hello");
    assert_eq!(
        h.from_client(c.id, &send),
        Outcome::Dropped(DropReason::NoPermission)
    );
    assert_eq!(
        h.from_peer(relay, peer(), b"in"),
        Outcome::Dropped(DropReason::NoPermission)
    );
    assert_eq!(
        h.from_client(c.id, &c.create_permission(&[peer()])).code(),
        0
    );
    let send = c.send_indication(peer(), b"hello");
    assert_eq!(h.from_client(c.id, &send), to_peer(relay, b"hello"));

    let Outcome::ToClient(to, bytes) = h.from_peer(relay, peer(), b"reply") else {
        panic!("peer data not relayed")
    };
    assert_eq!(to, c.id);
    let m = Message::parse(&bytes).expect("Data indication parses");
    assert_eq!((m.method(), m.class()), (Method::DATA, Class::Indication));
    assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS), Some(peer()));
    assert_eq!(m.value(attr::DATA), Some(&b"reply"[..]));
    // A permission covers the IP, any port.
    let other_port: SocketAddr = "203.0.113.5:1".parse().expect("addr");
    assert!(matches!(
        h.from_peer(relay, other_port, b"x"),
        Outcome::ToClient(..)
    ));
    let stats = h.server.stats();
    assert_eq!((stats.to_peer_packets, stats.to_peer_bytes), (1, 5));
    assert_eq!((stats.to_client_packets, stats.to_client_bytes), (2, 6));
}

#[test]
fn channels_carry_data_both_ways() {
    let (mut h, mut c, relay) = ready(Transport::Udp);
    let mut cd = [0u8; 64];
    let n = ChannelData::write(0x4001, b"media", &mut cd, false).expect("fits");
    assert_eq!(
        h.from_client(c.id, &cd[..n]),
        Outcome::Dropped(DropReason::NoChannel)
    );
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, peer())).code(),
        0
    );
    assert_eq!(h.from_client(c.id, &cd[..n]), to_peer(relay, b"media"));
    let Outcome::ToClient(_, bytes) = h.from_peer(relay, peer(), b"back") else {
        panic!("not relayed")
    };
    assert_eq!(bytes, [0x40, 0x01, 0, 4, b'b', b'a', b'c', b'k']);
    // Binding again refreshes; conflicting bindings are refused.
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, peer())).code(),
        0
    );
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4002, peer())).code(),
        400
    );
    let other: SocketAddr = "203.0.113.5:9001".parse().expect("addr");
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, other)).code(),
        400
    );
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x3FFF, other)).code(),
        400
    );
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x8000, other)).code(),
        400
    );
}

#[test]
fn stream_clients_get_padded_channel_data() {
    let (mut h, mut c, relay) = ready(Transport::Tcp);
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, peer())).code(),
        0
    );
    let Outcome::ToClient(_, bytes) = h.from_peer(relay, peer(), b"abcde") else {
        panic!("not relayed")
    };
    assert_eq!(bytes.len(), 12, "4-byte header, 5 bytes, 3 padding");
}

#[test]
fn permissions_last_five_minutes_and_channels_ten() {
    let (mut h, mut c, relay) = ready(Transport::Udp);
    assert_eq!(h.from_client(c.id, &c.refresh(3600)).code(), 0);
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, peer())).code(),
        0
    );
    h.advance(Duration::from_secs(299));
    assert!(matches!(
        h.from_peer(relay, peer(), b"x"),
        Outcome::ToClient(..)
    ));
    h.advance(Duration::from_secs(2));
    assert_eq!(
        h.from_peer(relay, peer(), b"x"),
        Outcome::Dropped(DropReason::NoPermission)
    );
    assert_eq!(
        h.from_client(c.id, &c.create_permission(&[peer()])).code(),
        0
    );
    let Outcome::ToClient(_, bytes) = h.from_peer(relay, peer(), b"x") else {
        panic!("not relayed")
    };
    assert_eq!(bytes[0], 0x40, "the channel outlives the first permission");
    h.advance(Duration::from_secs(300));
    let reply = c.transact(&mut h, |c| c.create_permission(&[peer()]));
    assert_eq!(reply.code(), 0);
    let Outcome::ToClient(_, bytes) = h.from_peer(relay, peer(), b"x") else {
        panic!("not relayed")
    };
    assert_eq!(
        bytes[0], 0x00,
        "after 10 minutes the channel is gone: Data indication"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.stats().channels, 0);
    assert_eq!(h.server.stats().permissions, 1);
    // For 5 minutes after expiry the number and the peer stay reserved for each other.
    let other: SocketAddr = "203.0.113.5:9001".parse().expect("addr");
    let reply = c.transact(&mut h, |c| c.channel_bind(0x4001, other));
    assert_eq!(reply.code(), 400, "number still cooling down");
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4002, peer())).code(),
        400,
        "peer still cooling down"
    );
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, peer())).code(),
        0,
        "the same pair may rebind"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.stats().channels, 1);
}

#[test]
fn an_expired_channel_is_free_after_its_cooldown() {
    let (mut h, mut c, _) = ready(Transport::Udp);
    assert_eq!(h.from_client(c.id, &c.refresh(3600)).code(), 0);
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, peer())).code(),
        0
    );
    h.advance(Duration::from_secs(600 + 301));
    let other: SocketAddr = "203.0.113.5:9001".parse().expect("addr");
    assert_eq!(
        c.transact(&mut h, |c| c.channel_bind(0x4001, other)).code(),
        0
    );
}

#[test]
fn allocations_expire_and_refresh_extends_them() {
    let (mut h, mut c, relay) = ready(Transport::Udp);
    h.advance(Duration::from_secs(590));
    let reply = h.from_client(c.id, &c.refresh(1200));
    assert_eq!(reply.code(), 0);
    let m = Message::parse(reply.bytes()).expect("parses");
    assert_eq!(
        m.value(attr::LIFETIME).and_then(attr::decode_u32),
        Some(1200)
    );
    h.advance(Duration::from_secs(1199));
    assert!(h.host.open.contains(&relay));
    h.advance(Duration::from_secs(2));
    assert!(
        !h.host.open.contains(&relay),
        "expired allocation closed its relay"
    );
    assert_eq!(c.transact(&mut h, |c| c.refresh(600)).code(), 437);

    // LIFETIME is clamped to [default, max]; 0 deletes.
    let (mut h, mut c, relay) = ready(Transport::Udp);
    let reply = h.from_client(c.id, &c.refresh(10));
    let m = Message::parse(reply.bytes()).expect("parses");
    assert_eq!(
        m.value(attr::LIFETIME).and_then(attr::decode_u32),
        Some(600)
    );
    let reply = h.from_client(c.id, &c.refresh(1_000_000));
    let m = Message::parse(reply.bytes()).expect("parses");
    assert_eq!(
        m.value(attr::LIFETIME).and_then(attr::decode_u32),
        Some(3600)
    );
    assert_eq!(h.from_client(c.id, &c.refresh(0)).code(), 0);
    assert!(!h.host.open.contains(&relay));
}

#[test]
fn denied_peers_get_403_at_create_permission_and_channel_bind() {
    let (mut h, mut c, _) = ready(Transport::Udp);
    for denied in [
        "127.0.0.1:9",
        "10.0.0.1:9",
        "[::ffff:127.0.0.1]:9",
        "203.0.113.6:9",
    ] {
        let p: SocketAddr = denied.parse().expect("addr");
        let code = h.from_client(c.id, &c.create_permission(&[p])).code();
        // A mapped IPv6 address on an IPv4 allocation is a family mismatch before policy.
        let expected = if p.is_ipv6() { 443 } else { 403 };
        assert_eq!(code, expected, "CreatePermission {denied}");
        if p.is_ipv4() {
            assert_eq!(
                h.from_client(c.id, &c.channel_bind(0x4005, p)).code(),
                403,
                "ChannelBind {denied}"
            );
        }
    }
    // One denied peer refuses the whole request.
    let mixed = c.create_permission(&[peer(), "10.0.0.1:9".parse().expect("addr")]);
    assert_eq!(h.from_client(c.id, &mixed).code(), 403);
    let send = c.send_indication(peer(), b"x");
    assert_eq!(
        h.from_client(c.id, &send),
        Outcome::Dropped(DropReason::NoPermission)
    );
    let refused = &h.server.stats().refused_peers;
    assert_eq!(refused.get("loopback"), Some(&2));
    assert_eq!(refused.get("private"), Some(&3));
    assert_eq!(refused.get("documentation"), Some(&2));
}

#[test]
fn the_bandwidth_cap_drops_what_exceeds_it() {
    let mut cfg = config();
    cfg.bandwidth_bytes_per_sec = 10_000;
    let mut h = Harness::new(cfg);
    let mut c = TestClient::udp("198.18.0.10:40000", "alice", "secret");
    let relay = c.allocate(&mut h);
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, peer())).code(),
        0
    );
    let payload = [7u8; 1000];
    let mut cd = [0u8; 1100];
    let n = ChannelData::write(0x4001, &payload, &mut cd, false).expect("fits");
    let sent = (0..20)
        .filter(|_| matches!(h.from_client(c.id, &cd[..n]), Outcome::ToPeer { .. }))
        .count();
    assert_eq!(sent, 10, "one second of burst");
    assert_eq!(
        h.from_peer(relay, peer(), &payload),
        Outcome::Dropped(DropReason::Bandwidth)
    );
    h.advance(Duration::from_millis(500));
    let sent = (0..20)
        .filter(|_| matches!(h.from_client(c.id, &cd[..n]), Outcome::ToPeer { .. }))
        .count();
    assert_eq!(sent, 5, "refills at the cap");
}

#[test]
fn data_for_unknown_clients_and_relays_is_dropped() {
    let (mut h, c, relay) = ready(Transport::Udp);
    let stranger = TestClient::udp("198.18.0.77:1", "alice", "secret");
    let mut cd = [0u8; 16];
    let n = ChannelData::write(0x4001, b"x", &mut cd, false).expect("fits");
    assert_eq!(
        h.from_client(stranger.id, &cd[..n]),
        Outcome::Dropped(DropReason::NoAllocation)
    );
    let other_relay = SocketAddr::new(relay.ip(), relay.port() ^ 1);
    assert_eq!(
        h.from_peer(other_relay, peer(), b"x"),
        Outcome::Dropped(DropReason::NoAllocation)
    );
    assert_eq!(
        h.from_client(c.id, &[0x80, 0, 0, 0]),
        Outcome::Dropped(DropReason::Malformed)
    );
    assert_eq!(
        h.from_client(c.id, &[]),
        Outcome::Dropped(DropReason::Malformed)
    );
    assert_eq!(
        h.server.stats().dropped.get(&DropReason::Malformed),
        Some(&2)
    );
}

/// A relay allowed one exact peer socket (as the embedded relay is allowed the SFU's): a
/// permission for its address covers that port only. ChannelBind to another port of the same
/// address, or to the relay's own addresses, gets 403; port 0 gets 400; Send indications to
/// another port are dropped and counted, and so is data from another port.
#[test]
fn only_the_allowed_port_of_an_allowed_address_is_relayed() {
    let mut cfg = config();
    let relay_ip = "192.0.2.1";
    cfg.peer_policy = tern_turn::peer_policy::PeerPolicy::only([peer()]).with_own([
        format!("{relay_ip}:50000-50099").parse().expect("range"),
        format!("{relay_ip}:3478").parse().expect("listener"),
    ]);
    let mut h = Harness::new(cfg);
    let mut c = TestClient::udp("198.18.0.10:40000", "alice", "secret");
    let relay = c.allocate(&mut h);
    assert_eq!(
        h.from_client(c.id, &c.create_permission(&[peer()])).code(),
        0
    );
    let other_port = SocketAddr::new(peer().ip(), 53);
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, other_port))
            .code(),
        403
    );
    let port_zero = SocketAddr::new(peer().ip(), 0);
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4001, port_zero))
            .code(),
        400
    );
    for own in [format!("{relay_ip}:50001"), format!("{relay_ip}:3478")] {
        let own: SocketAddr = own.parse().expect("addr");
        assert_eq!(
            h.from_client(c.id, &c.channel_bind(0x4002, own)).code(),
            403,
            "{own}"
        );
    }
    assert_eq!(
        h.from_client(c.id, &c.channel_bind(0x4003, peer())).code(),
        0
    );
    assert_eq!(
        h.from_client(c.id, &c.send_indication(other_port, b"x")),
        Outcome::Dropped(DropReason::PeerRefused)
    );
    assert_eq!(
        h.from_client(c.id, &c.send_indication(peer(), b"y")),
        to_peer(relay, b"y")
    );
    assert_eq!(
        h.from_peer(relay, other_port, b"z"),
        Outcome::Dropped(DropReason::PeerRefused)
    );
    let refused = &h.server.stats().refused_peers;
    assert_eq!(refused.get("port_not_allowed"), Some(&3));
    assert_eq!(refused.get("own_address"), Some(&2));
}
