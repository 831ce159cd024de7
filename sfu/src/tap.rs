//! Taps: subscriptions whose sink is a recorder or a broadcaster instead of a participant's
//! connection. A tap shares the media path: after NACK recovery, at the best layer available
//! (it asks for the top layer, like a large tile, within no bandwidth limit), with sequence
//! numbers and timestamps continuous across layer switches, audio as plain Opus. Its packets
//! leave the core as [`crate::Output::Tap`]; the shell hands them to a bounded queue that
//! drops and counts when full, so a tap never slows the media path.

use std::sync::Arc;
use std::time::Instant;

use crate::error::SfuError;
use crate::ids::{TapId, TrackId};
use crate::sfu::{Output, Sfu};
use crate::signal::TrackKind;
use crate::subscription::Subscription;
use crate::throttle::KeyframeNeed;
use crate::track::LayerRef;

/// The codec of a tapped track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapCodec {
    /// Opus (RED unwrapped).
    Opus,
    /// VP8.
    Vp8,
    /// H.264.
    H264,
}

/// One packet of a tapped track, numbered for the tap.
#[derive(Debug, Clone)]
pub struct TapPacket {
    /// The tapped track.
    pub track: TrackId,
    /// Its codec.
    pub codec: TapCodec,
    /// Its RTP clock rate.
    pub clock_rate: u32,
    /// Continuous extended sequence number, from [`crate::FIRST_SEQ`].
    pub seq: u64,
    /// Continuous RTP timestamp.
    pub timestamp: u32,
    /// The RTP marker bit.
    pub marker: bool,
    /// True on the first packet of a video keyframe.
    pub keyframe: bool,
    /// The payload (shared with the other sinks).
    pub payload: Arc<[u8]>,
    /// When it arrived.
    pub arrival: Instant,
}

/// A tap on one track.
pub(crate) struct Tap {
    pub track: TrackId,
    pub sub: Subscription,
    /// The room tap it belongs to, if any.
    pub owner: Option<crate::ids::RoomTapId>,
}

impl Sfu {
    /// Starts a tap on `track`; asks the publisher for a keyframe so video starts at once.
    pub(crate) fn add_tap(&mut self, now: Instant, track: TrackId) -> Result<TapId, SfuError> {
        let t = self
            .tracks
            .get_mut(&track)
            .ok_or_else(|| SfuError::TrackNotFound(track.to_string()))?;
        self.next_track += 1;
        let id = TapId(self.next_track);
        t.taps.push(id);
        let sub = Subscription::new(t.info.kind);
        self.taps.insert(
            id,
            Tap {
                track,
                sub,
                owner: None,
            },
        );
        tracing::info!(tap = %id, %track, "tap added");
        self.retarget_tap(now, id);
        Ok(id)
    }

    /// Ends a tap.
    pub(crate) fn remove_tap(&mut self, tap: TapId) -> Result<(), SfuError> {
        let t = self
            .taps
            .remove(&tap)
            .ok_or_else(|| SfuError::TrackNotFound(tap.to_string()))?;
        if let Some(track) = self.tracks.get_mut(&t.track) {
            track.taps.retain(|id| *id != tap);
        }
        Ok(())
    }

    /// Asks for a keyframe of what the tap forwards (its consumer restarted).
    pub(crate) fn tap_keyframe(&mut self, now: Instant, tap: TapId) -> Result<(), SfuError> {
        let t = self
            .taps
            .get(&tap)
            .ok_or_else(|| SfuError::TrackNotFound(tap.to_string()))?;
        let layer = t.sub.selector.current().or(t.sub.awaiting_keyframe());
        if let Some(layer) = layer {
            let at = LayerRef {
                track: t.track,
                layer,
            };
            self.request_keyframe(now, at, KeyframeNeed::NewSubscriber);
        }
        Ok(())
    }

    /// Aims a tap at the best layer arriving, asking for the keyframe that needs.
    pub(crate) fn retarget_tap(&mut self, now: Instant, tap: TapId) {
        let Some(track) = self.taps.get(&tap).map(|t| t.track) else {
            return;
        };
        let Some((views, n)) = self.layer_views(track) else {
            return;
        };
        let Some(t) = self.taps.get_mut(&tap) else {
            return;
        };
        if let Some(layer) = t.sub.retarget(&views[..n]) {
            self.request_keyframe(now, LayerRef { track, layer }, KeyframeNeed::NewSubscriber);
        }
    }

    /// The track of these taps ended: they end too.
    pub(crate) fn end_taps(&mut self, taps: &[TapId]) {
        for tap in taps {
            if self.taps.remove(tap).is_some() {
                self.outputs.push_back(Output::TapEnded(*tap));
            }
        }
    }
}

/// The tap codec of a track's codec, if tern taps it.
pub(crate) fn tap_codec(kind: TrackKind, video: Option<crate::VideoCodec>) -> Option<TapCodec> {
    match (kind, video) {
        (TrackKind::Audio, _) => Some(TapCodec::Opus),
        (TrackKind::Video, Some(crate::VideoCodec::Vp8)) => Some(TapCodec::Vp8),
        (TrackKind::Video, Some(crate::VideoCodec::H264)) => Some(TapCodec::H264),
        (TrackKind::Video, None) => None,
    }
}
