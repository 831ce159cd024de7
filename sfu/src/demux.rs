//! Classify datagrams on the shared media socket (RFC 7983) and read the ICE username from the first
//! STUN packet of a new 5-tuple. Both run on untrusted input and never panic.

/// What a datagram is, judged by its first byte (RFC 7983 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    /// 0..=3: STUN.
    Stun,
    /// 20..=63: DTLS.
    Dtls,
    /// 64..=79: TURN ChannelData (never valid on the SFU's media socket).
    TurnChannel,
    /// 128..=191: RTP or RTCP.
    Rtp,
    /// Anything else, including an empty datagram.
    Unknown,
}

/// Classifies a datagram by its first byte.
pub fn classify(datagram: &[u8]) -> DatagramKind {
    match datagram.first() {
        Some(0..=3) => DatagramKind::Stun,
        Some(20..=63) => DatagramKind::Dtls,
        Some(64..=79) => DatagramKind::TurnChannel,
        Some(128..=191) => DatagramKind::Rtp,
        _ => DatagramKind::Unknown,
    }
}

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;

/// Returns the local (server) ufrag from the USERNAME attribute of a STUN Binding request:
/// the part before the colon of `server_ufrag:client_ufrag`. `None` for anything else.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < STUN_HEADER_LEN || datagram[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([datagram[0], datagram[1]]) != STUN_BINDING_REQUEST {
        return None;
    }
    let body_len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let attr_type = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + len)?;
        if attr_type == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_with_username(username: &[u8]) -> Vec<u8> {
        let padded = (username.len() + 3) & !3;
        let mut d = vec![0x00, 0x01];
        d.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        d.extend_from_slice(&STUN_MAGIC_COOKIE);
        d.extend_from_slice(&[7; 12]);
        d.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        d.extend_from_slice(&(username.len() as u16).to_be_bytes());
        d.extend_from_slice(username);
        d.resize(d.len() + padded - username.len(), 0);
        d
    }

    #[test]
    fn classifies_each_range_of_rfc7983() {
        assert_eq!(classify(&[0]), DatagramKind::Stun);
        assert_eq!(classify(&[3]), DatagramKind::Stun);
        assert_eq!(classify(&[22]), DatagramKind::Dtls);
        assert_eq!(classify(&[64]), DatagramKind::TurnChannel);
        assert_eq!(classify(&[0x80]), DatagramKind::Rtp);
        assert_eq!(classify(&[191]), DatagramKind::Rtp);
        assert_eq!(classify(&[4]), DatagramKind::Unknown);
        assert_eq!(classify(&[200]), DatagramKind::Unknown);
        assert_eq!(classify(&[]), DatagramKind::Unknown);
    }

    #[test]
    fn reads_the_server_ufrag_from_a_binding_request() {
        let d = binding_with_username(b"srvA:cli1");
        assert_eq!(stun_local_ufrag(&d), Some("srvA"));
    }

    #[test]
    fn rejects_truncated_and_overrunning_stun() {
        let d = binding_with_username(b"srvA:cli1");
        for cut in 0..d.len() {
            assert_eq!(stun_local_ufrag(&d[..cut]), None, "cut at {cut}");
        }
        let mut overrun = d.clone();
        overrun[STUN_HEADER_LEN + 3] = 200; // attribute length past the end
        assert_eq!(stun_local_ufrag(&overrun), None);
    }

    #[test]
    fn ignores_responses_and_empty_usernames() {
        let mut d = binding_with_username(b"srvA:cli1");
        d[0] = 0x01; // Binding success response
        assert_eq!(stun_local_ufrag(&d), None);
        assert_eq!(stun_local_ufrag(&binding_with_username(b":x")), None);
    }
}
