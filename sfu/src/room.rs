//! Rooms and tracks.

use std::sync::Arc;

use str0m::format::{Codec, PayloadParams};
use str0m::media::Pt;
use str0m::rtp::Ssrc;

use crate::config::SfuConfig;
use crate::ids::{ParticipantId, TrackId};
use crate::keyframe::VideoCodec;
use crate::signal::TrackInfo;
use crate::throttle::KeyframeThrottle;

/// A room: who is in it and what is published. Participants and tracks themselves live in the
/// core's maps, keyed by id.
#[derive(Default)]
pub(crate) struct Room {
    pub participants: Vec<ParticipantId>,
    pub tracks: Vec<TrackId>,
}

/// One published source.
pub(crate) struct Track {
    pub info: TrackInfo,
    /// The room it is published in.
    pub room: Arc<str>,
    /// The publisher's SSRC, once the first packet arrived.
    pub ssrc: Option<Ssrc>,
    /// The publisher's last payload type and its codec parameters.
    pub codec: Option<(Pt, PayloadParams)>,
    /// The video codec, learnt from the packets (None for audio or not yet known).
    pub video_codec: Option<VideoCodec>,
    /// Who receives it.
    pub subscribers: Vec<ParticipantId>,
    /// Keyframe requests towards the publisher.
    pub keyframes: KeyframeThrottle,
}

impl Track {
    pub fn new(info: TrackInfo, room: Arc<str>, config: &SfuConfig) -> Self {
        Self {
            info,
            room,
            ssrc: None,
            codec: None,
            video_codec: None,
            subscribers: Vec::new(),
            keyframes: KeyframeThrottle::new(config.keyframe_interval(), config.keyframe_min_gap()),
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
}
