//! Framing over stream transports (RFC 8656 section 3.1): STUN messages carry their length in
//! the header; ChannelData messages are padded to a multiple of 4 bytes.

/// The length of the frame at the start of `buf`: `Some(Ok(n))` once 4 bytes are there,
/// `Some(Err(()))` if the bytes cannot start a frame (the connection should be closed), `None`
/// while fewer than 4 bytes have arrived.
pub fn stream_frame_len(buf: &[u8]) -> Option<Result<usize, ()>> {
    let head = buf.get(..4)?;
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    Some(match head[0] >> 6 {
        0b00 if len.is_multiple_of(4) => Ok(crate::message::HEADER_LEN + len),
        0b01 => Ok((4 + len + 3) & !3),
        _ => Err(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_stun_and_padded_channel_data() {
        assert_eq!(stream_frame_len(&[0, 1, 0]), None);
        assert_eq!(stream_frame_len(&[0, 1, 0, 8]), Some(Ok(28)));
        assert_eq!(stream_frame_len(&[0, 1, 0, 7]), Some(Err(())));
        assert_eq!(stream_frame_len(&[0x40, 0, 0, 5]), Some(Ok(12)));
        assert_eq!(stream_frame_len(&[0x40, 0, 0, 8]), Some(Ok(12)));
        assert_eq!(stream_frame_len(&[0x80, 0, 0, 0]), Some(Err(())));
    }
}
