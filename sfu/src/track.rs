//! Published tracks and their layers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::{Codec, PayloadParams};
use str0m::media::{Pt, Rid};
use str0m::rtp::Ssrc;

use crate::config::SfuConfig;
use crate::ids::{ParticipantId, TrackId};
use crate::keyframe::VideoCodec;
use crate::signal::TrackInfo;
use crate::throttle::KeyframeThrottle;

/// One published source, with its layers.
pub(crate) struct Track {
    pub info: TrackInfo,
    /// The room it is published in.
    pub room: Arc<str>,
    /// The publisher's last payload type and its codec parameters (the same for every layer).
    pub codec: Option<(Pt, PayloadParams)>,
    /// The video codec, learnt from the packets (None for audio or not yet known).
    pub video_codec: Option<VideoCodec>,
    /// Its encodings from the lowest to the highest: one, without a rid, for a track that does
    /// not simulcast.
    pub layers: Vec<Layer>,
    /// Who receives it.
    pub subscribers: Vec<ParticipantId>,
}

/// One encoding of a track: a simulcast layer, or the whole track when it does not simulcast.
pub(crate) struct Layer {
    /// Its RTP stream id (RFC 8851), for a simulcast encoding.
    pub rid: Option<Rid>,
    /// The publisher's SSRC for it, once its first packet arrived.
    pub ssrc: Option<Ssrc>,
    /// Its retransmission (RTX) SSRC, when the publisher sends one.
    pub repair_ssrc: Option<Ssrc>,
    /// What arrives on it.
    pub bitrate: BitrateMeter,
    /// When its last packet arrived.
    pub last_packet: Option<Instant>,
    /// When its last keyframe started.
    pub last_keyframe: Option<Instant>,
    /// Keyframe requests towards the publisher for this layer.
    pub keyframes: KeyframeThrottle,
}

/// A packet's place in the core: which track, and which of its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerRef {
    pub track: TrackId,
    pub layer: u8,
}

impl Track {
    pub fn new(info: TrackInfo, room: Arc<str>) -> Self {
        Self {
            info,
            room,
            codec: None,
            video_codec: None,
            layers: Vec::new(),
            subscribers: Vec::new(),
        }
    }

    /// Records the codec the track is sent in (or is expected to be, before its first packet).
    pub fn set_codec(&mut self, params: Option<PayloadParams>) {
        self.codec = params.map(|p| (p.pt(), p));
        self.video_codec = params.and_then(|p| match p.spec().codec {
            Codec::Vp8 => Some(VideoCodec::Vp8),
            Codec::H264 => Some(VideoCodec::H264),
            _ => None,
        });
    }

    /// The index of the layer sent with `rid` (`None`: the track does not simulcast), adding the
    /// layer if it is new. `None` when the track already has as many layers as it may.
    pub fn layer_index(&mut self, rid: Option<Rid>, config: &SfuConfig) -> Option<u8> {
        if let Some(i) = self.layers.iter().position(|l| l.rid == rid) {
            return Some(i as u8);
        }
        if self.layers.len() >= MAX_LAYERS {
            return None;
        }
        self.layers.push(Layer::new(rid, config));
        Some((self.layers.len() - 1) as u8)
    }
}

/// The most layers one track may have (simulcast uses three).
const MAX_LAYERS: usize = 4;

impl Layer {
    fn new(rid: Option<Rid>, config: &SfuConfig) -> Self {
        Self {
            rid,
            ssrc: None,
            repair_ssrc: None,
            bitrate: BitrateMeter::default(),
            last_packet: None,
            last_keyframe: None,
            keyframes: KeyframeThrottle::new(config.keyframe_interval(), config.keyframe_min_gap()),
        }
    }

    /// One packet of `bytes` payload bytes arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, bytes: usize, keyframe: bool) {
        self.last_packet = Some(now);
        if keyframe {
            self.last_keyframe = Some(now);
            self.keyframes.keyframe_arrived();
        }
        self.bitrate.add(now, bytes);
    }
}

/// The bitrate of a stream, measured over windows of about half a second. No allocation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BitrateMeter {
    window_start: Option<Instant>,
    window_bytes: u64,
    bps: u64,
}

/// The measuring window.
const WINDOW: Duration = Duration::from_millis(500);

impl BitrateMeter {
    /// Counts `bytes` arriving at `now`.
    pub fn add(&mut self, now: Instant, bytes: usize) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            self.bps = self.window_bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64;
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
        self.window_bytes += bytes as u64;
    }

    /// Bits per second over the last full window, or 0 before the first, or when nothing has
    /// arrived since `now - 2 windows`.
    pub fn bps(&self, now: Instant) -> u64 {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < 2 * WINDOW => self.bps,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_steady_stream_and_forgets_a_stopped_one() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        // 100 packets of 1250 bytes per second: 1 Mbit/s.
        for i in 0..=100u64 {
            m.add(t0 + Duration::from_millis(i * 10), 1250);
        }
        let at = t0 + Duration::from_millis(1000);
        assert!((990_000..=1_010_000).contains(&m.bps(at)), "{}", m.bps(at));
        assert_eq!(m.bps(t0 + Duration::from_secs(3)), 0);
    }
}
