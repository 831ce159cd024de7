//! The media path: RTP from a publisher to each subscriber of its track, and keyframe requests
//! back. No allocation per packet (the payload `Arc` is shared) and only hash lookups.

use std::time::Instant;

use str0m::Rtc;
use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};

use crate::ids::{ParticipantId, TrackId};
use crate::keyframe::is_keyframe;
use crate::sfu::{PcKey, Sfu};
use crate::signal::{PcRole, TrackKind};
use crate::throttle::KeyframeNeed;

impl Sfu {
    /// One RTP packet from a publisher, to every subscriber of its track.
    pub(crate) fn forward(&mut self, now: Instant, publisher: ParticipantId, packet: RtpPacket) {
        let Some(p) = self.participants.get_mut(&publisher) else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let track_id = match p.ssrc_tracks.get(&ssrc) {
            Some(t) => *t,
            None => {
                let mid = p
                    .publisher
                    .rtc
                    .direct_api()
                    .stream_rx(&ssrc)
                    .map(|s| s.mid());
                let Some(t) = mid.and_then(|m| p.published.get(&m)).copied() else {
                    self.stats.dropped_unknown_ssrc += 1;
                    return;
                };
                p.ssrc_tracks.insert(ssrc, t);
                t
            }
        };
        let pt = packet.header.payload_type;
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        // The publisher's codec for this payload type, cached per track (it rarely changes).
        let params = match track.codec {
            Some((cached_pt, params)) if cached_pt == pt => params,
            _ => {
                let Some(params) = p
                    .publisher
                    .rtc
                    .codec_config()
                    .find(|c| c.pt() == pt)
                    .copied()
                else {
                    self.stats.forward_errors += 1;
                    return;
                };
                track.set_codec(Some(params));
                params
            }
        };
        track.ssrc = Some(ssrc);
        let is_video = track.info.kind == TrackKind::Video;
        let keyframe = track.video_codec.map(|c| is_keyframe(c, &packet.payload));
        if keyframe == Some(true) {
            track.keyframes.keyframe_arrived();
        }
        let exts = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            ..Default::default()
        };

        let mut subscribers = std::mem::take(&mut self.scratch);
        subscribers.clear();
        subscribers.extend_from_slice(&track.subscribers);
        let mut wants_keyframe = false;
        // Subscribers whose m-line cannot carry the publisher's new codec (allocates only then).
        let mut restart = Vec::new();
        for &sub_id in &subscribers {
            let Some(s) = self.participants.get_mut(&sub_id) else {
                continue;
            };
            let Some(sub) = s.subscriptions.get_mut(&track_id) else {
                continue;
            };
            // Nothing reaches the subscriber before its DTLS is up: a keyframe would be lost.
            let (Some(out_ssrc), true) = (sub.ssrc, s.subscriber.media_ready) else {
                continue;
            };
            let out_pt = match sub.pt_map {
                Some((from, to)) if from == *pt => to,
                // The publisher changed codec: the subscriber must have negotiated the new one.
                _ => match negotiated_pt(&s.subscriber.rtc, sub.mid, params) {
                    Some(out) => {
                        sub.pt_map = Some((*pt, out));
                        out
                    }
                    None => {
                        self.stats.forward_errors += 1;
                        restart.push(sub_id);
                        continue;
                    }
                },
            };
            if sub.waiting_for_keyframe {
                if keyframe == Some(false) {
                    wants_keyframe = true;
                    continue;
                }
                sub.waiting_for_keyframe = false;
            }
            let Some((seq, ts)) = sub
                .rewriter
                .rewrite(*packet.seq_no, packet.header.timestamp)
            else {
                continue;
            };
            let mut direct = s.subscriber.rtc.direct_api();
            let Some(tx) = direct.stream_tx(&out_ssrc) else {
                self.stats.forward_errors += 1;
                continue;
            };
            let write = RtpWrite::new(
                out_pt.into(),
                seq.into(),
                ts,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .nackable(is_video)
            .ext_vals(exts.clone());
            tx.write_rtp(write);
            self.stats.rtp_forwarded += 1;
            self.drain(PcKey {
                participant: sub_id,
                role: PcRole::Subscriber,
            });
        }
        self.scratch = subscribers;
        for sub_id in restart {
            self.restart_subscription(sub_id, track_id);
        }
        if wants_keyframe {
            self.request_keyframe(now, track_id, KeyframeNeed::NewSubscriber);
        }
    }

    /// A subscriber asked for a keyframe on one of its m-lines.
    pub(crate) fn on_keyframe_request(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        mid: Mid,
    ) {
        let track = self
            .participants
            .get(&subscriber)
            .and_then(|s| s.sub_mids.get(&mid))
            .copied();
        if let Some(track) = track {
            self.request_keyframe(now, track, KeyframeNeed::Repair);
        }
    }

    /// Ask the publisher of `track` for a keyframe, unless one is on its way (see
    /// [`crate::KeyframeThrottle`]). Before the publisher's first packet there is nothing to
    /// ask: the subscribers that wait ask again when packets come.
    pub(crate) fn request_keyframe(&mut self, now: Instant, track: TrackId, need: KeyframeNeed) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.ssrc.is_none() {
            return;
        }
        if t.keyframes.request(now, need) {
            self.send_keyframe_request(track);
        } else {
            self.stats.keyframe_requests_coalesced += 1;
        }
    }

    /// Send a PLI to the publisher of `track` now.
    pub(crate) fn send_keyframe_request(&mut self, track: TrackId) {
        let Some(t) = self.tracks.get(&track) else {
            return;
        };
        let (Some(ssrc), publisher) = (t.ssrc, t.info.participant) else {
            return;
        };
        let Some(p) = self.participants.get_mut(&publisher) else {
            return;
        };
        if let Some(rx) = p.publisher.rtc.direct_api().stream_rx(&ssrc) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            self.stats.keyframe_requests_sent += 1;
        }
        self.drain(PcKey {
            participant: publisher,
            role: PcRole::Publisher,
        });
    }
}

/// The subscriber's payload type for `params`, if its m-line `mid` negotiated it.
fn negotiated_pt(rtc: &Rtc, mid: Option<Mid>, params: PayloadParams) -> Option<u8> {
    let out = rtc.codec_config().match_params(params)?.pt();
    let media = rtc.media(mid?)?;
    media.remote_pts().contains(&out).then_some(*out)
}
