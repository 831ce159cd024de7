//! Rooms, and what the core tells a whole room.

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

    /// Look at who speaks in every room, and tell the room when the active speaker or the set
    /// of speakers changed (run from housekeeping).
    pub(crate) fn update_speakers(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for (name, room) in self.rooms.iter_mut() {
            let mut speaking: Vec<Speaking<ParticipantId>> = Vec::new();
            for t in room.tracks.iter().filter_map(|t| self.tracks.get(t)) {
                let Some(voice) = t.voice.as_ref().filter(|v| v.speaking(now)) else {
                    continue;
                };
                let who = t.info.participant;
                let (level, since) = (voice.level(), voice.speaking_for(now));
                match speaking.iter_mut().find(|(p, _, _)| *p == who) {
                    Some((_, l, s)) => (*l, *s) = (l.max(level), (*s).max(since)),
                    None => speaking.push((who, level, since)),
                }
            }
            speaking.sort_by(|a, b| b.1.total_cmp(&a.1));
            // How long the active speaker has been silent: its least silent audio track.
            let silent = room
                .tracks
                .iter()
                .filter_map(|t| self.tracks.get(t))
                .filter(|t| Some(t.info.participant) == room.active_speaker)
                .filter_map(|t| t.voice.as_ref().map(|v| v.silent_for(now)))
                .min()
                .unwrap_or(Duration::MAX);
            let active = next_active(room.active_speaker, silent, &speaking);
            let ids: Vec<ParticipantId> = speaking.iter().map(|(p, _, _)| *p).collect();
            let same_set =
                ids.len() == room.speaking.len() && ids.iter().all(|p| room.speaking.contains(p));
            if active != room.active_speaker || !same_set {
                room.active_speaker = active;
                room.speaking = ids;
                let levels: Vec<(ParticipantId, f32)> =
                    speaking.iter().map(|(p, l, _)| (*p, *l)).collect();
                changed.push((name.clone(), active, levels));
            }
        }
        for (room, active, speaking) in changed {
            let everyone = self
                .rooms
                .get(&room)
                .map(|r| r.participants.clone())
                .unwrap_or_default();
            for p in everyone {
                let notice = Notice::Speakers {
                    active,
                    speaking: speaking.clone(),
                };
                self.notify(p, notice);
            }
        }
    }

    /// Tell everyone in `room` but `except`.
    pub(crate) fn tell_others(&mut self, room: &str, except: ParticipantId, notice: Notice) {
        for other in self.others_in(room, except) {
            self.notify(other, notice.clone());
        }
    }
}
