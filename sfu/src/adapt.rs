//! Which layer each subscription forwards: chosen again when the subscriber asks for another
//! size, and when a layer starts or stops arriving. The choice itself is pure
//! ([`crate::target_layer`]); this carries it out and asks for the keyframes it needs.

use std::time::Instant;

use crate::error::SfuError;
use crate::ids::{ParticipantId, TrackId};
use crate::selector::{LayerRequest, LayerView};
use crate::sfu::Sfu;
use crate::signal::TrackKind;
use crate::throttle::KeyframeNeed;
use crate::track::{LayerRef, MAX_LAYERS};

/// The views of a track's layers, on the stack, and how many there are.
type Views = ([LayerView; MAX_LAYERS], usize);

impl Sfu {
    /// A subscriber's wish for one video track it receives: its size on screen, or paused.
    pub(crate) fn set_layer_request(
        &mut self,
        now: Instant,
        id: ParticipantId,
        track: TrackId,
        request: LayerRequest,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::ParticipantNotFound)?;
        let down = p
            .subscriptions
            .get_mut(&track)
            .ok_or_else(|| SfuError::TrackNotFound(track.to_string()))?;
        down.sub.request = request;
        self.retarget(now, id, track);
        Ok(())
    }

    /// Aim every subscription of `track` anew (a layer started or stopped arriving).
    pub(crate) fn retarget_track(&mut self, now: Instant, track: TrackId) {
        let Some(t) = self.tracks.get(&track) else {
            return;
        };
        if t.info.kind != TrackKind::Video {
            return;
        }
        let mut subscribers = std::mem::take(&mut self.scratch);
        subscribers.clear();
        subscribers.extend_from_slice(&t.subscribers);
        for s in &subscribers {
            self.retarget(now, *s, track);
        }
        self.scratch = subscribers;
    }

    /// Aim one subscription, and ask for the keyframe its new layer needs.
    pub(crate) fn retarget(&mut self, now: Instant, subscriber: ParticipantId, track: TrackId) {
        let Some((views, n)) = self.layer_views(track) else {
            return;
        };
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        let Some(down) = p.subscriptions.get_mut(&track) else {
            return;
        };
        let awaiting = down.sub.retarget(&views[..n]);
        // Before its m-line is negotiated and DTLS is up, the keyframe would be wasted; it is
        // asked for then (see `on_subscriber_connected`).
        let ready = down.ssrc.is_some() && p.subscriber.media_ready;
        if let (Some(layer), true) = (awaiting, ready) {
            let at = LayerRef { track, layer };
            self.request_keyframe(now, at, KeyframeNeed::NewSubscriber);
        }
    }

    fn layer_views(&self, track: TrackId) -> Option<Views> {
        let t = self.tracks.get(&track)?;
        if t.info.kind != TrackKind::Video || t.layers.is_empty() {
            return None;
        }
        let mut views = [LayerView {
            arriving: false,
            size: None,
        }; MAX_LAYERS];
        for (v, l) in views.iter_mut().zip(&t.layers) {
            *v = l.view();
        }
        Some((views, t.layers.len().min(MAX_LAYERS)))
    }

    /// Layers that stopped arriving: their subscribers move to another.
    pub(crate) fn check_stale_layers(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for (id, t) in self.tracks.iter_mut() {
            let mut any = false;
            for l in t.layers.iter_mut() {
                any |= l.check_stale(now);
            }
            if any {
                changed.push(*id);
            }
        }
        for track in changed {
            self.retarget_track(now, track);
        }
    }
}
