//! Verifiable media payloads and what a receiver learns from them.
//!
//! Every payload starts as its codec expects (an Opus TOC byte; a VP8 payload descriptor, and
//! on the first packet of a frame a VP8 frame header, a keyframe's with its start code and
//! size), so that both servers see real-looking media. Then comes a probe header (publisher,
//! stream, sequence number, send time) and a filler that is a function of the header, so the
//! receiver can rebuild the whole payload from what it got and check it byte for byte.

use std::collections::HashMap;
use std::time::Instant;

/// Bytes of an audio payload (about what Opus sends at 32 kbit/s in 20 ms).
pub const AUDIO_BYTES: usize = 100;
/// Bytes of a video payload.
pub const VIDEO_BYTES: usize = 1100;
/// Packets of each video frame.
pub const PACKETS_PER_FRAME: u32 = 3;
/// A keyframe every this many frames (2 s at 30 frames/s).
pub const KEYFRAME_EVERY: u32 = 60;

const MAGIC: [u8; 4] = *b"TPRB";
const HEADER: usize = 4 + 4 + 1 + 4 + 8;

/// The stream of a publisher a packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Its audio.
    Audio,
    /// Its video, on this simulcast layer (0 when single-layer).
    Video(u8),
}

impl Stream {
    fn code(self) -> u8 {
        match self {
            Stream::Audio => 0xFF,
            Stream::Video(layer) => layer,
        }
    }

    fn from_code(c: u8) -> Stream {
        if c == 0xFF {
            Stream::Audio
        } else {
            Stream::Video(c)
        }
    }
}

/// What a payload says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The publisher's index in the scenario.
    pub publisher: u32,
    /// Which of its streams.
    pub stream: Stream,
    /// The packet's number in that stream, from 0.
    pub seq: u32,
    /// When it was sent, in microseconds since the scenario's epoch.
    pub sent_us: u64,
}

/// Whether a video packet starts a frame, and whether that frame is a keyframe.
pub fn frame_position(seq: u32) -> (bool, bool) {
    let first = seq.is_multiple_of(PACKETS_PER_FRAME);
    (
        first,
        first && (seq / PACKETS_PER_FRAME).is_multiple_of(KEYFRAME_EVERY),
    )
}

/// The codec's own bytes at the start of a payload.
fn codec_prefix(stream: Stream, seq: u32) -> &'static [u8] {
    // VP8 (RFC 7741): descriptor with S set, then the frame tag (P clear: keyframe; show_frame
    // set), then for a keyframe the start code and 640x360.
    const KEY: [u8; 11] = [
        0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
    ];
    const INTER: [u8; 4] = [0x10, 0x11, 0x02, 0x00];
    const CONTINUED: [u8; 1] = [0x00];
    const OPUS_TOC: [u8; 1] = [0xFC];
    match (stream, frame_position(seq)) {
        (Stream::Audio, _) => &OPUS_TOC,
        (Stream::Video(_), (true, true)) => &KEY,
        (Stream::Video(_), (true, false)) => &INTER,
        (Stream::Video(_), (false, _)) => &CONTINUED,
    }
}

/// The payload that carries `probe`.
pub fn payload(probe: &Probe) -> Vec<u8> {
    let len = match probe.stream {
        Stream::Audio => AUDIO_BYTES,
        Stream::Video(_) => VIDEO_BYTES,
    };
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(codec_prefix(probe.stream, probe.seq));
    p.extend_from_slice(&MAGIC);
    p.extend_from_slice(&probe.publisher.to_be_bytes());
    p.push(probe.stream.code());
    p.extend_from_slice(&probe.seq.to_be_bytes());
    p.extend_from_slice(&probe.sent_us.to_be_bytes());
    let seed = probe.publisher.wrapping_mul(31).wrapping_add(probe.seq);
    let mut i = 0u32;
    while p.len() < len {
        p.push((seed.wrapping_add(i.wrapping_mul(7)) & 0xFF) as u8);
        i += 1;
    }
    p
}

/// Reads the probe of a received payload: `Some((probe, intact))`, where `intact` says the
/// payload is byte for byte the one sent; `None` if it carries no probe.
pub fn read(payload_bytes: &[u8]) -> Option<(Probe, bool)> {
    let at = [1usize, 4, 11]
        .into_iter()
        .find(|&at| payload_bytes.get(at..at + 4) == Some(&MAGIC[..]))?;
    let h = payload_bytes.get(at + 4..at + HEADER)?;
    let probe = Probe {
        publisher: u32::from_be_bytes(h[0..4].try_into().ok()?),
        stream: Stream::from_code(h[4]),
        seq: u32::from_be_bytes(h[5..9].try_into().ok()?),
        sent_us: u64::from_be_bytes(h[9..17].try_into().ok()?),
    };
    Some((probe, payload(&probe) == payload_bytes))
}

/// The measurement window, in microseconds since the epoch (open until set).
#[derive(Debug)]
pub struct Window {
    start_us: std::sync::atomic::AtomicU64,
    end_us: std::sync::atomic::AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            start_us: u64::MAX.into(),
            end_us: u64::MAX.into(),
        }
    }
}

impl Window {
    /// Opens the window at `us`.
    pub fn open(&self, us: u64) {
        self.start_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes it at `us`.
    pub fn close(&self, us: u64) {
        self.end_us.store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `us` falls inside it.
    pub fn contains(&self, us: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.start_us.load(Relaxed) <= us && us < self.end_us.load(Relaxed)
    }
}

/// What one receiver saw of one stream.
#[derive(Clone, Debug, Default)]
pub struct StreamSeen {
    /// Packets received at any time.
    pub packets: u64,
    /// Packets received in the window.
    pub in_window: u64,
    /// Lowest and highest sequence number received in the window.
    pub window_seq: Option<(u32, u32)>,
    /// Packets that were not the payload sent.
    pub corrupt: u64,
    /// RFC 3550 interarrival jitter estimate, microseconds.
    jitter_us: f64,
    /// Sum of the jitter estimate over the window's packets, for its mean.
    jitter_sum_us: f64,
    last_transit_us: Option<i64>,
    /// Transit times of the window's packets (arrival less the send time they carry), µs.
    pub transits_us: Vec<u32>,
}

impl StreamSeen {
    /// Packets missing in the window (sequence gaps between the lowest and highest seen).
    pub fn lost(&self) -> u64 {
        self.window_seq.map_or(0, |(lo, hi)| {
            (u64::from(hi - lo) + 1).saturating_sub(self.in_window)
        })
    }

    /// Mean of the jitter estimate over the window's packets, microseconds.
    pub fn mean_jitter_us(&self) -> Option<f64> {
        (self.in_window > 0).then(|| self.jitter_sum_us / self.in_window as f64)
    }
}

/// What one receiver saw, per (publisher, stream).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Per stream.
    pub streams: HashMap<(u32, Stream), StreamSeen>,
    /// Packets without a probe.
    pub foreign: u64,
}

impl Seen {
    /// Records a packet received at `at` (`epoch` is the scenario's); its probe, if it has one.
    pub fn record(
        &mut self,
        payload_bytes: &[u8],
        at: Instant,
        epoch: Instant,
        window: &Window,
    ) -> Option<Probe> {
        let Some((probe, intact)) = read(payload_bytes) else {
            self.foreign += 1;
            return None;
        };
        let arrival_us = at.saturating_duration_since(epoch).as_micros() as u64;
        let s = self
            .streams
            .entry((probe.publisher, probe.stream))
            .or_default();
        s.packets += 1;
        if !intact {
            s.corrupt += 1;
        }
        // RFC 3550 section 6.4.1, with the send time the payload carries as the sender's
        // clock (so the publisher's own scheduling is not counted as network jitter).
        let transit = arrival_us as i64 - probe.sent_us as i64;
        if let Some(last) = s.last_transit_us {
            let d = (transit - last).abs() as f64;
            s.jitter_us += (d - s.jitter_us) / 16.0;
        }
        s.last_transit_us = Some(transit);
        if window.contains(arrival_us) {
            s.in_window += 1;
            s.transits_us
                .push(transit.clamp(0, i64::from(u32::MAX)) as u32);
            s.jitter_sum_us += s.jitter_us;
            s.window_seq = Some(match s.window_seq {
                None => (probe.seq, probe.seq),
                Some((lo, hi)) => (lo.min(probe.seq), hi.max(probe.seq)),
            });
        }
        Some(probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_and_any_change_shows() {
        for stream in [Stream::Audio, Stream::Video(0), Stream::Video(2)] {
            for seq in [0, 1, 2, 3, 180, 181] {
                let probe = Probe {
                    publisher: 7,
                    stream,
                    seq,
                    sent_us: 123_456,
                };
                let mut p = payload(&probe);
                assert_eq!(read(&p), Some((probe, true)));
                let last = p.len() - 1;
                p[last] ^= 1;
                assert_eq!(read(&p), Some((probe, false)));
            }
        }
        assert_eq!(frame_position(0), (true, true));
        assert_eq!(frame_position(3), (true, false));
        assert_eq!(frame_position(4), (false, false));
    }

    #[test]
    fn loss_jitter_and_transit_in_the_window() {
        let epoch = Instant::now();
        let window = Window::default();
        window.open(0);
        let mut seen = Seen::default();
        for seq in [0u32, 1, 3, 4] {
            let sent_us = u64::from(seq) * 20_000;
            let p = payload(&Probe {
                publisher: 1,
                stream: Stream::Audio,
                seq,
                sent_us,
            });
            let at = epoch + std::time::Duration::from_micros(sent_us + 1000 + u64::from(seq));
            seen.record(&p, at, epoch, &window);
        }
        let s = &seen.streams[&(1, Stream::Audio)];
        assert_eq!((s.in_window, s.lost(), s.corrupt), (4, 1, 0));
        assert_eq!(s.transits_us, [1000, 1001, 1003, 1004]);
        assert!(s.mean_jitter_us().expect("some") < 1.0);
    }
}
