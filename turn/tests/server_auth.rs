//! The sans-IO server's requests and credentials on a fake clock: challenges, nonces, REST
//! credentials, error codes and quotas.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tern_turn::server::{DropReason, Shared, Transport};
use tern_turn::testkit::{
    Harness, Outcome, PEER_V4, PEER_V6, Sign, TestClient, UNIX_START, config,
};
use tern_turn::{Class, Message, Method, attr};

fn peer(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn alice() -> TestClient {
    TestClient::udp("198.18.0.10:40000", "alice", "secret")
}

#[test]
fn binding_is_answered_without_credentials() {
    let mut h = Harness::new(config());
    let mut c = alice();
    let req = c.message(Method::BINDING, Class::Request, Sign::None, |_| Ok(()));
    let reply = h.from_client(c.id, &req);
    assert_eq!(reply.status(), (Class::Success, 0));
    let m = Message::parse(reply.bytes()).expect("parses");
    assert_eq!(m.xor_address(attr::XOR_MAPPED_ADDRESS), Some(c.id.remote));
    assert_eq!(m.fingerprint_ok(), Some(true));
}

#[test]
fn unauthenticated_allocate_gets_401_with_realm_and_nonce() {
    let mut h = Harness::new(config());
    let mut c = alice();
    let reply = h.from_client(c.id, &c.allocate_request(Sign::None));
    assert_eq!(reply.status(), (Class::Error, 401));
    let m = Message::parse(reply.bytes()).expect("parses");
    assert_eq!(m.value(attr::REALM), Some(&b"tern"[..]));
    assert_eq!(m.value(attr::NONCE).map(<[u8]>::len), Some(32));
    assert!(m.get(attr::MESSAGE_INTEGRITY).is_none());
}

#[test]
fn signed_allocate_succeeds_and_the_response_is_signed() {
    let mut h = Harness::new(config());
    let mut c = alice();
    let relay = c.allocate(&mut h);
    assert_eq!(relay.ip(), peer("192.0.2.1:0").ip());
    assert!((50000..=50099).contains(&relay.port()));
    assert!(h.host.open.contains(&relay), "the relay socket was opened");
    let refresh = h.from_client(c.id, &c.refresh(600));
    let m = Message::parse(refresh.bytes()).expect("parses");
    let key =
        tern_turn::IntegrityKey::sha1(&tern_turn::long_term_key_md5("alice", "tern", "secret"));
    assert_eq!(
        m.integrity_ok(&key),
        Some(true),
        "responses carry MESSAGE-INTEGRITY"
    );
}

#[test]
fn sha256_integrity_is_accepted_and_answered_in_kind() {
    let mut h = Harness::new(config());
    let mut c = alice();
    c.challenge(&mut h);
    let reply = h.from_client(c.id, &c.allocate_request(Sign::Sha256));
    assert_eq!(reply.status(), (Class::Success, 0));
    let m = Message::parse(reply.bytes()).expect("parses");
    assert!(m.get(attr::MESSAGE_INTEGRITY_SHA256).is_some());
}

#[test]
fn wrong_password_and_unknown_user_get_401() {
    let mut h = Harness::new(config());
    for (user, pass) in [("alice", "wrong"), ("mallory", "secret")] {
        let mut c = TestClient::udp("198.18.0.10:40000", user, pass);
        c.challenge(&mut h);
        let reply = h.from_client(c.id, &c.allocate_request(Sign::Sha1));
        assert_eq!(reply.status(), (Class::Error, 401), "{user}/{pass}");
    }
    let failures = &h.server.stats().auth_failures;
    assert_eq!(failures.get("bad_integrity"), Some(&1));
    assert_eq!(failures.get("unknown_user"), Some(&1));
}

#[test]
fn stale_and_forged_nonces_get_438_with_a_fresh_nonce() {
    let mut h = Harness::new(config());
    let mut c = alice();
    c.challenge(&mut h);
    let old = c.nonce.clone();
    h.advance(Duration::from_secs(601));
    let reply = h.from_client(c.id, &c.allocate_request(Sign::Sha1));
    assert_eq!(reply.code(), 438, "stale");
    c.learn(&reply);
    assert_ne!(c.nonce, old);
    assert_eq!(
        h.from_client(c.id, &c.allocate_request(Sign::Sha1)).code(),
        0
    );

    let mut d = TestClient::udp("198.18.0.11:40000", "alice", "secret");
    d.nonce = b"0123456789abcdef0123456789abcdef".to_vec();
    assert_eq!(
        h.from_client(d.id, &d.allocate_request(Sign::Sha1)).code(),
        438,
        "forged"
    );
    d.nonce = c.nonce.clone();
    assert_eq!(
        h.from_client(d.id, &d.allocate_request(Sign::Sha1)).code(),
        438,
        "another IP's nonce"
    );
}

/// A REST credential makes allocations until it expires; the allocation it made lives on
/// (Refresh from its own 5-tuple), so a short credential lifetime does not cut calls short.
#[test]
fn rest_credentials_allocate_until_they_expire_and_their_allocation_lives_on() {
    let mut h = Harness::new(config());
    let user = format!("{}:bob", UNIX_START + 60);
    let pass = tern_turn::server::auth::rest_credential("rest-secret", &user);
    let mut c = TestClient::udp("198.18.0.12:40000", &user, &pass);
    c.allocate(&mut h);
    h.advance(Duration::from_secs(61));
    let reply = c.transact(&mut h, |c| c.refresh(600));
    assert_eq!(reply.code(), 0, "its own allocation refreshes after expiry");
    let mut late = TestClient::udp("198.18.0.14:40000", &user, &pass);
    late.challenge(&mut h);
    let reply = h.from_client(late.id, &late.allocate_request(Sign::Sha1));
    assert_eq!(
        reply.code(),
        401,
        "no new allocation with an expired REST username"
    );
    assert_eq!(h.server.stats().auth_failures.get("expired"), Some(&1));

    let mut wrong = TestClient::udp(
        "198.18.0.13:40000",
        &format!("{}:bob", UNIX_START + 600),
        &pass,
    );
    wrong.challenge(&mut h);
    assert_eq!(
        h.from_client(wrong.id, &wrong.allocate_request(Sign::Sha1))
            .code(),
        401
    );
}

#[test]
fn unknown_comprehension_required_attribute_gets_420_unless_after_integrity() {
    let mut h = Harness::new(config());
    let mut c = alice();
    let req = c.message(Method::BINDING, Class::Request, Sign::None, |w| {
        w.attr(0x7777, b"x")
    });
    let reply = h.from_client(c.id, &req);
    assert_eq!(reply.code(), 420);
    let m = Message::parse(reply.bytes()).expect("parses");
    assert_eq!(m.value(attr::UNKNOWN_ATTRIBUTES), Some(&[0x77, 0x77][..]));

    // After MESSAGE-INTEGRITY attributes are ignored: append one to a signed request.
    c.challenge(&mut h);
    c.fingerprint = false;
    let mut req = c.allocate_request(Sign::Sha1);
    req.extend_from_slice(&[0x77, 0x77, 0, 0]);
    let len = u16::from_be_bytes([req[2], req[3]]) + 4;
    req[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(h.from_client(c.id, &req).code(), 0);
}

#[test]
fn allocation_errors_follow_the_rfc() {
    let mut h = Harness::new(config());
    let mut c = alice();
    c.challenge(&mut h);
    let tcp = c.request(Method::ALLOCATE, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[6, 0, 0, 0])
    });
    assert_eq!(h.from_client(c.id, &tcp).code(), 442);
    let none = c.request(Method::ALLOCATE, |_| Ok(()));
    assert_eq!(h.from_client(c.id, &none).code(), 400);
    let df = c.request(Method::ALLOCATE, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])?;
        w.attr(attr::DONT_FRAGMENT, &[])
    });
    assert_eq!(h.from_client(c.id, &df).code(), 420);
    let reserve = c.request(Method::ALLOCATE, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])?;
        w.attr(attr::EVEN_PORT, &[0x80])
    });
    assert_eq!(h.from_client(c.id, &reserve).code(), 508);
    let token = c.request(Method::ALLOCATE, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])?;
        w.attr(attr::RESERVATION_TOKEN, &[1; 8])
    });
    assert_eq!(h.from_client(c.id, &token).code(), 508);
    assert_eq!(
        h.from_client(c.id, &c.refresh(600)).code(),
        437,
        "Refresh with no allocation"
    );

    let even = c.request(Method::ALLOCATE, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])?;
        w.attr(attr::EVEN_PORT, &[0])
    });
    let ok = h.from_client(c.id, &even);
    assert_eq!(ok.code(), 0);
    let relay = Message::parse(ok.bytes())
        .expect("parses")
        .xor_address(attr::XOR_RELAYED_ADDRESS);
    assert_eq!(relay.map(|r| r.port() % 2), Some(0), "EVEN-PORT");
    assert_eq!(h.from_client(c.id, &even).code(), 0, "retransmission");
    assert_eq!(
        h.from_client(c.id, &c.allocate_request(Sign::Sha1)).code(),
        437,
        "second Allocate"
    );

    let v6peer = c.create_permission(&[peer(PEER_V6)]);
    assert_eq!(
        h.from_client(c.id, &v6peer).code(),
        443,
        "IPv6 peer on an IPv4 allocation"
    );
}

#[test]
fn another_user_on_the_same_five_tuple_gets_441() {
    let mut cfg = config();
    cfg.users.insert("carol".into(), "pw".into());
    let mut h = Harness::new(cfg);
    let mut a = alice();
    a.allocate(&mut h);
    let mut c = TestClient::udp("198.18.0.10:40000", "carol", "pw");
    c.nonce = a.nonce.clone();
    assert_eq!(h.from_client(c.id, &c.refresh(600)).code(), 441);
    assert_eq!(
        h.from_client(c.id, &c.create_permission(&[peer(PEER_V4)]))
            .code(),
        441
    );
}

#[test]
fn ipv6_and_dual_stack_allocations() {
    let mut h = Harness::new(config());
    let mut c = alice();
    c.challenge(&mut h);
    let dual = c.request(Method::ALLOCATE, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])?;
        w.attr(attr::ADDITIONAL_ADDRESS_FAMILY, &[2, 0, 0, 0])
    });
    let ok = h.from_client(c.id, &dual);
    assert_eq!(ok.code(), 0);
    let m = Message::parse(ok.bytes()).expect("parses");
    let relays: Vec<_> = m
        .counted_attrs()
        .filter(|a| a.kind == attr::XOR_RELAYED_ADDRESS)
        .filter_map(|a| attr::decode_xor_address(a.value, &m.transaction_id()))
        .collect();
    assert_eq!(relays.len(), 2);
    assert!(relays[0].is_ipv4() && relays[1].is_ipv6());
    let both = c.create_permission(&[peer(PEER_V4), peer(PEER_V6)]);
    assert_eq!(h.from_client(c.id, &both).code(), 0);

    let mut cfg = config();
    cfg.relay_v6 = None;
    let mut h = Harness::new(cfg);
    let mut c = alice();
    c.challenge(&mut h);
    let v6 = c.request(Method::ALLOCATE, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])?;
        w.attr(attr::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0])
    });
    assert_eq!(h.from_client(c.id, &v6).code(), 440);
}

#[test]
fn quotas_give_486_and_an_exhausted_port_pool_508() {
    let mut cfg = config();
    cfg.max_allocations_per_user = 2;
    cfg.max_allocations = 3;
    cfg.users.insert("dave".into(), "pw".into());
    let cfg = Arc::new(cfg);
    let shared = Arc::new(Shared::new(&cfg));
    // Two workers share quotas.
    let mut h1 = Harness::with_shared(cfg.clone(), shared.clone(), std::time::Instant::now());
    let mut h2 = Harness::with_shared(cfg, shared.clone(), std::time::Instant::now());
    let mut a1 = TestClient::udp("198.18.0.10:1", "alice", "secret");
    let mut a2 = TestClient::udp("198.18.0.10:2", "alice", "secret");
    let mut a3 = TestClient::udp("198.18.0.10:3", "alice", "secret");
    a1.allocate(&mut h1);
    a2.allocate(&mut h2);
    a3.challenge(&mut h1);
    assert_eq!(
        h1.from_client(a3.id, &a3.allocate_request(Sign::Sha1))
            .code(),
        486,
        "per user"
    );
    let mut d1 = TestClient::udp("198.18.0.10:4", "dave", "pw");
    d1.allocate(&mut h1);
    let mut d2 = TestClient::udp("198.18.0.10:5", "dave", "pw");
    d2.challenge(&mut h2);
    assert_eq!(
        h2.from_client(d2.id, &d2.allocate_request(Sign::Sha1))
            .code(),
        486,
        "total"
    );
    assert_eq!(shared.allocations(), 3);
    assert_eq!(
        h1.from_client(a1.id, &a1.refresh(0)).code(),
        0,
        "delete frees quota"
    );
    assert_eq!(
        h2.from_client(d2.id, &d2.allocate_request(Sign::Sha1))
            .code(),
        0
    );

    let mut cfg = config();
    cfg.min_port = 50000;
    cfg.max_port = 50001;
    let mut h = Harness::new(cfg);
    for i in 0..2 {
        TestClient::udp(&format!("198.18.0.10:{}", 100 + i), "alice", "secret").allocate(&mut h);
    }
    let mut c = TestClient::udp("198.18.0.10:200", "alice", "secret");
    c.challenge(&mut h);
    assert_eq!(
        h.from_client(c.id, &c.allocate_request(Sign::Sha1)).code(),
        508
    );
}

#[test]
fn relay_ports_are_spread_over_the_range() {
    let mut cfg = config();
    cfg.max_allocations_per_user = 100;
    let mut h = Harness::new(cfg);
    let ports: Vec<u16> = (0..20)
        .map(|i| TestClient::udp(&format!("198.18.0.10:{}", 1000 + i), "alice", "secret"))
        .map(|mut c| c.allocate(&mut h).port())
        .collect();
    let sequential = ports.windows(2).filter(|w| w[1] == w[0] + 1).count();
    assert!(sequential < 5, "ports look sequential: {ports:?}");
}

#[test]
fn unauthorized_answers_are_rate_limited_per_source() {
    let mut cfg = config();
    cfg.unauthorized_per_sec = 5;
    let mut h = Harness::new(cfg);
    let mut c = alice();
    let outcomes: Vec<Outcome> = (0..50)
        .map(|_| {
            let req = c.allocate_request(Sign::None);
            h.from_client(c.id, &req)
        })
        .collect();
    let answered = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Reply(_)))
        .count();
    assert_eq!(answered, 10, "a burst of twice the rate");
    assert!(outcomes.contains(&Outcome::Dropped(DropReason::RateLimited)));
    let mut other = TestClient::udp("198.18.0.99:1", "alice", "secret");
    assert_eq!(
        h.from_client(other.id, &other.allocate_request(Sign::None))
            .code(),
        401
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.from_client(c.id, &c.allocate_request(Sign::None)).code(),
        401,
        "refilled"
    );
}

#[test]
fn malformed_requests_get_coturns_answers() {
    let mut h = Harness::new(config());
    let mut c = alice();
    let mut req = c.allocate_request(Sign::None);
    // Attribute length overrun inside a well-framed message: 401 like coturn.
    req[22..24].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(h.from_client(c.id, &req).code(), 401);
    let truncated = c.allocate_request(Sign::None);
    assert_eq!(
        h.from_client(c.id, &truncated[..19]),
        Outcome::Dropped(DropReason::Malformed)
    );
    let mut bad_fp = c.allocate_request(Sign::None);
    let last = bad_fp.len() - 1;
    bad_fp[last] ^= 1;
    assert_eq!(
        h.from_client(c.id, &bad_fp),
        Outcome::Dropped(DropReason::BadFingerprint)
    );
    let unknown_method = c.message(Method(0x00B), Class::Request, Sign::None, |_| Ok(()));
    assert_eq!(h.from_client(c.id, &unknown_method).code(), 400);
    let response = c.message(Method::BINDING, Class::Success, Sign::None, |_| Ok(()));
    assert_eq!(
        h.from_client(c.id, &response),
        Outcome::Dropped(DropReason::Unexpected)
    );
}

#[test]
fn stream_clients_lose_their_allocation_when_the_connection_closes() {
    let mut h = Harness::new(config());
    let mut c = TestClient::new(Transport::Tcp, "198.18.0.20:5000", "alice", "secret");
    let relay = c.allocate(&mut h);
    h.server.client_closed(&mut h.host, c.id);
    assert!(!h.host.open.contains(&relay));
    assert_eq!(h.server.stats().allocations, 0);
}

/// A revoked user (a participant tern removed) loses its allocations within a sweep, and its
/// credentials, even unexpired ones, are refused from then on; other users are untouched.
#[test]
fn a_revoked_user_loses_its_allocations_and_its_credentials() {
    let mut h = Harness::new(config());
    let credential = |name: &str| {
        let user = format!("{}:{name}", UNIX_START + 3600);
        let pass = tern_turn::server::auth::rest_credential("rest-secret", &user);
        (user, pass)
    };
    let (user, pass) = credential("PA_7");
    let mut gone = TestClient::udp("198.18.0.20:40000", &user, &pass);
    gone.allocate(&mut h);
    let (other_user, other_pass) = credential("PA_8");
    let mut stays = TestClient::udp("198.18.0.21:40000", &other_user, &other_pass);
    stays.allocate(&mut h);
    assert_eq!(h.server.stats().allocations, 2);

    h.shared.revoke("PA_7", UNIX_START + 3600);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.server.stats().allocations, 1, "PA_7's allocation is gone");
    let reply = gone.transact(&mut h, |c| c.refresh(600));
    assert_eq!(reply.code(), 401, "its credentials are refused");
    let mut again = TestClient::udp("198.18.0.22:40000", &user, &pass);
    again.challenge(&mut h);
    let reply = h.from_client(again.id, &again.allocate_request(Sign::Sha1));
    assert_eq!(
        reply.code(),
        401,
        "revoked credentials make no new allocation"
    );
    assert_eq!(h.server.stats().auth_failures.get("revoked"), Some(&2));
    assert_eq!(stays.transact(&mut h, |c| c.refresh(600)).code(), 0);
}
