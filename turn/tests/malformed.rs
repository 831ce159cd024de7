//! Malformed STUN: every defect is a typed error, never a panic.

use tern_turn::{Class, IntegrityKey, Message, MessageWriter, Method, ParseError, attr};

fn valid() -> Vec<u8> {
    let mut buf = [0u8; 128];
    let mut w =
        MessageWriter::new(&mut buf, Method::ALLOCATE, Class::Request, [9; 12]).expect("fits");
    w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .expect("fits");
    w.attr(attr::SOFTWARE, b"client").expect("fits");
    let n = w.fingerprint().expect("fits");
    buf[..n].to_vec()
}

#[test]
fn truncations_at_every_length_are_errors() {
    let m = valid();
    assert!(Message::parse(&m).is_ok());
    for cut in 0..m.len() {
        let e = Message::parse(&m[..cut]).expect_err("truncated");
        assert!(
            matches!(e, ParseError::Truncated | ParseError::BadLength),
            "cut {cut}: {e:?}"
        );
    }
}

#[test]
fn header_defects_are_named() {
    let m = valid();
    let mut cookie = m.clone();
    cookie[4] ^= 0xFF;
    assert_eq!(Message::parse(&cookie).unwrap_err(), ParseError::NotStun);
    let mut top_bits = m.clone();
    top_bits[0] |= 0x80;
    assert_eq!(Message::parse(&top_bits).unwrap_err(), ParseError::NotStun);
    let mut unaligned = m.clone();
    unaligned[3] += 1;
    assert_eq!(
        Message::parse(&unaligned).unwrap_err(),
        ParseError::BadLength
    );
    let mut trailing = m.clone();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        Message::parse(&trailing).unwrap_err(),
        ParseError::BadLength
    );
}

#[test]
fn an_attribute_length_overrun_is_an_error() {
    let mut m = valid();
    m[20 + 3] = 200; // REQUESTED-TRANSPORT claims 200 bytes
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        ParseError::AttributeOverrun
    );
}

#[test]
fn a_corrupted_fingerprint_is_detected() {
    let mut m = valid();
    let last = m.len() - 1;
    m[last] ^= 1;
    assert_eq!(
        Message::parse(&m)
            .expect("still well-formed")
            .fingerprint_ok(),
        Some(false)
    );
}

#[test]
fn unknown_comprehension_required_attributes_are_reported() {
    let mut buf = [0u8; 64];
    let mut w =
        MessageWriter::new(&mut buf, Method::ALLOCATE, Class::Request, [1; 12]).expect("fits");
    w.attr(0x8123, b"optional").expect("fits");
    w.attr(0x0042, b"required").expect("fits");
    let n = w.finish();
    assert_eq!(
        Message::parse(&buf[..n])
            .expect("parses")
            .unknown_required(),
        Some(0x0042)
    );
}

#[test]
fn attributes_after_message_integrity_are_ignored_except_fingerprint() {
    let mut buf = [0u8; 128];
    let mut w =
        MessageWriter::new(&mut buf, Method::BINDING, Class::Request, [2; 12]).expect("fits");
    w.attr(attr::USERNAME, b"u").expect("fits");
    w.integrity(&IntegrityKey::sha1(b"key")).expect("fits");
    w.attr(attr::SOFTWARE, b"sneaky").expect("fits");
    w.attr(0x0042, b"unknown but ignored").expect("fits");
    let n = w.fingerprint().expect("fits");
    let m = Message::parse(&buf[..n]).expect("parses");
    assert_eq!(m.value(attr::SOFTWARE), None);
    assert_eq!(
        m.unknown_required(),
        None,
        "an ignored attribute cannot cause a 420"
    );
    assert_eq!(m.integrity_ok(&IntegrityKey::sha1(b"key")), Some(true));
    assert_eq!(m.fingerprint_ok(), Some(true));
}

#[test]
fn a_writer_into_a_small_buffer_fails_cleanly() {
    let mut small = [0u8; 10];
    assert!(MessageWriter::new(&mut small, Method::BINDING, Class::Request, [0; 12]).is_err());
    let mut buf = [0u8; 24];
    let mut w = MessageWriter::new(&mut buf, Method::BINDING, Class::Request, [0; 12])
        .expect("header fits");
    assert!(w.attr(attr::SOFTWARE, b"too long for the buffer").is_err());
}
