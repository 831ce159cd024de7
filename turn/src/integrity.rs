//! FINGERPRINT and MESSAGE-INTEGRITY(-SHA256): computed over the message up to the attribute,
//! with the header length patched as if the attribute were last. Nothing is copied.

use aws_lc_rs::digest;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

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
/// user and reuse it; each check then clones two small hash states.
#[derive(Clone)]
pub enum IntegrityKey {
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    Sha1(Hmac<Sha1>),
    /// MESSAGE-INTEGRITY-SHA256.
    Sha256(Hmac<Sha256>),
}

impl IntegrityKey {
    /// A key for MESSAGE-INTEGRITY (HMAC-SHA1).
    pub fn sha1(key: &[u8]) -> Self {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        Self::Sha1(<Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length"))
    }

    /// A key for MESSAGE-INTEGRITY-SHA256.
    pub fn sha256(key: &[u8]) -> Self {
        Self::Sha256(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"))
    }

    /// The attribute this key signs and checks.
    pub fn attribute(&self) -> u16 {
        match self {
            Self::Sha1(_) => crate::attr::MESSAGE_INTEGRITY,
            Self::Sha256(_) => crate::attr::MESSAGE_INTEGRITY_SHA256,
        }
    }

    /// The tag length in bytes.
    pub(crate) fn tag_len(&self) -> usize {
        match self {
            Self::Sha1(_) => 20,
            Self::Sha256(_) => 32,
        }
    }
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if matches!(self, Self::Sha1(_)) {
            "IntegrityKey::Sha1"
        } else {
            "IntegrityKey::Sha256"
        })
    }
}

/// Feeds the message up to `offset`, with the length patched, into a clone of the keyed state.
fn keyed<M: Mac + Clone>(state: &M, raw: &[u8], offset: usize, tag_len: usize) -> M {
    let mut mac = state.clone();
    mac.update(&raw[0..2]);
    mac.update(&patched_length(offset, tag_len));
    mac.update(&raw[4..offset]);
    mac
}

/// Writes the HMAC tag for a message whose integrity attribute starts at `offset` into `out`.
pub(crate) fn hmac_tag(raw: &[u8], offset: usize, key: &IntegrityKey, out: &mut [u8]) {
    match key {
        IntegrityKey::Sha1(k) => {
            out.copy_from_slice(&keyed(k, raw, offset, 20).finalize().into_bytes())
        }
        IntegrityKey::Sha256(k) => {
            out.copy_from_slice(&keyed(k, raw, offset, 32).finalize().into_bytes())
        }
    }
}

/// Constant-time check of a MESSAGE-INTEGRITY(-SHA256) attribute.
pub(crate) fn hmac_matches(raw: &[u8], a: RawAttr<'_>, key: &IntegrityKey) -> bool {
    match key {
        IntegrityKey::Sha1(k) => keyed(k, raw, a.offset, 20).verify_slice(a.value).is_ok(),
        IntegrityKey::Sha256(k) => keyed(k, raw, a.offset, 32).verify_slice(a.value).is_ok(),
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
