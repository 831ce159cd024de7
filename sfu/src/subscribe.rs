//! Subscriptions of participants: added, refused, restarted on a codec change, removed.

use std::time::Instant;

use crate::error::SfuError;
use crate::ids::{ParticipantId, TrackId};
use crate::participant::Downlink;
use crate::sfu::Sfu;
use crate::signal::Notice;
use crate::subscription::Subscription;
use crate::throttle::KeyframeNeed;

impl Sfu {
    pub(crate) fn subscribe(
        &mut self,
        now: Instant,
        id: ParticipantId,
        tracks: &[TrackId],
    ) -> Result<(), SfuError> {
        let p = self.participant(id)?;
        if !p.permissions.subscribe {
            return Err(SfuError::PermissionDenied("subscribe"));
        }
        let room = p.room.clone();
        for t in tracks {
            let in_room = self.rooms.get(&room).is_some_and(|r| r.tracks.contains(t));
            let own = self
                .tracks
                .get(t)
                .is_some_and(|tr| tr.info.participant == id);
            if !in_room || own {
                return Err(SfuError::TrackNotFound(t.to_string()));
            }
        }
        for t in tracks {
            self.add_subscription(now, id, *t);
        }
        self.schedule_negotiation(id);
        Ok(())
    }

    pub(crate) fn unsubscribe(
        &mut self,
        id: ParticipantId,
        tracks: &[TrackId],
    ) -> Result<(), SfuError> {
        let p = self.participant(id)?;
        if let Some(t) = tracks.iter().find(|t| !p.subscriptions.contains_key(t)) {
            return Err(SfuError::TrackNotFound(t.to_string()));
        }
        for t in tracks {
            self.remove_subscription(id, *t);
        }
        self.schedule_negotiation(id);
        Ok(())
    }

    pub(crate) fn add_subscription(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        track_id: TrackId,
    ) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        if p.subscriptions.contains_key(&track_id) {
            return;
        }
        let down = Downlink {
            mid: None,
            ssrc: None,
            pt_map: None,
            red_pt: None,
            red: Default::default(),
            sub: Subscription::new(track.info.kind),
            queued: Default::default(),
        };
        p.subscriptions.insert(track_id, down);
        p.negotiation.dirty = true;
        track.subscribers.push(subscriber);
        self.schedule_negotiation(subscriber);
        self.retarget(now, subscriber, track_id);
    }

    /// The track's codec changed to one the subscriber's m-line did not negotiate: stop that
    /// m-line and offer the track again in a new one, in the new codec (str0m never changes the
    /// codecs of a negotiated m-line). The client sees the same msid on the new m-line.
    pub(crate) fn restart_subscription(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        track: TrackId,
    ) {
        tracing::info!(participant = %subscriber, %track, "codec changed; offering the track again");
        // What the subscriber asked for (its tile) and what its bandwidth allows carry over.
        let kept = self
            .participants
            .get(&subscriber)
            .and_then(|p| p.subscriptions.get(&track))
            .map(|d| (d.sub.request, d.sub.allowed));
        self.remove_subscription(subscriber, track);
        self.add_subscription(now, subscriber, track);
        if let Some((request, allowed)) = kept {
            if let Some(d) = self
                .participants
                .get_mut(&subscriber)
                .and_then(|p| p.subscriptions.get_mut(&track))
            {
                (d.sub.request, d.sub.allowed) = (request, allowed);
            }
            self.retarget(now, subscriber, track);
        }
    }

    /// Drop a subscription; its m-line is stopped in the next offer.
    pub(crate) fn remove_subscription(&mut self, subscriber: ParticipantId, track: TrackId) {
        if let Some(t) = self.tracks.get_mut(&track) {
            t.subscribers.retain(|s| *s != subscriber);
        }
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        let Some(sub) = p.subscriptions.remove(&track) else {
            return;
        };
        if let Some(mid) = sub.mid {
            p.sub_mids.remove(&mid);
            p.negotiation.mids_to_stop.push(mid);
        }
        p.negotiation.dirty = true;
    }

    /// The subscriber cannot receive `track` in the codec it is published in: say so, count it,
    /// and stop its m-line.
    pub(crate) fn refuse_subscription(&mut self, id: ParticipantId, track: TrackId) {
        let codec = self.tracks.get(&track).and_then(|t| t.codec).map_or_else(
            || "its codec".to_string(),
            |(_, c)| c.spec().codec.to_string(),
        );
        tracing::warn!(participant = %id, track = %track, %codec, "subscriber cannot receive the track's codec");
        self.stats.subscriptions_refused += 1;
        self.remove_subscription(id, track);
        self.notify(
            id,
            Notice::SubscriptionFailed {
                track,
                code: "codec_unsupported",
                message: format!(
                    "track {track} is sent in {codec}, which the answer did not accept"
                ),
            },
        );
        self.schedule_negotiation(id);
    }

    /// The subscriber connection's DTLS is up: ask for the keyframes its video waits for.
    pub(crate) fn on_subscriber_connected(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.subscriber.media_ready = true;
        for at in p.awaiting_keyframes() {
            self.request_keyframe(now, at, KeyframeNeed::NewSubscriber);
        }
    }
}
