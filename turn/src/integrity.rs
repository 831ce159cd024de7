//! FINGERPRINT and MESSAGE-INTEGRITY(-SHA256): computed over the message up to the attribute,
//! with the header length patched as if the attribute were last. Nothing is copied.

use aws_lc_rs::digest;
use md5::{Digest, Md5};

use crate::hmac::{KeyedHmac, SHA1, SHA256};

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

/// A MESSAGE-INTEGRITY key with its HMAC inner and outer states precomputed: make it once per
/// user and reuse it; each check then costs the compressions of the message plus one.
#[derive(Clone)]
pub struct IntegrityKey(Keyed);

#[derive(Clone)]
enum Keyed {
    Sha1(KeyedHmac<5>),
    Sha256(KeyedHmac<8>),
}

impl IntegrityKey {
    /// A key for MESSAGE-INTEGRITY (HMAC-SHA1).
    pub fn sha1(key: &[u8]) -> Self {
        Self(Keyed::Sha1(KeyedHmac::new(SHA1, key)))
    }

    /// A key for MESSAGE-INTEGRITY-SHA256.
    pub fn sha256(key: &[u8]) -> Self {
        Self(Keyed::Sha256(KeyedHmac::new(SHA256, key)))
    }

    /// The attribute this key signs and checks.
    pub fn attribute(&self) -> u16 {
        match self.0 {
            Keyed::Sha1(_) => crate::attr::MESSAGE_INTEGRITY,
            Keyed::Sha256(_) => crate::attr::MESSAGE_INTEGRITY_SHA256,
        }
    }

    /// The tag length in bytes.
    pub(crate) fn tag_len(&self) -> usize {
        match &self.0 {
            Keyed::Sha1(k) => k.tag_len(),
            Keyed::Sha256(k) => k.tag_len(),
        }
    }
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if matches!(self.0, Keyed::Sha1(_)) {
            "IntegrityKey::Sha1"
        } else {
            "IntegrityKey::Sha256"
        })
    }
}

/// Writes the HMAC tag for a message whose integrity attribute starts at `offset` into `out`:
/// the message up to the attribute, with the header length patched as if it were last.
pub(crate) fn hmac_tag(raw: &[u8], offset: usize, key: &IntegrityKey, out: &mut [u8]) {
    let length = patched_length(offset, key.tag_len());
    let parts: [&[u8]; 3] = [&raw[0..2], &length, &raw[4..offset]];
    match &key.0 {
        Keyed::Sha1(k) => k.tag(&parts, out),
        Keyed::Sha256(k) => k.tag(&parts, out),
    }
}

/// Constant-time check of a MESSAGE-INTEGRITY(-SHA256) attribute.
pub(crate) fn hmac_matches(raw: &[u8], a: RawAttr<'_>, key: &IntegrityKey) -> bool {
    let length = patched_length(a.offset, key.tag_len());
    let parts: [&[u8]; 3] = [&raw[0..2], &length, &raw[4..a.offset]];
    match &key.0 {
        Keyed::Sha1(k) => k.verify(&parts, a.value),
        Keyed::Sha256(k) => k.verify(&parts, a.value),
    }
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
