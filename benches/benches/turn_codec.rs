//! The STUN/TURN codec's hot operations (issue 3's micro-bench table).

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use criterion::Criterion;
use tern_turn::server::auth::{Credentials, Nonces};
use tern_turn::{Class, IntegrityKey, Message, MessageWriter, Method, attr, long_term_key_md5};

/// A Binding request as ICE sends it, and an Allocate with long-term credentials and `nonce`.
fn samples(nonce: &[u8]) -> (Vec<u8>, Vec<u8>, [u8; 16]) {
    let mut buf = [0u8; 256];
    let mut w =
        MessageWriter::new(&mut buf, Method::BINDING, Class::Request, [3; 12]).expect("fits");
    w.attr(attr::USERNAME, b"evtj:h6vY").expect("fits");
    w.u32(attr::PRIORITY, 0x6e0001ff).expect("fits");
    w.integrity(&IntegrityKey::sha1(b"VOkJxbRl1RmTxUk/WvJxBt"))
        .expect("fits");
    let n = w.fingerprint().expect("fits");
    let binding = buf[..n].to_vec();
    let key = long_term_key_md5("user", "tern", "secret");
    let mut w =
        MessageWriter::new(&mut buf, Method::ALLOCATE, Class::Request, [4; 12]).expect("fits");
    w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .expect("fits");
    w.attr(attr::USERNAME, b"user").expect("fits");
    w.attr(attr::REALM, b"tern").expect("fits");
    w.attr(attr::NONCE, nonce).expect("fits");
    w.integrity(&IntegrityKey::sha1(&key)).expect("fits");
    let n = w.fingerprint().expect("fits");
    (binding, buf[..n].to_vec(), key)
}

/// Runs the codec benches.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    let ip: IpAddr = "198.18.0.10".parse().expect("ip");
    let unix = 1_800_000_000;
    let nonces = Nonces::new(Duration::from_secs(600));
    let (binding, allocate, key) = samples(&nonces.issue(unix, 7, ip));
    c.bench_function("stun_parse_binding_request", |b| {
        b.iter(|| Message::parse(black_box(&binding)).is_ok())
    });
    let m = Message::parse(&allocate).expect("parses");
    let cached = IntegrityKey::sha1(&key); // what a relay keeps per user
    c.bench_function("stun_message_integrity_check", |b| {
        b.iter(|| m.integrity_ok(black_box(&cached)))
    });
    c.bench_function("stun_credential_validation_uncached_key", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&allocate)).expect("parses");
            let user = std::str::from_utf8(m.value(attr::USERNAME).unwrap_or_default())
                .unwrap_or_default();
            let realm =
                std::str::from_utf8(m.value(attr::REALM).unwrap_or_default()).unwrap_or_default();
            let key = IntegrityKey::sha1(&long_term_key_md5(user, realm, "secret"));
            m.integrity_ok(&key)
        })
    });
    let users = [("user".to_owned(), "secret".to_owned())].into();
    let mut credentials = Credentials::new("tern", users, None);
    assert!(
        credentials
            .validate(&nonces, &m, unix, ip)
            .is_ok_and(|v| v.username == "user")
    );
    // What the relay does for every authenticated request: parse, nonce, cached key, HMAC.
    c.bench_function("stun_credential_validation_cached_key", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&allocate)).expect("parses");
            credentials.validate(&nonces, &m, unix, ip).is_ok()
        })
    });
    let mut out = [0u8; 128];
    for (name, addr) in [
        ("xor_mapped_address_encode_v4", "192.0.2.1:32853"),
        ("xor_mapped_address_encode_v6", "[2001:db8::1]:32853"),
    ] {
        let addr: SocketAddr = addr.parse().expect("addr");
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut w = MessageWriter::new(&mut out, Method::BINDING, Class::Success, [5; 12])
                    .expect("fits");
                w.xor_address(attr::XOR_MAPPED_ADDRESS, black_box(addr))
                    .expect("fits");
                w.finish()
            })
        });
    }
    c.final_summary();
}
