//! Attribute types and the value formats that need more than a byte copy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::message::MAGIC_COOKIE;

/// MAPPED-ADDRESS (RFC 8489).
pub const MAPPED_ADDRESS: u16 = 0x0001;
/// USERNAME (RFC 8489).
pub const USERNAME: u16 = 0x0006;
/// MESSAGE-INTEGRITY: HMAC-SHA1 (RFC 8489).
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
/// ERROR-CODE (RFC 8489).
pub const ERROR_CODE: u16 = 0x0009;
/// UNKNOWN-ATTRIBUTES (RFC 8489).
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
/// CHANNEL-NUMBER (RFC 8656).
pub const CHANNEL_NUMBER: u16 = 0x000C;
/// LIFETIME (RFC 8656).
pub const LIFETIME: u16 = 0x000D;
/// XOR-PEER-ADDRESS (RFC 8656).
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
/// DATA (RFC 8656).
pub const DATA: u16 = 0x0013;
/// REALM (RFC 8489).
pub const REALM: u16 = 0x0014;
/// NONCE (RFC 8489).
pub const NONCE: u16 = 0x0015;
/// XOR-RELAYED-ADDRESS (RFC 8656).
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
/// REQUESTED-ADDRESS-FAMILY (RFC 8656).
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
/// EVEN-PORT (RFC 8656).
pub const EVEN_PORT: u16 = 0x0018;
/// REQUESTED-TRANSPORT (RFC 8656).
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
/// DONT-FRAGMENT (RFC 8656).
pub const DONT_FRAGMENT: u16 = 0x001A;
/// MESSAGE-INTEGRITY-SHA256 (RFC 8489).
pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
/// PASSWORD-ALGORITHM (RFC 8489).
pub const PASSWORD_ALGORITHM: u16 = 0x001D;
/// USERHASH (RFC 8489).
pub const USERHASH: u16 = 0x001E;
/// XOR-MAPPED-ADDRESS (RFC 8489).
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// RESERVATION-TOKEN (RFC 8656).
pub const RESERVATION_TOKEN: u16 = 0x0022;
/// PRIORITY (RFC 8445, ICE).
pub const PRIORITY: u16 = 0x0024;
/// USE-CANDIDATE (RFC 8445, ICE).
pub const USE_CANDIDATE: u16 = 0x0025;
/// PASSWORD-ALGORITHMS (RFC 8489, comprehension-optional).
pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
/// ADDITIONAL-ADDRESS-FAMILY (RFC 8656, comprehension-optional).
pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
/// ADDRESS-ERROR-CODE (RFC 8656): why one family of a dual allocation failed.
pub const ADDRESS_ERROR_CODE: u16 = 0x8001;
/// SOFTWARE (RFC 8489).
pub const SOFTWARE: u16 = 0x8022;
/// FINGERPRINT (RFC 8489).
pub const FINGERPRINT: u16 = 0x8028;
/// ICE-CONTROLLED (RFC 8445).
pub const ICE_CONTROLLED: u16 = 0x8029;
/// ICE-CONTROLLING (RFC 8445).
pub const ICE_CONTROLLING: u16 = 0x802A;

/// Address family values in address attributes and REQUESTED-ADDRESS-FAMILY.
pub const FAMILY_IPV4: u8 = 0x01;
/// See [`FAMILY_IPV4`].
pub const FAMILY_IPV6: u8 = 0x02;

/// Comprehension-required attributes this codec understands.
pub fn is_known(kind: u16) -> bool {
    matches!(
        kind,
        MAPPED_ADDRESS
            | USERNAME
            | MESSAGE_INTEGRITY
            | ERROR_CODE
            | UNKNOWN_ATTRIBUTES
            | CHANNEL_NUMBER
            | LIFETIME
            | XOR_PEER_ADDRESS
            | DATA
            | REALM
            | NONCE
            | XOR_RELAYED_ADDRESS
            | REQUESTED_ADDRESS_FAMILY
            | EVEN_PORT
            | REQUESTED_TRANSPORT
            | DONT_FRAGMENT
            | MESSAGE_INTEGRITY_SHA256
            | PASSWORD_ALGORITHM
            | USERHASH
            | XOR_MAPPED_ADDRESS
            | RESERVATION_TOKEN
            | PRIORITY
            | USE_CANDIDATE
    )
}

/// Decodes an XOR-*-ADDRESS value: port XOR the cookie's top half, IPv4 XOR the cookie, IPv6
/// XOR the cookie and the transaction id.
pub fn decode_xor_address(value: &[u8], transaction_id: &[u8; 12]) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (*value.get(1)?, value.len()) {
        (FAMILY_IPV4, 8) => {
            let mut ip = [0u8; 4];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = value[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        (FAMILY_IPV6, 20) => {
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                let mask = if i < 4 {
                    cookie[i]
                } else {
                    transaction_id[i - 4]
                };
                *b = value[4 + i] ^ mask;
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

/// Encodes an XOR-*-ADDRESS value into `out`; returns its length (8 or 20).
pub fn encode_xor_address(
    addr: SocketAddr,
    transaction_id: &[u8; 12],
    out: &mut [u8; 20],
) -> usize {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    out[0] = 0;
    out[2..4].copy_from_slice(&(addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = FAMILY_IPV4;
            for (i, b) in ip.octets().iter().enumerate() {
                out[4 + i] = b ^ cookie[i];
            }
            8
        }
        IpAddr::V6(ip) => {
            out[1] = FAMILY_IPV6;
            for (i, b) in ip.octets().iter().enumerate() {
                let mask = if i < 4 {
                    cookie[i]
                } else {
                    transaction_id[i - 4]
                };
                out[4 + i] = b ^ mask;
            }
            20
        }
    }
}

/// Decodes an ERROR-CODE value into (code, reason phrase).
pub fn decode_error_code(value: &[u8]) -> Option<(u16, &str)> {
    let class = (*value.get(2)? & 0x07) as u16;
    let number = *value.get(3)? as u16;
    if !(3..=6).contains(&class) || number > 99 {
        return None;
    }
    let reason = std::str::from_utf8(value.get(4..)?).ok()?;
    Some((class * 100 + number, reason))
}

/// Decodes a 32-bit attribute (LIFETIME, PRIORITY).
pub fn decode_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_addresses_round_trip_for_both_families() {
        let tid = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        for addr in [
            "192.0.2.1:32853",
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            "[::ffff:127.0.0.1]:9",
        ] {
            let addr: SocketAddr = addr.parse().expect("addr");
            let mut buf = [0u8; 20];
            let n = encode_xor_address(addr, &tid, &mut buf);
            assert_eq!(decode_xor_address(&buf[..n], &tid), Some(addr));
        }
        assert_eq!(decode_xor_address(&[0, 1, 0], &tid), None);
        assert_eq!(decode_xor_address(&[0, 2, 0, 0, 1, 2, 3, 4], &tid), None);
        assert_eq!(decode_xor_address(&[0, 3, 0, 0, 1, 2, 3, 4], &tid), None);
    }

    #[test]
    fn error_codes_decode_and_reject_nonsense() {
        assert_eq!(
            decode_error_code(&[0, 0, 4, 38, b'S', b't']),
            Some((438, "St"))
        );
        assert_eq!(decode_error_code(&[0, 0, 7, 0]), None);
        assert_eq!(decode_error_code(&[0, 0, 4, 100]), None);
        assert_eq!(decode_error_code(&[0, 0, 4]), None);
    }
}
