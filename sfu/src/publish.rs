//! Publishing: a publisher's m-lines become tracks, and stop being tracks.

use std::time::Instant;

use str0m::media::{Direction, MediaKind, Mid, Rids};

use crate::error::SfuError;
use crate::ids::{ParticipantId, TrackId};
use crate::sfu::Sfu;
use crate::signal::{Notice, TrackInfo, TrackKind, TrackSource};
use crate::track::Track;

impl Sfu {
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
                p.ssrc_layers.retain(|_, at| at.track != track);
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

    fn publish_track(&mut self, now: Instant, id: ParticipantId, mid: Mid, kind: MediaKind) {
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
        let mut track = Track::new(info.clone(), room_name.clone(), mid);
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
        // A simulcast m-line names its layers (RFC 8853): they exist before they send.
        if let Some(Rids::Specific(rids)) = p.publisher.rtc.media(mid).map(|m| m.rids_rx()) {
            track.declare_layers(rids, &self.config);
        }
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
        let others: Vec<ParticipantId> = room.others(id).collect();
        self.tap_new_track(now, &room_name, track_id);
        for other in others {
            self.notify(other, Notice::TrackPublished(info.clone()));
            let auto = self
                .participants
                .get(&other)
                .is_some_and(|o| o.auto_subscribe && o.permissions.subscribe);
            if auto {
                self.add_subscription(now, other, track_id);
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
        }
        let notice = Notice::TrackUnpublished(track_id);
        self.tell_others(&track.room, track.info.participant, notice);
        self.end_taps(&track.taps);
        for sub in &track.subscribers {
            self.remove_subscription(*sub, track_id);
            self.schedule_negotiation(*sub);
        }
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
        self.tell_others(&room, id, Notice::TrackMuted { track, muted });
        Ok(())
    }
}

fn receives(direction: Direction) -> bool {
    matches!(direction, Direction::RecvOnly | Direction::SendRecv)
}
