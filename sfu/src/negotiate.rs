//! Offer/answer on both connections, publishing, and subscriptions.
//!
//! The publisher connection is always offered by the participant and answered by the server; the
//! subscriber connection is always offered by the server. Neither side can glare, and str0m keeps
//! extmap ids stable across renegotiations of one connection.

use std::time::Instant;

use str0m::Candidate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};

use crate::error::SfuError;
use crate::ids::{ParticipantId, TrackId};
use crate::participant::Subscription;
use crate::rewrite::RtpRewriter;
use crate::room::Track;
use crate::sdp::{self, KeepPts};
use crate::sfu::{PcKey, Sfu};
use crate::signal::{
    Notice, PcRole, RemoteCandidate, TrackHint, TrackInfo, TrackKind, TrackSource,
};
use crate::throttle::KeyframeNeed;

impl Sfu {
    pub(crate) fn publisher_offer(
        &mut self,
        _now: Instant,
        id: ParticipantId,
        sdp: &str,
        hints: Vec<TrackHint>,
    ) -> Result<String, SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::ParticipantNotFound)?;
        if !p.permissions.publish {
            return Err(SfuError::PermissionDenied("publish"));
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        for h in hints {
            p.hints.insert(h.mid, h.source);
        }
        let answer = p
            .publisher
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
        p.publisher.remember_remote(sdp);
        self.drain(PcKey {
            participant: id,
            role: PcRole::Publisher,
        });
        Ok(sdp::complete(&answer.to_sdp_string(), &KeepPts::new()))
    }

    /// A new m-line on a publisher connection.
    pub(crate) fn on_publisher_media(
        &mut self,
        now: Instant,
        id: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        direction: Direction,
    ) {
        if receives(direction) {
            self.publish_track(now, id, mid, kind);
        }
    }

    /// A renegotiated m-line: a track starts or stops being sent.
    pub(crate) fn on_publisher_media_changed(
        &mut self,
        now: Instant,
        id: ParticipantId,
        mid: Mid,
        direction: Direction,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        match (p.published.get(&mid).copied(), receives(direction)) {
            (Some(track), false) => {
                p.published.remove(&mid);
                p.ssrc_tracks.retain(|_, t| *t != track);
                self.unpublish_track(track);
            }
            (None, true) => {
                let kind = p.publisher.rtc.media(mid).map(|m| m.kind());
                if let Some(kind) = kind {
                    self.publish_track(now, id, mid, kind);
                }
            }
            _ => {}
        }
    }

    fn publish_track(&mut self, _now: Instant, id: ParticipantId, mid: Mid, kind: MediaKind) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.published.len() >= self.config.max_tracks_per_participant {
            tracing::info!(participant = %id, "track limit reached; m-line ignored");
            return;
        }
        self.next_track += 1;
        let track_id = TrackId(self.next_track);
        let info = TrackInfo {
            id: track_id,
            participant: id,
            kind: if kind == MediaKind::Audio {
                TrackKind::Audio
            } else {
                TrackKind::Video
            },
            source: p
                .hints
                .get(mid.to_string().as_str())
                .copied()
                .unwrap_or(TrackSource::Unknown),
            muted: false,
        };
        p.published.insert(mid, track_id);
        let room_name = p.room.clone();
        tracing::info!(participant = %id, track = %track_id, ?kind, "published");
        let mut track = Track::new(info.clone(), room_name.clone(), &self.config);
        // Until its first packet says otherwise, the track is sent in the first codec of our
        // answer, which is what an offerer sends in (RFC 3264 section 5.1). str0m writes the
        // negotiated codecs in its own configured order.
        let negotiated = p.publisher.rtc.media(mid).map(|m| m.remote_pts().to_vec());
        let codec = negotiated.and_then(|pts| {
            let config = p.publisher.rtc.codec_config();
            config
                .params()
                .iter()
                .find(|c| pts.contains(&c.pt()))
                .copied()
        });
        track.set_codec(codec);
        self.tracks.insert(track_id, track);
        self.notify(
            id,
            Notice::LocalTrackPublished {
                mid: mid.to_string(),
                track: info.clone(),
            },
        );
        let Some(room) = self.rooms.get_mut(&room_name) else {
            return;
        };
        room.tracks.push(track_id);
        let others: Vec<ParticipantId> = room
            .participants
            .iter()
            .copied()
            .filter(|o| *o != id)
            .collect();
        for other in others {
            self.notify(other, Notice::TrackPublished(info.clone()));
            let auto = self
                .participants
                .get(&other)
                .is_some_and(|o| o.auto_subscribe && o.permissions.subscribe);
            if auto {
                self.add_subscription(other, track_id);
                self.schedule_negotiation(other);
            }
        }
    }

    /// Remove a track from its room and from every subscriber.
    pub(crate) fn unpublish_track(&mut self, track_id: TrackId) {
        let Some(track) = self.tracks.remove(&track_id) else {
            return;
        };
        tracing::info!(track = %track_id, "unpublished");
        // The notice goes first, the offer that stops the m-line after it.
        if let Some(room) = self.rooms.get_mut(&track.room) {
            room.tracks.retain(|t| *t != track_id);
            let everyone: Vec<ParticipantId> = room
                .participants
                .iter()
                .copied()
                .filter(|p| *p != track.info.participant)
                .collect();
            for p in everyone {
                self.notify(p, Notice::TrackUnpublished(track_id));
            }
        }
        for sub in &track.subscribers {
            self.remove_subscription(*sub, track_id);
            self.schedule_negotiation(*sub);
        }
    }

    pub(crate) fn subscriber_answer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::ParticipantNotFound)?;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let pending = p
            .negotiation
            .pending
            .take()
            .ok_or(SfuError::NoPendingOffer)?;
        if let Err(e) = p.subscriber.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is spent and its new m-lines never came to be: offer them again.
            for sub in p.subscriptions.values_mut() {
                if let (Some(mid), None) = (sub.mid, sub.ssrc)
                    && p.subscriber.rtc.media(mid).is_none()
                {
                    p.sub_mids.remove(&mid);
                    (sub.mid, sub.pt_map) = (None, None);
                }
            }
            p.negotiation.dirty = true;
            self.schedule_negotiation(id);
            return Err(SfuError::BadSdp(e.to_string()));
        }
        p.subscriber.remember_remote(sdp);
        let mut ready = Vec::new();
        let mut refused = Vec::new();
        for (track, sub) in p.subscriptions.iter_mut() {
            let (Some(mid), None) = (sub.mid, sub.ssrc) else {
                continue;
            };
            // The answer must accept the m-line with the one codec it was offered.
            let media = p.subscriber.rtc.media(mid);
            let accepted = media.is_some_and(|m| {
                !m.disabled()
                    && sub
                        .pt_map
                        .is_none_or(|(_, out)| m.remote_pts().contains(&out.into()))
            });
            if !accepted {
                refused.push(*track);
                continue;
            }
            sub.ssrc = p
                .subscriber
                .rtc
                .direct_api()
                .stream_tx_by_mid(mid, None)
                .map(|s| s.ssrc());
            if sub.ssrc.is_some() && sub.waiting_for_keyframe {
                ready.push(*track);
            }
        }
        // Media flows once DTLS is up; until then the keyframe would be lost (see on_connected).
        let connected = p.subscriber.media_ready;
        self.drain(PcKey {
            participant: id,
            role: PcRole::Subscriber,
        });
        for track in refused {
            self.refuse_subscription(id, track);
        }
        if connected {
            for track in ready {
                self.request_keyframe(now, track, KeyframeNeed::NewSubscriber);
            }
        }
        self.schedule_negotiation(id);
        Ok(())
    }

    /// The subscriber cannot receive `track` in the codec it is published in: say so, count it,
    /// and stop its m-line.
    fn refuse_subscription(&mut self, id: ParticipantId, track: TrackId) {
        let codec = self.tracks.get(&track).and_then(|t| t.codec).map_or_else(
            || "its codec".to_string(),
            |(_, c)| c.spec().codec.to_string(),
        );
        tracing::warn!(participant = %id, track = %track, %codec, "subscriber cannot receive the track's codec");
        self.stats.subscriptions_refused += 1;
        self.remove_subscription(id, track);
        if let Some(t) = self.tracks.get_mut(&track) {
            t.subscribers.retain(|s| *s != id);
        }
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
        let waiting: Vec<TrackId> = p
            .subscriptions
            .iter()
            .filter(|(_, s)| s.ssrc.is_some() && s.waiting_for_keyframe)
            .map(|(t, _)| *t)
            .collect();
        for track in waiting {
            self.request_keyframe(now, track, KeyframeNeed::NewSubscriber);
        }
    }

    pub(crate) fn remote_candidate(
        &mut self,
        id: ParticipantId,
        role: PcRole,
        c: &RemoteCandidate,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::ParticipantNotFound)?;
        let pc = p.pc_mut(role);
        pc.check_candidate_target(c)?;
        let line = c.candidate.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(()); // end of candidates
        }
        let mut candidate =
            Candidate::from_sdp_string(line).map_err(|e| SfuError::BadCandidate(e.to_string()))?;
        if let Some(ufrag) = c.username_fragment.as_deref().filter(|u| !u.is_empty()) {
            candidate.set_ufrag(ufrag);
        }
        pc.rtc.add_remote_candidate(candidate);
        self.drain(PcKey {
            participant: id,
            role,
        });
        Ok(())
    }

    pub(crate) fn subscribe(
        &mut self,
        _now: Instant,
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
            self.add_subscription(id, *t);
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
            if let Some(track) = self.tracks.get_mut(t) {
                track.subscribers.retain(|s| *s != id);
            }
        }
        self.schedule_negotiation(id);
        Ok(())
    }

    pub(crate) fn set_muted(
        &mut self,
        id: ParticipantId,
        track: TrackId,
        muted: bool,
    ) -> Result<(), SfuError> {
        let t = self
            .tracks
            .get_mut(&track)
            .filter(|t| t.info.participant == id);
        let t = t.ok_or_else(|| SfuError::TrackNotFound(track.to_string()))?;
        if t.info.muted == muted {
            return Ok(());
        }
        t.info.muted = muted;
        let room = self.participant(id)?.room.clone();
        let others: Vec<ParticipantId> = self
            .rooms
            .get(&room)
            .map(|r| {
                r.participants
                    .iter()
                    .copied()
                    .filter(|o| *o != id)
                    .collect()
            })
            .unwrap_or_default();
        for o in others {
            self.notify(o, Notice::TrackMuted { track, muted });
        }
        Ok(())
    }

    pub(crate) fn add_subscription(&mut self, subscriber: ParticipantId, track_id: TrackId) {
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(p) = self.participants.get_mut(&subscriber) else {
            return;
        };
        if p.subscriptions.contains_key(&track_id) {
            return;
        }
        p.subscriptions.insert(
            track_id,
            Subscription {
                mid: None,
                ssrc: None,
                rewriter: RtpRewriter::new(0),
                waiting_for_keyframe: track.info.kind == TrackKind::Video,
                pt_map: None,
            },
        );
        p.negotiation.dirty = true;
        track.subscribers.push(subscriber);
        self.schedule_negotiation(subscriber);
    }

    /// The track's codec changed to one the subscriber's m-line did not negotiate: stop that
    /// m-line and offer the track again in a new one, in the new codec (str0m never changes the
    /// codecs of a negotiated m-line). The client sees the same msid on the new m-line.
    pub(crate) fn restart_subscription(&mut self, subscriber: ParticipantId, track: TrackId) {
        tracing::info!(participant = %subscriber, %track, "codec changed; offering the track again");
        self.remove_subscription(subscriber, track);
        if let Some(t) = self.tracks.get_mut(&track) {
            t.subscribers.retain(|s| *s != subscriber);
        }
        self.add_subscription(subscriber, track);
    }

    /// Drop a subscription; its m-line is stopped in the next offer.
    fn remove_subscription(&mut self, subscriber: ParticipantId, track: TrackId) {
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

    /// Send a new subscriber offer if something changed and no offer is outstanding.
    pub(crate) fn negotiate(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.negotiation.pending.is_some() || !p.negotiation.dirty {
            return;
        }
        p.negotiation.dirty = false;
        let mut keep = KeepPts::new();
        let mut unsendable = Vec::new();
        let codecs = p.subscriber.rtc.codec_config().clone();
        let mut api = p.subscriber.rtc.sdp_api();
        for (track_id, sub) in p.subscriptions.iter_mut().filter(|(_, s)| s.mid.is_none()) {
            let Some(track) = self.tracks.get(track_id) else {
                continue;
            };
            // Offer only the codec the track is sent in, and its RTX.
            let out = match track.codec {
                Some((pt, params)) => match codecs.match_params(params) {
                    Some(out) => Some((*pt, *out)),
                    None => {
                        unsendable.push(*track_id);
                        continue;
                    }
                },
                None => None,
            };
            let kind = match track.info.kind {
                TrackKind::Audio => MediaKind::Audio,
                TrackKind::Video => MediaKind::Video,
            };
            let stream_id = track.info.participant.to_string();
            let mid = api.add_media(
                kind,
                Direction::SendOnly,
                Some(stream_id),
                Some(track_id.to_string()),
                None,
            );
            if let Some((pt, out)) = out {
                sub.pt_map = Some((pt, *out.pt()));
                let pts = [Some(out.pt()), out.resend()].into_iter().flatten();
                keep.insert(mid.to_string(), pts.map(|pt| *pt).collect());
            }
            sub.mid = Some(mid);
            p.sub_mids.insert(mid, *track_id);
        }
        for mid in p.negotiation.mids_to_stop.drain(..) {
            api.stop_media(mid);
        }
        if let Some((offer, pending)) = api.apply() {
            p.negotiation.pending = Some(pending);
            let sdp = sdp::complete(&offer.to_sdp_string(), &keep);
            self.notify(id, Notice::SubscriberOffer(sdp));
        }
        self.drain(PcKey {
            participant: id,
            role: PcRole::Subscriber,
        });
        for track in unsendable {
            self.refuse_subscription(id, track);
        }
    }
}

fn receives(direction: Direction) -> bool {
    matches!(direction, Direction::RecvOnly | Direction::SendRecv)
}
