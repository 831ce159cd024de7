//! Encoding a STUN message into a buffer the caller owns. No allocation.

use std::net::SocketAddr;

use crate::attr;
use crate::integrity::{IntegrityKey, fingerprint_value, hmac_tag};
use crate::message::{Class, HEADER_LEN, MAGIC_COOKIE, Method, message_type};

/// The buffer is too small for what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the output buffer is too small")]
pub struct WriteError;

/// Writes one STUN message. Attributes are appended in call order; `integrity*` and
/// `fingerprint` compute over everything written before them.
pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    transaction_id: [u8; 12],
    pad: u8,
}

impl<'b> MessageWriter<'b> {
    /// Starts a message in `buf`.
    pub fn new(
        buf: &'b mut [u8],
        method: Method,
        class: Class,
        transaction_id: [u8; 12],
    ) -> Result<Self, WriteError> {
        let header = buf.get_mut(..HEADER_LEN).ok_or(WriteError)?;
        header[0..2].copy_from_slice(&message_type(method, class).to_be_bytes());
        header[2..4].copy_from_slice(&[0, 0]);
        header[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        header[8..20].copy_from_slice(&transaction_id);
        Ok(Self {
            buf,
            len: HEADER_LEN,
            transaction_id,
            pad: 0,
        })
    }

    /// Uses `byte` for attribute padding (receivers ignore it; RFC 5769 uses 0x20).
    pub fn padding(mut self, byte: u8) -> Self {
        self.pad = byte;
        self
    }

    /// Appends an attribute with this value.
    pub fn attr(&mut self, kind: u16, value: &[u8]) -> Result<(), WriteError> {
        let padded = (value.len() + 3) & !3;
        let end = self.len + 4 + padded;
        let out = self.buf.get_mut(self.len..end).ok_or(WriteError)?;
        out[0..2].copy_from_slice(&kind.to_be_bytes());
        out[2..4].copy_from_slice(&(value.len() as u16).to_be_bytes());
        out[4..4 + value.len()].copy_from_slice(value);
        out[4 + value.len()..].fill(self.pad);
        self.len = end;
        self.set_length(self.len);
        Ok(())
    }

    /// Appends a 32-bit attribute (LIFETIME, PRIORITY).
    pub fn u32(&mut self, kind: u16, value: u32) -> Result<(), WriteError> {
        self.attr(kind, &value.to_be_bytes())
    }

    /// Appends an XOR-*-ADDRESS attribute.
    pub fn xor_address(&mut self, kind: u16, addr: SocketAddr) -> Result<(), WriteError> {
        let mut value = [0u8; 20];
        let n = attr::encode_xor_address(addr, &self.transaction_id, &mut value);
        self.attr(kind, &value[..n])
    }

    /// Appends ERROR-CODE with a reason phrase.
    pub fn error_code(&mut self, code: u16, reason: &str) -> Result<(), WriteError> {
        let reason = reason.as_bytes();
        let mut value = [0u8; 4 + 128];
        let n = reason.len().min(128);
        value[2] = (code / 100) as u8;
        value[3] = (code % 100) as u8;
        value[4..4 + n].copy_from_slice(&reason[..n]);
        self.attr(attr::ERROR_CODE, &value[..4 + n])
    }

    /// Appends MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256, as `key` says.
    pub fn integrity(&mut self, key: &IntegrityKey) -> Result<(), WriteError> {
        let n = key.tag_len();
        let offset = self.len;
        self.attr(key.attribute(), &[0u8; 32][..n])?;
        let mut tag = [0u8; 32];
        hmac_tag(self.buf, offset, key, &mut tag[..n]);
        self.buf[offset + 4..offset + 4 + n].copy_from_slice(&tag[..n]);
        Ok(())
    }

    /// Appends FINGERPRINT and returns the message's total length.
    pub fn fingerprint(mut self) -> Result<usize, WriteError> {
        let offset = self.len;
        self.attr(attr::FINGERPRINT, &[0; 4])?;
        let crc = fingerprint_value(self.buf, offset);
        self.buf[offset + 4..offset + 8].copy_from_slice(&crc.to_be_bytes());
        Ok(self.len)
    }

    /// The message's total length (without FINGERPRINT).
    pub fn finish(self) -> usize {
        self.len
    }

    fn set_length(&mut self, total: usize) {
        self.buf[2..4].copy_from_slice(&((total - HEADER_LEN) as u16).to_be_bytes());
    }
}
