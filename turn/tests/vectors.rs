//! Conformance vectors: RFC 5769 sections 2.1-2.4 (decode, verify, and byte-exact encode) and
//! RFC 8489 Appendix B.1 as corrected by erratum 6268 (SHA-256 integrity, USERHASH).

use std::net::SocketAddr;

use tern_turn::{
    Class, IntegrityKey, Message, MessageWriter, Method, attr, long_term_key_md5,
    long_term_key_sha256, userhash,
};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

const TID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];
const SHORT_TERM_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

const SAMPLE_REQUEST: &str = "
    0001 0058 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 0010 5354554e 20746573 7420636c 69656e74
    0024 0004 6e0001ff
    8029 0008 932ff9b1 51263b36
    0006 0009 6576746a 3a683676 59202020
    0008 0014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
    8028 0004 e57a3bcf";

const SAMPLE_IPV4_RESPONSE: &str = "
    0101 003c 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 000b 74657374 20766563 746f7220
    0020 0008 0001a147 e112a643
    0008 0014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
    8028 0004 c07d4c96";

const SAMPLE_IPV6_RESPONSE: &str = "
    0101 0048 2112a442 b7e7a701 bc34d686 fa87dfae
    8022 000b 74657374 20766563 746f7220
    0020 0014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
    0008 0014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
    8028 0004 c8fb0b4c";

const SAMPLE_LONG_TERM_REQUEST: &str = "
    0001 0060 2112a442 78ad3433 c6ad72c0 29da412e
    0006 0012 e3839ee3 8388e383 aae38383 e382afe3 82b90000
    0015 001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341
    0014 000b 6578616d 706c652e 6f726700
    0008 0014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666";

const RFC8489_B1: &str = "
    0001 0090 2112a442 78ad3433 c6ad72c0 29da412e
    001e 0020 4a3cf38f ef6992bd a952c678 0417da0f 24819415 569e60b2 05c46e41 407f1704
    0015 0029 6f624d61 744a6f73 32414141 43662f2f 3439396b 39353464 364f4c33 346f4c39 46535476 79363473 41000000
    0014 000b 6578616d 706c652e 6f726700
    001d 0004 00020000
    001c 0020 b5c7bf00 5b6c52a2 1c51c5e8 92f81924 136296cb 927c4314 9309278c c6518e65";

/// "マトリックス" (the RFC's username) and its realm and password after SASLprep/OpaqueString.
const USERNAME: &str = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
const REALM: &str = "example.org";
const PASSWORD: &str = "TheMatrIX";
const NONCE: &str = "f//499k954d6OL34oL9FSTvy64sA";

#[test]
fn rfc5769_2_1_sample_request_decodes_and_verifies() {
    let bytes = hex(SAMPLE_REQUEST);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!((m.method(), m.class()), (Method::BINDING, Class::Request));
    assert_eq!(m.transaction_id(), TID);
    assert_eq!(m.value(attr::SOFTWARE), Some(&b"STUN test client"[..]));
    assert_eq!(m.value(attr::USERNAME), Some(&b"evtj:h6vY"[..]));
    assert_eq!(
        m.value(attr::PRIORITY).and_then(attr::decode_u32),
        Some(0x6e0001ff)
    );
    assert_eq!(m.fingerprint_ok(), Some(true));
    assert_eq!(
        m.integrity_ok(&IntegrityKey::sha1(SHORT_TERM_PASSWORD.as_bytes())),
        Some(true)
    );
    assert_eq!(m.integrity_ok(&IntegrityKey::sha1(b"wrong")), Some(false));
}

#[test]
fn rfc5769_2_1_sample_request_encodes_byte_for_byte() {
    let mut buf = [0u8; 256];
    let mut w = MessageWriter::new(&mut buf, Method::BINDING, Class::Request, TID)
        .expect("fits")
        .padding(0x20);
    w.attr(attr::SOFTWARE, b"STUN test client").expect("fits");
    w.u32(attr::PRIORITY, 0x6e0001ff).expect("fits");
    w.attr(attr::ICE_CONTROLLED, &hex("932ff9b1 51263b36"))
        .expect("fits");
    w.attr(attr::USERNAME, b"evtj:h6vY").expect("fits");
    w.integrity(&IntegrityKey::sha1(SHORT_TERM_PASSWORD.as_bytes()))
        .expect("fits");
    let n = w.fingerprint().expect("fits");
    assert_eq!(buf[..n], hex(SAMPLE_REQUEST)[..]);
}

#[test]
fn rfc5769_2_2_and_2_3_responses_decode_verify_and_encode() {
    let cases = [
        (SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853"),
        (
            SAMPLE_IPV6_RESPONSE,
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ),
    ];
    for (vector, addr) in cases {
        let addr: SocketAddr = addr.parse().expect("addr");
        let bytes = hex(vector);
        let m = Message::parse(&bytes).expect("parses");
        assert_eq!((m.method(), m.class()), (Method::BINDING, Class::Success));
        assert_eq!(m.value(attr::SOFTWARE), Some(&b"test vector"[..]));
        assert_eq!(m.xor_address(attr::XOR_MAPPED_ADDRESS), Some(addr));
        assert_eq!(m.fingerprint_ok(), Some(true));
        assert_eq!(
            m.integrity_ok(&IntegrityKey::sha1(SHORT_TERM_PASSWORD.as_bytes())),
            Some(true)
        );

        let mut buf = [0u8; 256];
        let mut w = MessageWriter::new(&mut buf, Method::BINDING, Class::Success, TID)
            .expect("fits")
            .padding(0x20);
        w.attr(attr::SOFTWARE, b"test vector").expect("fits");
        w.xor_address(attr::XOR_MAPPED_ADDRESS, addr).expect("fits");
        w.integrity(&IntegrityKey::sha1(SHORT_TERM_PASSWORD.as_bytes()))
            .expect("fits");
        let n = w.fingerprint().expect("fits");
        assert_eq!(buf[..n], bytes[..], "{addr}");
    }
}

#[test]
fn rfc5769_2_4_long_term_request_decodes_verifies_and_encodes() {
    let bytes = hex(SAMPLE_LONG_TERM_REQUEST);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!(m.value(attr::USERNAME), Some(USERNAME.as_bytes()));
    assert_eq!(m.value(attr::NONCE), Some(NONCE.as_bytes()));
    assert_eq!(m.value(attr::REALM), Some(REALM.as_bytes()));
    let key = long_term_key_md5(USERNAME, REALM, PASSWORD);
    assert_eq!(m.integrity_ok(&IntegrityKey::sha1(&key)), Some(true));
    assert_eq!(m.fingerprint_ok(), None);

    let mut buf = [0u8; 256];
    let tid: [u8; 12] = bytes[8..20].try_into().expect("12 bytes");
    let mut w = MessageWriter::new(&mut buf, Method::BINDING, Class::Request, tid).expect("fits");
    w.attr(attr::USERNAME, USERNAME.as_bytes()).expect("fits");
    w.attr(attr::NONCE, NONCE.as_bytes()).expect("fits");
    w.attr(attr::REALM, REALM.as_bytes()).expect("fits");
    w.integrity(&IntegrityKey::sha1(&key)).expect("fits");
    let n = w.finish();
    assert_eq!(buf[..n], bytes[..]);
}

#[test]
fn rfc8489_b1_sha256_integrity_and_userhash() {
    let bytes = hex(RFC8489_B1);
    let m = Message::parse(&bytes).expect("parses");
    assert_eq!(
        m.value(attr::USERHASH),
        Some(&userhash(USERNAME, REALM)[..])
    );
    assert_eq!(m.value(attr::PASSWORD_ALGORITHM), Some(&[0, 2, 0, 0][..]));
    let key = long_term_key_sha256(USERNAME, REALM, PASSWORD);
    assert_eq!(m.integrity_ok(&IntegrityKey::sha256(&key)), Some(true));
    assert_eq!(
        m.integrity_ok(&IntegrityKey::sha256(&long_term_key_sha256(
            USERNAME, REALM, "nope"
        ))),
        Some(false)
    );

    let mut buf = [0u8; 256];
    let tid: [u8; 12] = bytes[8..20].try_into().expect("12 bytes");
    let mut w = MessageWriter::new(&mut buf, Method::BINDING, Class::Request, tid).expect("fits");
    w.attr(attr::USERHASH, &userhash(USERNAME, REALM))
        .expect("fits");
    w.attr(attr::NONCE, b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA")
        .expect("fits");
    w.attr(attr::REALM, REALM.as_bytes()).expect("fits");
    w.attr(attr::PASSWORD_ALGORITHM, &[0, 2, 0, 0])
        .expect("fits");
    w.integrity(&IntegrityKey::sha256(&key)).expect("fits");
    let n = w.finish();
    assert_eq!(buf[..n], bytes[..]);
}
