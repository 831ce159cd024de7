//! The RTP feed of the sidecar: each tapped track becomes one RTP stream to a loopback port,
//! with its own SSRC, starting on a keyframe (video), and RTCP sender reports that tie every
//! stream to one wall clock, so ffmpeg lines audio and video up (RFC 3550 section 6.4.1).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tern_sfu::{TapCodec, TapPacket};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The payload type a codec is given in the sidecar's SDP.
pub fn payload_type(codec: TapCodec) -> u8 {
    match codec {
        TapCodec::Opus => 111,
        TapCodec::Vp8 => 96,
        TapCodec::H264 => 102,
    }
}

/// Ties a part's monotonic clock to the wall clock: the instant and wall time it started.
#[derive(Debug, Clone, Copy)]
pub struct ClockBase {
    /// The instant.
    pub at: Instant,
    /// The wall time at that instant.
    pub wall: SystemTime,
}

impl ClockBase {
    /// The wall time of `at`.
    pub fn wall_of(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.at) {
            Some(after) => self.wall + after,
            None => self.wall - self.at.duration_since(at),
        }
    }
}

/// One track's RTP stream into the sidecar.
#[derive(Debug)]
pub struct RtpStream {
    ssrc: u32,
    pt: u8,
    video: bool,
    /// Video starts on a keyframe: what comes before it cannot be decoded.
    started: bool,
    /// The RTP timestamp of the last packet sent, for sender reports.
    last: Option<u32>,
    /// The stream's first packet: its arrival, RTP timestamp and clock rate. Every sender report
    /// maps timestamps to the wall clock from it, so the mapping stays a straight line: arrival
    /// jitter on later packets must not move it (ffmpeg would see timestamps jump).
    anchor: Option<(Instant, u32, u32)>,
    packets: u32,
    octets: u32,
}

impl RtpStream {
    /// A stream with `ssrc` for a track in `codec`.
    pub fn new(ssrc: u32, codec: TapCodec) -> Self {
        let video = codec != TapCodec::Opus;
        Self {
            ssrc,
            pt: payload_type(codec),
            video,
            started: !video,
            last: None,
            anchor: None,
            packets: 0,
            octets: 0,
        }
    }

    /// True once packets flow (for video, once a keyframe came).
    pub fn started(&self) -> bool {
        self.started && self.last.is_some()
    }

    /// Writes `p` as an RTP datagram into `out`; false when it is held back (video before its
    /// first keyframe).
    pub fn packet(&mut self, p: &TapPacket, out: &mut Vec<u8>) -> bool {
        if !self.started {
            if !p.keyframe {
                return false;
            }
            self.started = true;
        }
        out.clear();
        out.push(0x80);
        out.push(self.pt | if p.marker { 0x80 } else { 0 });
        // The tap's numbering is continuous; its low 16 bits are the RTP sequence number.
        out.extend_from_slice(&(p.seq as u16).to_be_bytes());
        out.extend_from_slice(&p.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&p.payload);
        self.last = Some(p.timestamp);
        self.anchor
            .get_or_insert((p.arrival, p.timestamp, p.clock_rate.max(1)));
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(p.payload.len() as u32);
        true
    }

    /// An RTCP sender report mapping the last packet's RTP timestamp to its wall time; `None`
    /// before the first packet.
    pub fn sender_report(&self, base: &ClockBase) -> Option<[u8; 28]> {
        let timestamp = self.last?;
        let (arrival, first, rate) = self.anchor?;
        // Ticks since the first packet (signed: a layer switch may step back a little).
        let ticks = i64::from(timestamp.wrapping_sub(first) as i32);
        let first_wall = base.wall_of(arrival);
        let offset = Duration::from_micros((ticks.unsigned_abs() * 1_000_000) / u64::from(rate));
        let wall = if ticks >= 0 {
            first_wall + offset
        } else {
            first_wall - offset
        };
        Some(self.report(wall, timestamp))
    }

    /// The sender report to send just before `p` when `p` opens the stream (its first packet,
    /// for video its first keyframe), so ffmpeg times the stream on the shared clock from its very
    /// first packet. Sent on the RTP port itself (rtcp-mux), so it arrives first.
    pub fn opening_report(&self, p: &TapPacket, base: &ClockBase) -> Option<[u8; 28]> {
        let opens = self.last.is_none() && (!self.video || p.keyframe || self.started);
        opens.then(|| self.report(base.wall_of(p.arrival), p.timestamp))
    }

    fn report(&self, wall: SystemTime, timestamp: u32) -> [u8; 28] {
        let mut sr = [0u8; 28];
        sr[0] = 0x80;
        sr[1] = 200;
        sr[2..4].copy_from_slice(&6u16.to_be_bytes());
        sr[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        sr[8..16].copy_from_slice(&ntp_time(wall).to_be_bytes());
        sr[16..20].copy_from_slice(&timestamp.to_be_bytes());
        sr[20..24].copy_from_slice(&self.packets.to_be_bytes());
        sr[24..28].copy_from_slice(&self.octets.to_be_bytes());
        sr
    }

    /// Whether this stream is video.
    pub fn is_video(&self) -> bool {
        self.video
    }
}

/// A wall time as a 64-bit NTP timestamp (32.32 fixed point, from 1900).
pub fn ntp_time(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tern_sfu::TrackId;

    use super::*;

    fn packet(seq: u64, keyframe: bool, at: Instant) -> TapPacket {
        TapPacket {
            track: TrackId(1),
            codec: TapCodec::Vp8,
            clock_rate: 90_000,
            seq,
            timestamp: 3000 * seq as u32,
            marker: true,
            keyframe,
            payload: Arc::from(&[1u8, 2, 3][..]),
            arrival: at,
        }
    }

    #[test]
    fn video_waits_for_a_keyframe_then_is_written_as_rtp() {
        let now = Instant::now();
        let mut s = RtpStream::new(0x1234_5678, TapCodec::Vp8);
        let mut out = Vec::new();
        assert!(!s.packet(&packet(70_000, false, now), &mut out));
        assert!(
            s.sender_report(&ClockBase {
                at: now,
                wall: SystemTime::now()
            })
            .is_none()
        );
        assert!(s.packet(&packet(70_001, true, now), &mut out));
        assert_eq!(out[0], 0x80);
        assert_eq!(out[1], 0x80 | 96, "marker and VP8's payload type");
        assert_eq!(
            u16::from_be_bytes([out[2], out[3]]),
            (70_001u64 % 65_536) as u16
        );
        assert_eq!(&out[8..12], &0x1234_5678u32.to_be_bytes());
        assert_eq!(&out[12..], &[1, 2, 3]);
        assert!(
            s.packet(&packet(70_002, false, now), &mut out),
            "then everything"
        );
    }

    #[test]
    fn a_sender_report_maps_the_last_timestamp_to_its_wall_time() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let base = ClockBase { at: now, wall };
        let mut s = RtpStream::new(7, TapCodec::Vp8);
        let mut out = Vec::new();
        s.packet(&packet(1, true, now + Duration::from_millis(500)), &mut out);
        let sr = s.sender_report(&base).expect("a report");
        assert_eq!(sr[1], 200);
        let ntp = u64::from_be_bytes(sr[8..16].try_into().expect("8 bytes"));
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31, "half a second");
        assert_eq!(&sr[16..20], &3000u32.to_be_bytes());
        assert_eq!(&sr[20..24], &1u32.to_be_bytes());
        assert_eq!(&sr[24..28], &3u32.to_be_bytes());
        // 29 frames later (90,000 ticks: one second), arriving 300 ms late: the report still
        // says one second after the first packet, not the late arrival.
        s.packet(
            &packet(31, false, now + Duration::from_millis(1800)),
            &mut out,
        );
        let sr = s.sender_report(&base).expect("a report");
        let ntp = u64::from_be_bytes(sr[8..16].try_into().expect("8 bytes"));
        assert_eq!(ntp >> 32, 1_700_000_001 + NTP_UNIX_OFFSET);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31, "1.5 s: on the RTP clock");
    }
}
