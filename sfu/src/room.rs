//! Rooms, and what the core tells a whole room.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::{ParticipantId, TrackId};
use crate::sfu::Sfu;
use crate::signal::Notice;
use crate::speaker::{Speaking, next_active};

/// A room: who is in it and what is published. Participants and tracks themselves live in the
/// core's maps, keyed by id.
#[derive(Default)]
pub(crate) struct Room {
    pub participants: Vec<ParticipantId>,
    pub tracks: Vec<TrackId>,
    /// The active speaker, once someone has spoken.
    pub active_speaker: Option<ParticipantId>,
    /// Who spoke at the last look, as told.
    pub speaking: Vec<ParticipantId>,
    /// Its room taps (recordings, broadcasts); the room stays open while it has any.
    pub taps: Vec<crate::ids::RoomTapId>,
}

impl Room {
    /// Everyone in the room but `except`.
    pub fn others(&self, except: ParticipantId) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants
            .iter()
            .copied()
            .filter(move |p| *p != except)
    }
}

impl Sfu {
    /// Everyone in `room` but `except` (empty when there is no such room).
    pub(crate) fn others_in(&self, room: &str, except: ParticipantId) -> Vec<ParticipantId> {
        self.rooms
            .get(room)
            .map(|r| r.others(except).collect())
            .unwrap_or_default()
    }

    /// Look at who speaks in every room (run from housekeeping).
    pub(crate) fn update_speakers(&mut self, now: Instant) {
        let rooms: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.update_room_speakers(now, &room);
        }
    }

    /// Look at who speaks in `room`, and tell the room when the active speaker or the set of
    /// speakers changed.
    pub(crate) fn update_room_speakers(&mut self, now: Instant, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut speaking: Vec<Speaking<ParticipantId>> = Vec::new();
        // How long the active speaker has been silent: its least silent audio track.
        let mut silent = Duration::MAX;
        let tracks = &mut self.tracks;
        for id in &r.tracks {
            let Some(t) = tracks.get_mut(id) else {
                continue;
            };
            let who = t.info.participant;
            let Some(voice) = t.voice.as_mut() else {
                continue;
            };
            // A track whose packets stopped stops speaking here, not at its next packet.
            voice.flipped(now);
            if Some(who) == r.active_speaker {
                silent = silent.min(voice.silent_for(now));
            }
            if !voice.speaking(now) {
                continue;
            }
            let (level, since) = (voice.level(), voice.speaking_for(now));
            match speaking.iter_mut().find(|(p, _, _)| *p == who) {
                Some((_, l, s)) => (*l, *s) = (l.max(level), (*s).max(since)),
                None => speaking.push((who, level, since)),
            }
        }
        speaking.sort_by(|a, b| b.1.total_cmp(&a.1));
        let active = next_active(r.active_speaker, silent, &speaking);
        let ids: Vec<ParticipantId> = speaking.iter().map(|(p, _, _)| *p).collect();
        let same_set = ids.len() == r.speaking.len() && ids.iter().all(|p| r.speaking.contains(p));
        if active == r.active_speaker && same_set {
            return;
        }
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let speaker_changed = r.active_speaker != active;
        r.active_speaker = active;
        r.speaking = ids;
        let everyone = r.participants.clone();
        let levels: Vec<(ParticipantId, f32)> = speaking.iter().map(|(p, l, _)| (*p, *l)).collect();
        for p in everyone {
            let notice = Notice::Speakers {
                active,
                speaking: levels.clone(),
            };
            self.notify(p, notice);
        }
        if speaker_changed {
            self.room_speaker_changed(room);
        }
    }

    /// Tell everyone in `room` but `except`.
    pub(crate) fn tell_others(&mut self, room: &str, except: ParticipantId, notice: Notice) {
        for other in self.others_in(room, except) {
            self.notify(other, notice.clone());
        }
    }
}
