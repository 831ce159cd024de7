//! Offer/answer on both connections, and trickled candidates.
//!
//! The publisher connection is always offered by the participant and answered by the server; the
//! subscriber connection is always offered by the server. Neither side can glare, and str0m keeps
//! extmap ids stable across renegotiations of one connection.

use std::time::{Duration, Instant};

use str0m::Candidate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};

use crate::error::SfuError;
use crate::ids::ParticipantId;
use crate::sdp::{self, KeepPts};
use crate::sfu::{PcKey, Sfu};
use crate::signal::{Notice, PcRole, RemoteCandidate, TrackHint, TrackKind, TrackSource};
use crate::throttle::KeyframeNeed;
use crate::track::LayerRef;

/// Whether the participant may offer this: data channels alone need no grant; any audio or
/// video m-line (whatever its direction) needs `publish`, and with restricted sources each one
/// not published yet must be named as a source the token allows, of its kind. A refused offer
/// changes nothing.
fn check_sources(
    p: &crate::participant::Participant,
    sdp: &str,
    hints: &[TrackHint],
) -> Result<(), SfuError> {
    let media = sdp::media_lines(sdp);
    if media.is_empty() {
        return Ok(());
    }
    if !p.permissions.publish {
        return Err(SfuError::PermissionDenied("publish"));
    }
    let allowed = p.permissions.publish_sources;
    if allowed.is_all() {
        return Ok(());
    }
    for (mid, video) in media {
        let published = p.published.keys().any(|m| m.to_string() == mid);
        if published {
            continue;
        }
        let source = hints
            .iter()
            .find(|h| h.mid == mid)
            .map(|h| h.source)
            .or_else(|| p.hints.get(&mid).copied())
            .unwrap_or(TrackSource::Unknown);
        let fits_kind = match source {
            TrackSource::Camera | TrackSource::Screen => video,
            TrackSource::Microphone | TrackSource::ScreenAudio => !video,
            TrackSource::Unknown => false,
        };
        if !allowed.allows(source) || !fits_kind {
            return Err(SfuError::PermissionDenied("publish this source"));
        }
    }
    Ok(())
}

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
        check_sources(p, sdp, &hints)?;
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
        // An offer with new ICE credentials restarts ICE, and our answer has new ones too.
        self.sync_ufrag(PcKey::publisher(id));
        self.drain(PcKey {
            participant: id,
            role: PcRole::Publisher,
        });
        Ok(sdp::complete(&answer.to_sdp_string(), &KeepPts::new()))
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
        p.negotiation.pending_sdp = None;
        if let Err(e) = p.subscriber.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is spent and its new m-lines never came to be: offer them again.
            for sub in p.subscriptions.values_mut() {
                if let (Some(mid), None) = (sub.mid, sub.ssrc)
                    && p.subscriber.rtc.media(mid).is_none()
                {
                    p.sub_mids.remove(&mid);
                    (sub.mid, sub.pt_map, sub.red_pt) = (None, None, None);
                }
            }
            // The tag is the first m-line that came to be.
            if let Some(tag) = p.negotiation.bundle_tag
                && p.subscriber.rtc.media(tag).is_none()
            {
                p.negotiation.bundle_tag = None;
            }
            p.negotiation.dirty = true;
            self.schedule_negotiation(id);
            return Err(SfuError::BadSdp(e.to_string()));
        }
        p.subscriber.remember_remote(sdp);
        // An answer to an ICE restart switches to the new credentials: route them.
        self.sync_ufrag(PcKey::subscriber(id));
        let Some(p) = self.participants.get_mut(&id) else {
            return Ok(());
        };
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
            let audio = media.is_some_and(|m| m.kind().is_audio());
            let (rtx_packets, rtx_age) = self.config.video_rtx_buffer();
            let mut api = p.subscriber.rtc.direct_api();
            sub.ssrc = api.stream_tx_by_mid(mid, None).map(|tx| {
                // Media is never held in str0m's pacer (a first keyframe waited there for
                // 200 ms): the allocator keeps video under the estimate, and audio is
                // reserved out of it first. Padding probes are still paced.
                tx.set_unpaced(true);
                if audio {
                    // Audio is never resent (forward.rs writes it not nackable): an inert
                    // cache (str0m still allocates its 10 empty slots), and no resend-ratio
                    // history, which str0m keeps per packet sent (about 1.5 KiB per audio
                    // subscription).
                    tx.set_rtx_cache(1, Duration::ZERO, None);
                } else {
                    // A deliberate retransmission buffer (str0m keeps 3 s); the ratio cap is
                    // str0m's default: resends beyond 15 % of what the stream sends are dropped.
                    tx.set_rtx_cache(rtx_packets, rtx_age, Some(0.15));
                }
                tx.ssrc()
            });
            if let (Some(_), Some(layer)) = (sub.ssrc, sub.sub.awaiting_keyframe()) {
                ready.push(LayerRef {
                    track: *track,
                    layer,
                });
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
            for at in ready {
                self.request_keyframe(now, at, KeyframeNeed::NewSubscriber);
            }
        }
        self.schedule_negotiation(id);
        Ok(())
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
                // Its RTX for video, its RED (RFC 2198) for audio.
                let pts = [Some(out.pt()), out.resend(), out.red()]
                    .into_iter()
                    .flatten();
                keep.insert(mid.to_string(), pts.map(|pt| *pt).collect());
            }
            sub.mid = Some(mid);
            p.sub_mids.insert(mid, *track_id);
            p.negotiation.bundle_tag.get_or_insert(mid);
        }
        // The first m-line tags the BUNDLE group and its transport (RFC 8843). Stopping it
        // moves the tag, and Chromium then starts a new transport (a new DTLS handshake on a
        // connection that has one) or, when no m-line is left, refuses an offer without a
        // BUNDLE group. So it is never stopped: when its track ends it stays, inactive.
        for mid in p.negotiation.mids_to_stop.drain(..) {
            if Some(mid) == p.negotiation.bundle_tag {
                api.set_direction(mid, Direction::Inactive);
            } else {
                api.stop_media(mid);
            }
        }
        if std::mem::take(&mut p.negotiation.ice_restart) {
            // New credentials; tern is ICE-lite with fixed host candidates, which stay.
            api.ice_restart(true);
        }
        if let Some((offer, pending)) = api.apply() {
            p.negotiation.pending = Some(pending);
            let sdp = sdp::complete(&offer.to_sdp_string(), &keep);
            p.negotiation.pending_sdp = Some(sdp.clone());
            self.notify(id, Notice::SubscriberOffer(sdp));
        }
        self.sync_ufrag(PcKey::subscriber(id));
        self.drain(PcKey {
            participant: id,
            role: PcRole::Subscriber,
        });
        for track in unsendable {
            self.refuse_subscription(id, track);
        }
    }
}
