//! Published tracks and their layers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::{Codec, PayloadParams};
use str0m::media::{Mid, Pt, Rid};
use str0m::rtp::Ssrc;

use crate::config::SfuConfig;
use crate::ids::{ParticipantId, TapId, TrackId};
use crate::keyframe::VideoCodec;
use crate::selector::LayerView;
use crate::signal::{TrackInfo, TrackKind};
use crate::speaker::VoiceMeter;
use crate::throttle::KeyframeThrottle;

/// One published source, with its layers.
pub(crate) struct Track {
    pub info: TrackInfo,
    /// Its m-line on the publisher connection.
    pub mid: Mid,
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
    /// Its taps (recording, broadcast).
    pub taps: Vec<TapId>,
    /// Whether it carries speech, for audio tracks.
    pub voice: Option<VoiceMeter>,
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
    /// Width and height of its last keyframe, when the codec says (VP8).
    pub size: Option<(u16, u16)>,
    /// Packets of it arrive now: one came within [`STALE_AFTER`].
    pub arriving: bool,
    /// Dynacast: whether the publisher was last told to send it (it sends, until told).
    pub sending: bool,
    /// Dynacast: since when no subscriber has needed it.
    pub unneeded_since: Option<Instant>,
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
    pub fn new(info: TrackInfo, room: Arc<str>, mid: Mid) -> Self {
        Self {
            mid,
            room,
            codec: None,
            video_codec: None,
            layers: Vec::new(),
            subscribers: Vec::new(),
            taps: Vec::new(),
            voice: (info.kind == TrackKind::Audio).then(VoiceMeter::default),
            info,
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

    /// Declares the simulcast layers the publisher's offer named, from the lowest to the highest
    /// quality (see [`quality_order`]), before any of them sends.
    pub fn declare_layers(&mut self, rids: &[Rid], config: &SfuConfig) {
        for rid in quality_order(rids) {
            self.layer_index(Some(rid), config);
        }
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
pub(crate) const MAX_LAYERS: usize = 4;

/// Simulcast rids from the lowest quality to the highest. The names in use say it: `q`, `h`,
/// `f` (quarter, half, full: tern's client and LiveKit's), `l`, `m`, `h` (low, medium, high), or
/// numbers (low first). Other names keep the offer's order, which by convention lists the lowest
/// encoding first.
pub(crate) fn quality_order(rids: &[Rid]) -> Vec<Rid> {
    let names: Vec<&str> = rids.iter().map(|r| &**r).collect();
    let scheme: Option<&[&str]> = if names.iter().any(|n| matches!(*n, "q" | "f")) {
        Some(&["q", "h", "f"])
    } else if names.iter().any(|n| matches!(*n, "l" | "m")) {
        Some(&["l", "m", "h"])
    } else {
        None
    };
    let mut ordered = rids.to_vec();
    match scheme {
        Some(scheme) => ordered.sort_by_key(|r| scheme.iter().position(|n| **n == **r)),
        None if names.iter().all(|n| n.parse::<u32>().is_ok()) => {
            ordered.sort_by_key(|r| r.parse::<u32>().unwrap_or(0));
        }
        None => {}
    }
    ordered
}

impl Layer {
    fn new(rid: Option<Rid>, config: &SfuConfig) -> Self {
        Self {
            rid,
            ssrc: None,
            repair_ssrc: None,
            bitrate: BitrateMeter::default(),
            last_packet: None,
            last_keyframe: None,
            size: None,
            arriving: false,
            sending: true,
            unneeded_since: None,
            keyframes: KeyframeThrottle::new(config.keyframe_interval(), config.keyframe_min_gap()),
        }
    }

    /// One packet of `bytes` payload bytes arrived at `now`. True when the layer was not
    /// arriving before it.
    pub fn on_packet(&mut self, now: Instant, bytes: usize, keyframe: bool) -> bool {
        let resumed = !self.arriving;
        self.arriving = true;
        self.last_packet = Some(now);
        if keyframe {
            self.last_keyframe = Some(now);
            self.keyframes.keyframe_arrived();
        }
        self.bitrate.add(now, bytes);
        resumed
    }

    /// Marks the layer as no longer arriving when its last packet is older than
    /// [`STALE_AFTER`]. True when that changed.
    pub fn check_stale(&mut self, now: Instant) -> bool {
        let stale = self
            .last_packet
            .is_none_or(|t| now.saturating_duration_since(t) >= STALE_AFTER);
        let changed = self.arriving && stale;
        if changed {
            self.arriving = false;
        }
        changed
    }

    /// What the selector needs to know of it.
    pub fn view(&self) -> LayerView {
        LayerView {
            arriving: self.arriving,
            size: self.size,
        }
    }
}

/// A layer with no packet for this long has stopped (the publisher paused it, or its uplink
/// cannot carry it); its subscribers fall back to another layer. Cameras send 15 frames a
/// second or more, several packets each.
pub(crate) const STALE_AFTER: Duration = Duration::from_millis(500);

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

    /// Bits per second over the last full window measured, however old.
    pub fn last(&self) -> u64 {
        self.bps
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
    fn layers_are_ordered_from_low_to_high_quality() {
        let order = |names: &[&str]| -> Vec<String> {
            let rids: Vec<Rid> = names.iter().map(|n| Rid::from(*n)).collect();
            quality_order(&rids).iter().map(|r| r.to_string()).collect()
        };
        assert_eq!(order(&["f", "h", "q"]), ["q", "h", "f"]);
        assert_eq!(order(&["h", "q"]), ["q", "h"]);
        assert_eq!(order(&["h", "m", "l"]), ["l", "m", "h"]);
        assert_eq!(order(&["2", "10", "1"]), ["1", "2", "10"]);
        assert_eq!(order(&["lo", "hi"]), ["lo", "hi"]);
    }

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
