//! Room taps: a recorder's or broadcaster's hold on a whole room. Every track published in the
//! room, now and later, gets a tap of its own ([`RoomTapEvent::TrackTapped`]); the taps end with
//! their tracks ([`crate::Output::TapEnded`]). A tapped room stays open while it is empty, so a
//! recording can wait out a grace period, and everyone in it is told what taps it
//! ([`crate::Notice::RoomTap`]): people must know they are being recorded.

use std::sync::Arc;
use std::time::Instant;

use crate::error::SfuError;
use crate::ids::{ParticipantId, RoomTapId, TapId};
use crate::sfu::{Output, Sfu};
use crate::signal::{Notice, ParticipantInfo, TrackInfo};

/// What holds a room tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomTapKind {
    /// A recording.
    Recording,
    /// A live broadcast.
    Broadcast,
}

/// How participants see a room tap: what it is, its id and state (both the holder's own words,
/// for example `RC_1b2c` and `active`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTapLabel {
    /// Recording or broadcast.
    pub kind: RoomTapKind,
    /// The holder's id for it.
    pub id: String,
    /// The holder's state for it.
    pub state: String,
}

/// What a room tap's holder is told.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomTapEvent {
    /// A track of the room is tapped: each track already published when the room tap starts,
    /// then each one published later. Its packets come out as [`crate::Output::Tap`].
    TrackTapped {
        /// The track's tap.
        tap: TapId,
        /// The track.
        track: TrackInfo,
        /// Who publishes it.
        publisher: ParticipantInfo,
    },
    /// How many participants the room has now (sent at the start and on every change).
    Occupancy(usize),
    /// Who the room's active speaker is now (sent at the start when someone is, and on every
    /// change; `None` once nobody is).
    ActiveSpeaker(Option<ParticipantId>),
    /// The room was closed (by an administrator, or at shutdown): the room tap has ended.
    Closed,
}

/// A room tap as the core keeps it.
pub(crate) struct RoomTap {
    pub room: Arc<str>,
    pub label: RoomTapLabel,
}

impl Sfu {
    /// Starts a room tap on `room`, which must exist.
    pub(crate) fn tap_room(
        &mut self,
        now: Instant,
        room: &str,
        label: RoomTapLabel,
    ) -> Result<RoomTapId, SfuError> {
        let (name, r) = self
            .rooms
            .get_key_value(room)
            .ok_or_else(|| SfuError::RoomNotFound(room.to_string()))?;
        let (name, tracks, occupancy, speaker) = (
            name.clone(),
            r.tracks.clone(),
            r.participants.len(),
            r.active_speaker,
        );
        self.next_track += 1;
        let id = RoomTapId(self.next_track);
        if let Some(r) = self.rooms.get_mut(&name) {
            r.taps.push(id);
        }
        tracing::info!(room_tap = %id, room, holder = %label.id, "room tapped");
        self.room_taps.insert(
            id,
            RoomTap {
                room: name.clone(),
                label: label.clone(),
            },
        );
        self.push_room_tap(id, RoomTapEvent::Occupancy(occupancy));
        if speaker.is_some() {
            self.push_room_tap(id, RoomTapEvent::ActiveSpeaker(speaker));
        }
        for track in tracks {
            self.tap_for_room(now, id, track);
        }
        self.tell_room(&name, Notice::RoomTap(label));
        Ok(id)
    }

    /// Changes the state participants see for a room tap.
    pub(crate) fn set_room_tap_state(
        &mut self,
        id: RoomTapId,
        state: String,
    ) -> Result<(), SfuError> {
        let t = self
            .room_taps
            .get_mut(&id)
            .ok_or_else(|| SfuError::TrackNotFound(id.to_string()))?;
        if t.label.state == state {
            return Ok(());
        }
        t.label.state = state;
        let (room, label) = (t.room.clone(), t.label.clone());
        self.tell_room(&room, Notice::RoomTap(label));
        Ok(())
    }

    /// Ends a room tap and its taps, telling the room its last state. An empty room closes.
    pub(crate) fn untap_room(&mut self, id: RoomTapId, state: String) -> Result<(), SfuError> {
        let mut t = self
            .room_taps
            .remove(&id)
            .ok_or_else(|| SfuError::TrackNotFound(id.to_string()))?;
        let owned: Vec<TapId> = self
            .taps
            .iter()
            .filter(|(_, tap)| tap.owner == Some(id))
            .map(|(tap, _)| *tap)
            .collect();
        for tap in owned {
            if self.remove_tap(tap).is_ok() {
                self.outputs.push_back(Output::TapEnded(tap));
            }
        }
        t.label.state = state;
        self.tell_room(&t.room, Notice::RoomTap(t.label));
        let Some(r) = self.rooms.get_mut(&t.room) else {
            return Ok(());
        };
        r.taps.retain(|x| *x != id);
        if r.participants.is_empty() && r.taps.is_empty() {
            self.close_room(&t.room);
        }
        Ok(())
    }

    /// A new track in a tapped room: each room tap taps it.
    pub(crate) fn tap_new_track(&mut self, now: Instant, room: &str, track: crate::TrackId) {
        let taps = match self.rooms.get(room) {
            Some(r) if !r.taps.is_empty() => r.taps.clone(),
            _ => return,
        };
        for id in taps {
            self.tap_for_room(now, id, track);
        }
    }

    /// The room's participant count changed: its room taps are told.
    pub(crate) fn room_occupancy_changed(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let (taps, n) = (r.taps.clone(), r.participants.len());
        for id in taps {
            self.push_room_tap(id, RoomTapEvent::Occupancy(n));
        }
    }

    /// The room's active speaker changed: its room taps are told.
    pub(crate) fn room_speaker_changed(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let (taps, active) = (r.taps.clone(), r.active_speaker);
        for id in taps {
            self.push_room_tap(id, RoomTapEvent::ActiveSpeaker(active));
        }
    }

    /// The room is closing (administrator, shutdown): its room taps end.
    pub(crate) fn end_room_taps(&mut self, room: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        for id in std::mem::take(&mut r.taps) {
            self.room_taps.remove(&id);
            self.push_room_tap(id, RoomTapEvent::Closed);
        }
    }

    /// What every room tap of `room` says, for a joining participant.
    pub(crate) fn room_tap_labels(&self, room: &str) -> Vec<RoomTapLabel> {
        self.rooms
            .get(room)
            .map(|r| {
                r.taps
                    .iter()
                    .filter_map(|id| self.room_taps.get(id))
                    .map(|t| t.label.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes an empty room and says so.
    pub(crate) fn close_room(&mut self, room: &Arc<str>) {
        self.rooms.remove(room);
        self.outputs.push_back(Output::RoomClosed(room.to_string()));
    }

    fn tap_for_room(&mut self, now: Instant, id: RoomTapId, track: crate::TrackId) {
        let Ok(tap) = self.add_tap(now, track) else {
            return;
        };
        if let Some(t) = self.taps.get_mut(&tap) {
            t.owner = Some(id);
        }
        let Some(info) = self.tracks.get(&track).map(|t| t.info.clone()) else {
            return;
        };
        let Some(publisher) = self
            .participants
            .get(&info.participant)
            .map(|p| p.info.clone())
        else {
            return;
        };
        self.push_room_tap(
            id,
            RoomTapEvent::TrackTapped {
                tap,
                track: info,
                publisher,
            },
        );
    }

    fn push_room_tap(&mut self, id: RoomTapId, event: RoomTapEvent) {
        self.outputs.push_back(Output::RoomTap(id, event));
    }

    fn tell_room(&mut self, room: &str, notice: Notice) {
        let everyone: Vec<ParticipantId> = self
            .rooms
            .get(room)
            .map(|r| r.participants.clone())
            .unwrap_or_default();
        for p in everyone {
            self.notify(p, notice.clone());
        }
    }
}
