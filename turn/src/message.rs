//! Parsing a STUN message: the header, then attributes walked in place.

use std::net::SocketAddr;

use crate::attr;

/// The fixed value in every STUN header since RFC 5389.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub(crate) const HEADER_LEN: usize = 20;

/// A STUN method (12 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (RFC 8656).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (RFC 8656).
    pub const REFRESH: Method = Method(0x004);
    /// Send indication (RFC 8656).
    pub const SEND: Method = Method(0x006);
    /// Data indication (RFC 8656).
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (RFC 8656).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (RFC 8656).
    pub const CHANNEL_BIND: Method = Method(0x009);
}

/// The class of a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request.
    Request,
    /// An indication (no response).
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }
}

/// The 14-bit message type: method bits M0-M11 with class bits C0 and C1 between them.
pub(crate) fn message_type(method: Method, class: Class) -> u16 {
    let m = method.0 & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

fn split_type(t: u16) -> (Method, Class) {
    let method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let class = match ((t >> 4) & 0b01) | ((t >> 7) & 0b10) {
        0b00 => Class::Request,
        0b01 => Class::Indication,
        0b10 => Class::Success,
        _ => Class::Error,
    };
    (Method(method), class)
}

/// Why a datagram is not a well-formed STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the 20-byte header.
    #[error("shorter than a STUN header")]
    Truncated,
    /// The first two bits are not zero, or the magic cookie is wrong.
    #[error("not a STUN message")]
    NotStun,
    /// The header's length is not a multiple of 4 or does not match the datagram.
    #[error("the message length does not match the datagram")]
    BadLength,
    /// An attribute runs past the end of the message.
    #[error("an attribute overruns the message")]
    AttributeOverrun,
}

/// A parsed STUN message borrowing the datagram it came from.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    raw: &'a [u8],
    method: Method,
    class: Class,
}

/// One attribute: its type, value, and where its header starts in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttr<'a> {
    /// Attribute type.
    pub kind: u16,
    /// Value, without padding.
    pub value: &'a [u8],
    /// Offset of the attribute's 4-byte header from the start of the message.
    pub offset: usize,
}

impl<'a> Message<'a> {
    /// Parses a whole datagram as one STUN message (trailing bytes are an error) and checks that
    /// every attribute fits.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        if datagram.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let t = u16::from_be_bytes([datagram[0], datagram[1]]);
        let cookie = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
        if t & 0xC000 != 0 || cookie != MAGIC_COOKIE {
            return Err(ParseError::NotStun);
        }
        let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
        if !len.is_multiple_of(4) || HEADER_LEN + len != datagram.len() {
            return Err(ParseError::BadLength);
        }
        let (method, class) = split_type(t);
        let m = Message {
            raw: datagram,
            method,
            class,
        };
        let mut walk = m.attrs();
        for _ in walk.by_ref() {}
        if walk.overrun {
            return Err(ParseError::AttributeOverrun);
        }
        Ok(m)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The 96-bit transaction id.
    pub fn transaction_id(&self) -> [u8; 12] {
        let mut t = [0u8; 12];
        t.copy_from_slice(&self.raw[8..HEADER_LEN]);
        t
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Every attribute in order, including those after MESSAGE-INTEGRITY.
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs {
            raw: self.raw,
            at: HEADER_LEN,
            overrun: false,
        }
    }

    /// The attributes that count: those after MESSAGE-INTEGRITY are ignored except
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, and after MESSAGE-INTEGRITY-SHA256 all but
    /// FINGERPRINT (RFC 8489 section 14).
    pub fn counted_attrs(&self) -> impl Iterator<Item = RawAttr<'a>> + 'a {
        let mut after = None;
        self.attrs().filter(move |a| {
            let counts = match after {
                None => true,
                Some(attr::MESSAGE_INTEGRITY) => {
                    matches!(a.kind, attr::FINGERPRINT | attr::MESSAGE_INTEGRITY_SHA256)
                }
                Some(_) => a.kind == attr::FINGERPRINT,
            };
            if counts
                && matches!(
                    a.kind,
                    attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256
                )
            {
                after = Some(a.kind);
            }
            counts
        })
    }

    /// The first counted attribute of this type (see [`Message::counted_attrs`]).
    pub fn get(&self, kind: u16) -> Option<RawAttr<'a>> {
        self.counted_attrs().find(|a| a.kind == kind)
    }

    /// The value of the first counting attribute of this type.
    pub fn value(&self, kind: u16) -> Option<&'a [u8]> {
        self.get(kind).map(|a| a.value)
    }

    /// The first counted comprehension-required attribute (type below 0x8000) this codec does
    /// not know: the reason for a 420 response.
    pub fn unknown_required(&self) -> Option<u16> {
        self.counted_attrs()
            .map(|a| a.kind)
            .find(|k| *k < 0x8000 && !attr::is_known(*k))
    }

    /// Decodes an XOR-MAPPED/PEER/RELAYED-ADDRESS attribute of this type.
    pub fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        attr::decode_xor_address(self.value(kind)?, &self.transaction_id())
    }

    /// `None` without FINGERPRINT; otherwise whether its CRC matches.
    pub fn fingerprint_ok(&self) -> Option<bool> {
        let a = self.get(attr::FINGERPRINT)?;
        Some(crate::integrity::fingerprint_matches(self.raw, a))
    }

    /// `None` without the attribute `key` checks (MESSAGE-INTEGRITY or -SHA256); otherwise whether
    /// its HMAC matches, compared in constant time.
    pub fn integrity_ok(&self, key: &crate::IntegrityKey) -> Option<bool> {
        let a = self.get(key.attribute())?;
        Some(crate::integrity::hmac_matches(self.raw, a, key))
    }
}

/// Iterator over a message's attributes. Stops at the first one that does not fit.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    raw: &'a [u8],
    at: usize,
    overrun: bool,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = RawAttr<'a>;

    fn next(&mut self) -> Option<RawAttr<'a>> {
        let rest = self.raw.get(self.at..)?;
        if rest.is_empty() {
            return None;
        }
        let (Some(h), Some(l)) = (rest.get(0..2), rest.get(2..4)) else {
            self.overrun = true;
            return None;
        };
        let kind = u16::from_be_bytes([h[0], h[1]]);
        let len = u16::from_be_bytes([l[0], l[1]]) as usize;
        let padded = (len + 3) & !3;
        let (Some(value), true) = (rest.get(4..4 + len), rest.len() >= 4 + padded) else {
            self.overrun = true;
            return None;
        };
        let offset = self.at;
        self.at += 4 + padded;
        Some(RawAttr {
            kind,
            value,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_interleave_class_bits() {
        assert_eq!(message_type(Method::BINDING, Class::Request), 0x0001);
        assert_eq!(message_type(Method::BINDING, Class::Success), 0x0101);
        assert_eq!(message_type(Method::BINDING, Class::Error), 0x0111);
        assert_eq!(message_type(Method::SEND, Class::Indication), 0x0016);
        assert_eq!(message_type(Method::ALLOCATE, Class::Error), 0x0113);
        for m in [
            Method::BINDING,
            Method::ALLOCATE,
            Method::CHANNEL_BIND,
            Method(0xFFF),
        ] {
            for c in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                assert_eq!(split_type(message_type(m, c)), (m, c));
            }
        }
    }
}
