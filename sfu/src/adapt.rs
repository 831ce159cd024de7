//! Which layer each subscription forwards: chosen again when the subscriber asks for another
//! size, and when a layer starts or stops arriving. The choice itself is pure
//! ([`crate::target_layer`]); this carries it out and asks for the keyframes it needs.

use std::time::Instant;

use str0m::bwe::Bitrate;

use crate::allocator::{Grant, VideoDemand, allocate};
use crate::error::SfuError;
use crate::ids::{ParticipantId, TrackId};
use crate::selector::{LayerRequest, LayerView, wanted_layer};
use crate::sfu::Sfu;
use crate::signal::{TrackKind, TrackSource};
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
        if p.estimate.is_some() {
            self.reallocate(now, id);
        } else {
            self.retarget(now, id, track);
        }
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
        let taps = t.taps.clone();
        for tap in taps {
            self.retarget_tap(now, tap);
        }
        let Some(t) = self.tracks.get(&track) else {
            return;
        };
        let mut subscribers = std::mem::take(&mut self.scratch);
        subscribers.clear();
        subscribers.extend_from_slice(&t.subscribers);
        for s in &subscribers {
            // What arrives changed what each subscriber's bandwidth buys.
            if self
                .participants
                .get(s)
                .is_some_and(|p| p.estimate.is_some())
            {
                self.reallocate(now, *s);
            } else {
                self.retarget(now, *s, track);
            }
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

    pub(crate) fn layer_views(&self, track: TrackId) -> Option<Views> {
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

/// A layer's bitrate before it is measured, by its position from the top layer: what
/// `tern-client.js` asks its encoders for (1.5M, 500k, 150k bit/s).
const NOMINAL_BPS: [u64; 4] = [1_500_000, 500_000, 150_000, 150_000];

/// What an audio track is assumed to take before it is measured (Opus at its usual rate, with
/// packet overhead).
const NOMINAL_AUDIO_BPS: u64 = 50_000;

impl Sfu {
    /// A new bandwidth estimate for a participant's subscriber connection.
    pub(crate) fn on_estimate(&mut self, now: Instant, id: ParticipantId, bps: u64) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.estimate = Some(bps);
        }
        self.reallocate(now, id);
    }

    /// Share the participant's estimate among the video it receives (see
    /// [`crate::allocate`]), aim each subscription at what it was granted, and tell the
    /// estimator what to probe for.
    pub(crate) fn reallocate(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let Some(estimate) = p.estimate else {
            return;
        };
        let active_speaker = self.rooms.get(&p.room).and_then(|r| r.active_speaker);
        let mut audio_bps = 0;
        // Audio measured to flow to this subscriber now (silent tracks and subscriptions not
        // yet sending count nothing), for the stall check.
        let mut audio_flowing = 0;
        let mut tracks = Vec::new();
        let mut demands = Vec::new();
        for (track_id, down) in &p.subscriptions {
            let Some(t) = self.tracks.get(track_id) else {
                continue;
            };
            if t.info.kind == TrackKind::Audio {
                let measured = t.layers.first().map_or(0, |l| l.bitrate.bps(now));
                if down.ssrc.is_some() {
                    audio_flowing += measured;
                }
                audio_bps += if measured > 0 {
                    measured
                } else {
                    NOMINAL_AUDIO_BPS
                };
                continue;
            }
            let Some((views, n)) = self.layer_views(*track_id) else {
                continue;
            };
            let mut layer_bps = [0; MAX_LAYERS];
            for (i, l) in t.layers.iter().enumerate().take(n) {
                let measured = l.bitrate.bps(now);
                let nominal = NOMINAL_BPS[(n - 1 - i).min(MAX_LAYERS - 1)];
                layer_bps[i] = match (l.arriving, measured, i) {
                    // Turned off by dynacast: grantable at what it took, which turns it on.
                    (false, _, _) if !l.sending => match l.bitrate.last() {
                        0 => nominal,
                        last => last,
                    },
                    (false, _, _) => 0,
                    // A lowest layer just started and not yet measured: let its first picture
                    // through (1 bit/s is "arriving, nearly free"); it is measured within 0.5 s.
                    (true, 0, 0) => 1,
                    (true, 0, _) => nominal,
                    (true, m, _) => m,
                };
            }
            let speaking = active_speaker == Some(t.info.participant);
            demands.push(VideoDemand {
                priority: priority(t.info.source, speaking),
                wanted: wanted_layer(down.sub.request, &views[..n]),
                layer_bps,
                layers: n as u8,
                previous: down.sub.allowed,
            });
            tracks.push(*track_id);
        }
        let grants = allocate(estimate, audio_bps, &demands);
        tracing::trace!(participant = %id, estimate, audio_bps, ?demands, ?grants, "allocated");
        let (mut sending, mut desired, mut next_step) = (audio_bps, audio_bps, None);
        for (d, g) in demands.iter().zip(&grants) {
            let Some(wanted) = d.wanted else {
                continue;
            };
            let bps = |layer: u8| d.layer_bps[usize::from(layer)];
            let now_bps = match g {
                Grant::UpTo(layer) => bps(*layer),
                Grant::Paused => 0,
            };
            sending += now_bps;
            desired += (0..=wanted).map(bps).max().unwrap_or(0);
            // The cheapest step up any video could take next.
            let above = match g {
                Grant::UpTo(layer) => *layer + 1,
                Grant::Paused => 0,
            };
            if let Some(next) = (above..=wanted).map(bps).find(|b| *b > 0) {
                let step = next.saturating_sub(now_bps);
                next_step = Some(next_step.map_or(step, |s: u64| s.min(step)));
            }
        }
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        for (track, grant) in tracks.iter().zip(&grants) {
            if let Some(down) = p.subscriptions.get_mut(track) {
                down.sub.allowed = Some(*grant);
            }
        }
        // Padding tops the media up to what the next step needs, so the estimate can grow into it.
        let minimum = desired.min(sending + next_step.unwrap_or(0));
        p.subscriber
            .rtc
            .bwe()
            .set_bitrate(Bitrate::bps(minimum), Bitrate::bps(desired));
        // What flows to the subscriber: measured audio, and the video granted.
        let flowing = sending - audio_bps + audio_flowing;
        let up = p.subscriber.media_ready && p.subscriber.disconnected_since.is_none();
        if let Some(restart) = up.then(|| p.stall.check(now, estimate, flowing)).flatten() {
            // Locked under what the link demonstrably carries (see `StallWatch`): start the
            // estimator again, with its initial probes. The allocation follows its estimates
            // as they come (str0m smooths them over a few seconds, from the old value).
            tracing::info!(participant = %id, estimate, flowing, restart, "estimate locked, restarting it");
            p.subscriber.rtc.bwe().reset(Bitrate::bps(restart));
            self.stats.bwe_restarts += 1;
        }
        for track in tracks {
            self.retarget(now, id, track);
        }
    }
}

/// Which video the allocator serves first: a shared screen, then the active speaker's, then
/// the rest.
fn priority(source: TrackSource, active_speaker: bool) -> u8 {
    match (source, active_speaker) {
        (TrackSource::Screen, _) => 2,
        (_, true) => 1,
        _ => 0,
    }
}
