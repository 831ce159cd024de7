//! Keyframe detection at the RTP level, so a new subscriber starts on a decodable frame.
//! Payloads come from the network: every read is bounds-checked.

/// The video codecs tern forwards and can inspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (RFC 7741 payload format).
    Vp8,
    /// H.264 (RFC 6184 payload format).
    H264,
}

/// True when this RTP payload starts a keyframe.
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_is_keyframe(payload),
        VideoCodec::H264 => h264_is_keyframe(payload),
    }
}

/// RFC 7741 section 4.2: skip the payload descriptor, then the first bit of the VP8 payload
/// header is the inverse key frame flag. Only the first packet of partition 0 carries it.
fn vp8_is_keyframe(payload: &[u8]) -> bool {
    vp8_header_offset(payload)
        .and_then(|at| payload.get(at))
        .is_some_and(|header| header & 0x01 == 0)
}

/// The width and height of the VP8 keyframe this payload starts (RFC 6386 section 9.1: a
/// 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height, little-endian).
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let at = vp8_header_offset(payload)?;
    let header = payload.get(at..at + 10)?;
    if header[0] & 0x01 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([header[6], header[7]]) & 0x3fff;
    let height = u16::from_le_bytes([header[8], header[9]]) & 0x3fff;
    Some((width, height))
}

/// Where the VP8 payload header starts, when this payload starts partition 0 of a frame.
fn vp8_header_offset(payload: &[u8]) -> Option<usize> {
    let &first = payload.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let &x = payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits, depending on the M bit.
            let &pid = payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    Some(at)
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// RFC 6184: an IDR slice or an SPS, alone, aggregated in STAP-A, or starting an FU-A.
fn h264_is_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1F {
        NAL_IDR | NAL_SPS => true,
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                if size == 0 {
                    return false;
                }
                if matches!(rest[2] & 0x1F, NAL_IDR | NAL_SPS) {
                    return true;
                }
                let Some(next) = rest.get(2 + size..) else {
                    return false;
                };
                rest = next;
            }
            false
        }
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1F, NAL_IDR | NAL_SPS)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_with_and_without_extensions() {
        // S=1, PID=0, no extension; payload header P=0.
        assert!(is_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x9d]));
        // Same, but an interframe (P=1).
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10, 0x01]));
        // X=1, I=1 with a 15-bit picture id, then the payload header.
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0x80, 0x81, 0x23, 0x10]
        ));
        // X=1, I=1 (7-bit), L=1, T=1: four descriptor bytes past the first, then P=1.
        assert!(!is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xE0, 0x05, 0x01, 0x20, 0x01]
        ));
        // Not the start of a partition.
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x00, 0x00]));
    }

    #[test]
    fn h264_keyframes_in_each_packetization() {
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 0x88])); // IDR
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42])); // SPS
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 0x9a])); // non-IDR slice
        assert!(is_keyframe(
            VideoCodec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42]
        )); // STAP-A with SPS
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00])); // FU-A start of IDR
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00])); // FU-A middle of IDR
    }

    #[test]
    fn vp8_keyframe_sizes() {
        // No descriptor extension; frame tag of a keyframe, start code, 320x180.
        let key = [
            0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00,
        ];
        assert_eq!(vp8_keyframe_size(&key), Some((320, 180)));
        // The scaling bits above the 14-bit sizes are ignored.
        let mut scaled = key;
        scaled[8] |= 0x40;
        assert_eq!(vp8_keyframe_size(&scaled), Some((320, 180)));
        // An interframe, a wrong start code, a truncated header.
        let mut inter = key;
        inter[1] |= 0x01;
        assert_eq!(vp8_keyframe_size(&inter), None);
        let mut bad = key;
        bad[4] = 0;
        assert_eq!(vp8_keyframe_size(&bad), None);
        assert_eq!(vp8_keyframe_size(&key[..10]), None);
    }

    #[test]
    fn truncated_payloads_are_not_keyframes() {
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            assert!(!is_keyframe(codec, &[]));
        }
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0x80, 0x81]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0x00, 0x09, 0x41]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c]));
    }
}
