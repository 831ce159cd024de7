//! Rooms, and what the core tells a whole room.

use crate::ids::{ParticipantId, TrackId};
use crate::sfu::Sfu;
use crate::signal::Notice;

/// A room: who is in it and what is published. Participants and tracks themselves live in the
/// core's maps, keyed by id.
#[derive(Default)]
pub(crate) struct Room {
    pub participants: Vec<ParticipantId>,
    pub tracks: Vec<TrackId>,
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

    /// Tell everyone in `room` but `except`.
    pub(crate) fn tell_others(&mut self, room: &str, except: ParticipantId, notice: Notice) {
        for other in self.others_in(room, except) {
            self.notify(other, notice.clone());
        }
    }
}
