//! FINGERPRINT and MESSAGE-INTEGRITY(-SHA256): computed over the message up to the attribute,
//! with the header length patched as if the attribute were last. Nothing is copied.

use aws_lc_rs::{digest, hmac};
use md5::{Digest, Md5};

use crate::message::RawAttr;

const FINGERPRINT_XOR: u32 = 0x5354_554E;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The header's length field for a message that ends right after an attribute of `value_len`
/// bytes starting at `offset`.
fn patched_length(offset: usize, value_len: usize) -> [u8; 2] {
    ((offset - crate::message::HEADER_LEN + 4 + value_len) as u16).to_be_bytes()
}

/// The FINGERPRINT value for a message whose FINGERPRINT attribute starts at `offset`.
pub(crate) fn fingerprint_value(raw: &[u8], offset: usize) -> u32 {
    let mut d = CRC32.digest();
    d.update(&raw[0..2]);
    d.update(&patched_length(offset, 4));
    d.update(&raw[4..offset]);
    d.finalize() ^ FINGERPRINT_XOR
}

pub(crate) fn fingerprint_matches(raw: &[u8], a: RawAttr<'_>) -> bool {
    a.value.len() == 4 && a.value == fingerprint_value(raw, a.offset).to_be_bytes()
}

/// The HMAC tag for a message whose integrity attribute starts at `offset`.
pub(crate) fn hmac_tag(raw: &[u8], offset: usize, key: &[u8], sha256: bool) -> hmac::Tag {
    let (alg, len) = if sha256 {
        (hmac::HMAC_SHA256, 32)
    } else {
        (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20)
    };
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(alg, key));
    ctx.update(&raw[0..2]);
    ctx.update(&patched_length(offset, len));
    ctx.update(&raw[4..offset]);
    ctx.sign()
}

/// Constant-time check of a MESSAGE-INTEGRITY(-SHA256) attribute.
pub(crate) fn hmac_matches(raw: &[u8], a: RawAttr<'_>, key: &[u8], sha256: bool) -> bool {
    let tag = hmac_tag(raw, a.offset, key, sha256);
    a.value.len() == tag.as_ref().len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(tag.as_ref(), a.value).is_ok()
}

/// The long-term credential key of RFC 8489 section 9.2.2: MD5(username ":" realm ":" password).
pub fn long_term_key_md5(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// The long-term key with PASSWORD-ALGORITHM SHA-256: SHA-256(username ":" realm ":" password).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// USERHASH (RFC 8489 section 14.4): SHA-256(username ":" realm).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [username.as_bytes(), b":", realm.as_bytes()] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
