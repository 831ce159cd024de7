//! The media path: RTP from a publisher to each subscriber of its track, and keyframe requests
//! back. Three steps: resolve the packet to its track layer, let each subscription decide, and
//! deliver to the sink. No allocation per packet (the payload `Arc` is shared) and only hash
//! lookups.

use std::sync::Arc;
use std::time::Instant;

use str0m::Rtc;
use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};

use crate::ids::{ParticipantId, TrackId};
use crate::keyframe::{VideoCodec, is_keyframe, vp8_keyframe_size};
use crate::red::{self, AudioForm, RedWrapper};
use crate::sfu::{MAX_QUEUED_PER_STREAM, Output, PcKey, Sfu};
use crate::signal::{PcRole, TrackKind};
use crate::subscription::Incoming;
use crate::tap::{TapPacket, tap_codec};
use crate::throttle::KeyframeNeed;
use crate::track::LayerRef;

impl Sfu {
    /// One RTP packet from a publisher, to every subscriber of its track.
    pub(crate) fn forward(&mut self, now: Instant, publisher: ParticipantId, packet: RtpPacket) {
        let Some(at) = self.resolve(publisher, &packet) else {
            return;
        };
        let Some((params, packet_red)) =
            self.track_codec(publisher, at.track, *packet.header.payload_type)
        else {
            self.stats.forward_errors += 1;
            return;
        };
        let Some(track) = self.tracks.get_mut(&at.track) else {
            return;
        };
        let video = track.info.kind == TrackKind::Video;
        let keyframe = track
            .video_codec
            .is_none_or(|c| is_keyframe(c, &packet.payload));
        if let (Some(voice), Some(level)) = (&mut track.voice, packet.header.ext_vals.audio_level) {
            voice.on_level(now, level.unsigned_abs());
            // Someone started or stopped talking: tell the room now, not at the next look.
            if voice.flipped(now) {
                self.speakers_changed = Some(track.room.clone());
            }
        }
        let vp8 = track.video_codec == Some(VideoCodec::Vp8);
        let layer = &mut track.layers[usize::from(at.layer)];
        layer.ssrc = Some(packet.header.ssrc);
        let resumed = layer.on_packet(now, packet.payload.len(), video && keyframe);
        if video && keyframe && vp8 {
            layer.size = vp8_keyframe_size(&packet.payload).or(layer.size);
        }
        if resumed && video {
            // A layer (re)appeared: subscribers may want it, starting with this very packet.
            self.retarget_track(now, at.track);
        }
        let Some(track) = self.tracks.get(&at.track) else {
            return;
        };
        let incoming = Incoming {
            layer: at.layer,
            keyframe,
            seq: *packet.seq_no,
            timestamp: packet.header.timestamp,
            arrival: packet.timestamp,
            clock_rate: params.spec().clock_rate.get(),
            vp8: vp8
                .then(|| Vp8Descriptor::parse(&packet.payload).ok())
                .flatten(),
        };
        let exts = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            ..Default::default()
        };

        // A RED packet's primary, unwrapped once for every tap and subscriber without RED.
        let mut unwrapped: Option<Option<Arc<[u8]>>> = None;
        // Taps first: they need no connection, and the track is at hand.
        if !track.taps.is_empty()
            && let Some(codec) = tap_codec(track.info.kind, track.video_codec)
        {
            for tap_id in &track.taps {
                let Some(tap) = self.taps.get_mut(tap_id) else {
                    continue;
                };
                let Some(out) = tap.sub.decide(&incoming) else {
                    continue;
                };
                let payload = if packet_red {
                    // Unwrapped once per packet, for every tap (and later every subscriber).
                    let primary = unwrapped
                        .get_or_insert_with(|| red::primary(&packet.payload).map(Arc::from));
                    match primary {
                        Some(p) => p.clone(),
                        None => continue,
                    }
                } else {
                    packet.payload.clone()
                };
                let packet = TapPacket {
                    track: at.track,
                    codec,
                    clock_rate: incoming.clock_rate,
                    seq: out.seq,
                    timestamp: out.timestamp,
                    marker: packet.header.marker,
                    keyframe: video && keyframe,
                    payload,
                    arrival: packet.timestamp,
                };
                self.outputs.push_back(Output::Tap(*tap_id, packet));
            }
        }
        let mut subscribers = std::mem::take(&mut self.scratch);
        subscribers.clear();
        subscribers.extend_from_slice(&track.subscribers);
        // The publisher's payload type of the codec (for RED audio, Opus's, not RED's).
        let in_pt = *params.pt();
        let mut wants_keyframe = false;
        // Subscribers whose m-line cannot carry the publisher's new codec (allocates only then).
        let mut restart = Vec::new();
        for &sub_id in &subscribers {
            let Some(s) = self.participants.get_mut(&sub_id) else {
                continue;
            };
            let Some(down) = s.subscriptions.get_mut(&at.track) else {
                continue;
            };
            // Nothing reaches the subscriber before its DTLS is up: a keyframe would be lost.
            let (Some(out_ssrc), true) = (down.ssrc, s.subscriber.media_ready) else {
                continue;
            };
            let out_pt = match down.pt_map {
                Some((from, to)) if from == in_pt => to,
                // The publisher changed codec: the subscriber must have negotiated the new one.
                _ => match negotiated_pt(&s.subscriber.rtc, down.mid, params) {
                    Some(out) => {
                        down.pt_map = Some((in_pt, out));
                        out
                    }
                    None => {
                        self.stats.forward_errors += 1;
                        restart.push(sub_id);
                        continue;
                    }
                },
            };
            let Some(out) = down.sub.decide(&incoming) else {
                wants_keyframe |= down.sub.awaiting_keyframe() == Some(at.layer);
                continue;
            };
            let (out_pt, payload) = if video {
                (out_pt, packet.payload.clone())
            } else {
                let red_pt = *down
                    .red_pt
                    .get_or_insert_with(|| negotiated_red(&s.subscriber.rtc, params));
                let audio = AudioOut {
                    packet_red,
                    in_opus_pt: *params.pt(),
                    out_opus_pt: out_pt,
                    out_red_pt: red_pt,
                };
                match audio.payload(&packet, &mut down.red, &mut unwrapped) {
                    Some(out) => out,
                    None => {
                        self.stats.forward_errors += 1;
                        continue;
                    }
                }
            };
            let mut direct = s.subscriber.rtc.direct_api();
            let Some(tx) = direct.stream_tx(&out_ssrc) else {
                self.stats.forward_errors += 1;
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt.into(),
                out.seq.into(),
                out.timestamp,
                packet.timestamp,
                payload,
            )
            .marker(packet.header.marker)
            .nackable(video)
            .ext_vals(exts.clone());
            if let Some(patch) = out.vp8 {
                write = write.vp8_patch(patch);
            }
            tx.write_rtp(write);
            self.stats.rtp_forwarded += 1;
            if down.queued.push(s.subscriber.releases) >= MAX_QUEUED_PER_STREAM {
                self.release_now(now, sub_id);
            } else {
                self.queue_poll(now, sub_id);
            }
        }
        self.scratch = subscribers;
        if let Some(room) = self.speakers_changed.take() {
            self.update_room_speakers(now, &room);
        }
        for sub_id in restart {
            self.restart_subscription(now, sub_id, at.track);
        }
        if wants_keyframe {
            self.request_keyframe(now, at, KeyframeNeed::NewSubscriber);
        }
    }

    /// The track layer a publisher's packet belongs to, from its SSRC: a hash lookup once the
    /// SSRC is known, str0m's stream (its mid and rid) on its first packet.
    fn resolve(&mut self, publisher: ParticipantId, packet: &RtpPacket) -> Option<LayerRef> {
        let p = self.participants.get_mut(&publisher)?;
        let ssrc = packet.header.ssrc;
        if let Some(at) = p.ssrc_layers.get(&ssrc) {
            return Some(*at);
        }
        let stream = p
            .publisher
            .rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| (s.mid(), s.rid(), s.rtx()));
        let found = stream.and_then(|(mid, rid, rtx)| {
            let track_id = *p.published.get(&mid)?;
            let track = self.tracks.get_mut(&track_id)?;
            let layer = track.layer_index(rid, &self.config)?;
            track.layers[usize::from(layer)].repair_ssrc = rtx;
            Some(LayerRef {
                track: track_id,
                layer,
            })
        });
        let Some(at) = found else {
            self.stats.dropped_unknown_ssrc += 1;
            return None;
        };
        p.ssrc_layers.insert(ssrc, at);
        Some(at)
    }

    /// The publisher's codec for payload type `pt` on `track`, and whether `pt` is that codec in
    /// RED (RFC 2198); cached on the track (it rarely changes).
    fn track_codec(
        &mut self,
        publisher: ParticipantId,
        track: TrackId,
        pt: u8,
    ) -> Option<(PayloadParams, bool)> {
        let t = self.tracks.get_mut(&track)?;
        match t.codec {
            Some((cached, params)) if *cached == pt => Some((params, false)),
            Some((_, params)) if params.red().is_some_and(|red| *red == pt) => Some((params, true)),
            _ => {
                let p = self.participants.get(&publisher)?;
                let config = p.publisher.rtc.codec_config();
                let found = config.find(|c| *c.pt() == pt).map(|c| (*c, false));
                let (params, red) = found.or_else(|| {
                    config
                        .find(|c| c.red().is_some_and(|red| *red == pt))
                        .map(|c| (*c, true))
                })?;
                t.set_codec(Some(params));
                Some((params, red))
            }
        }
    }

    /// A subscriber asked for a keyframe on one of its m-lines: ask the layer it receives.
    pub(crate) fn on_keyframe_request(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        mid: Mid,
    ) {
        let Some(p) = self.participants.get(&subscriber) else {
            return;
        };
        let Some(&track) = p.sub_mids.get(&mid) else {
            return;
        };
        let layer = p
            .subscriptions
            .get(&track)
            .and_then(|d| d.sub.selector.current());
        if let Some(layer) = layer {
            self.request_keyframe(now, LayerRef { track, layer }, KeyframeNeed::Repair);
        }
    }

    /// Ask the publisher for a keyframe on one layer, unless one is on its way (see
    /// [`crate::KeyframeThrottle`]). Before the layer's first packet there is nothing to ask:
    /// the subscribers that wait ask again when packets come.
    pub(crate) fn request_keyframe(&mut self, now: Instant, at: LayerRef, need: KeyframeNeed) {
        let Some(layer) = self.layer_mut(at) else {
            return;
        };
        if layer.ssrc.is_none() {
            return;
        }
        if layer.keyframes.request(now, need) {
            self.send_keyframe_request(at);
        } else {
            self.stats.keyframe_requests_coalesced += 1;
        }
    }

    /// Send a PLI for one layer to its publisher now.
    pub(crate) fn send_keyframe_request(&mut self, at: LayerRef) {
        let Some(t) = self.tracks.get(&at.track) else {
            return;
        };
        let publisher = t.info.participant;
        let Some(ssrc) = t.layers.get(usize::from(at.layer)).and_then(|l| l.ssrc) else {
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

    fn layer_mut(&mut self, at: LayerRef) -> Option<&mut crate::track::Layer> {
        self.tracks
            .get_mut(&at.track)?
            .layers
            .get_mut(usize::from(at.layer))
    }
}

/// The subscriber's RED payload type for the audio codec `params`, if its connection negotiated
/// RED (str0m keeps RED in a connection's codec only when the answer accepted it).
fn negotiated_red(rtc: &Rtc, params: PayloadParams) -> Option<u8> {
    rtc.codec_config().match_params(params)?.red().map(|pt| *pt)
}

/// One audio packet's way to one subscriber: payload types on both sides, and whether RED.
struct AudioOut {
    packet_red: bool,
    in_opus_pt: u8,
    out_opus_pt: u8,
    out_red_pt: Option<u8>,
}

impl AudioOut {
    /// The payload type and payload to send; `None` for a RED payload that does not parse.
    /// `unwrapped` caches the packet's primary across subscribers.
    fn payload(
        &self,
        packet: &RtpPacket,
        wrapper: &mut RedWrapper,
        unwrapped: &mut Option<Option<Arc<[u8]>>>,
    ) -> Option<(u8, Arc<[u8]>)> {
        let same_numbers = self.in_opus_pt == self.out_opus_pt;
        match (
            AudioForm::of(self.packet_red, self.out_red_pt.is_some()),
            self.out_red_pt,
        ) {
            (AudioForm::AsIs, Some(red)) if same_numbers => Some((red, packet.payload.clone())),
            (AudioForm::AsIs, Some(red)) => {
                let out = red::relabel(&packet.payload, self.in_opus_pt, self.out_opus_pt)?;
                Some((red, out.into()))
            }
            (AudioForm::Unwrap, _) => {
                let primary = unwrapped
                    .get_or_insert_with(|| red::primary(&packet.payload).map(Arc::from))
                    .clone()?;
                Some((self.out_opus_pt, primary))
            }
            (AudioForm::Wrap, Some(red)) => {
                let ts = packet.header.timestamp;
                let out = wrapper.wrap(self.out_opus_pt, &packet.payload, ts);
                Some((red, out.into()))
            }
            _ => Some((self.out_opus_pt, packet.payload.clone())),
        }
    }
}

/// The subscriber's payload type for `params`, if its m-line `mid` negotiated it.
fn negotiated_pt(rtc: &Rtc, mid: Option<Mid>, params: PayloadParams) -> Option<u8> {
    let out = rtc.codec_config().match_params(params)?.pt();
    let media = rtc.media(mid?)?;
    media.remote_pts().contains(&out).then_some(*out)
}

#[cfg(all(test, feature = "testkit"))]
mod tests {
    use std::time::Duration;

    use str0m::media::MediaKind;

    use crate::sfu::{MAX_QUEUED_PER_STREAM, Output};
    use crate::testkit::{Net, STEP, is_media_rtp, vp8_payload};

    /// A burst on one track handed to the core in one batch (a keyframe's packets, read by one
    /// `recvmmsg`) leaves in slices while the batch is still being handled, so no more than
    /// [`MAX_QUEUED_PER_STREAM`] packets ever wait in the subscriber's stream: str0m's send
    /// queue would otherwise keep room for the whole burst for the rest of the call.
    #[test]
    fn a_burst_handed_in_one_batch_leaves_in_slices_that_bound_the_stream_queue() {
        let mut net = Net::new();
        let alice = net.join("room", "alice");
        let bob = net.join("room", "bob");
        let mid = net.publish(alice, &[MediaKind::Video])[0];
        net.run_for(Duration::from_secs(2));
        net.send_rtp(alice, mid, 1, 0, &vp8_payload(true, 0));
        net.run_for(Duration::from_millis(50));

        const BURST: u64 = 40;
        net.capture = Some(Vec::new());
        for seq in 2..2 + BURST {
            net.send_rtp(alice, mid, seq, 3000, &vp8_payload(false, seq as u32));
        }
        net.run_for(STEP);
        // The capture holds the clients' media RTP only; everything else was delivered.
        let burst = net.capture.take().unwrap_or_default();
        assert_eq!(burst.len(), BURST as usize, "the publisher sent the burst");

        let to_bob = net.clients[bob].sub_addr;
        let mut most_waiting = 0;
        for (k, (from, d)) in burst.iter().enumerate() {
            net.sfu.handle_datagram(net.now, *from, d);
            let out = net
                .sfu
                .outputs
                .iter()
                .filter(|o| matches!(o, Output::Transmit(t) if t.destination == to_bob && is_media_rtp(&t.contents)))
                .count();
            most_waiting = most_waiting.max((k + 1).saturating_sub(out));
        }
        assert!(
            most_waiting < usize::from(MAX_QUEUED_PER_STREAM),
            "at most {} of the burst waited before leaving, {most_waiting} did",
            MAX_QUEUED_PER_STREAM - 1
        );
        net.run_for(Duration::from_millis(50));
        let track = net.announced_tracks(bob)[0];
        let received = net.received(bob, track).len() as u64;
        assert!(
            received > BURST,
            "bob received the keyframe and the burst: {received}"
        );
    }
}
