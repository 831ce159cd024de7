//! The control path: commands from signaling and the REST API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::error::SfuError;
use crate::ids::{IdMap, ParticipantId, TrackId};
use crate::participant::{Participant, Pc, SubscriberNegotiation};
use crate::sfu::{Output, PcKey, Sfu};
use crate::signal::{
    Command, LeaveReason, Notice, ParticipantDetail, ParticipantInfo, PcRole, Permissions, Reply,
    RoomInfo, TrackInfo,
};

impl Sfu {
    /// Carry out a command. The reply comes back at once; notices to participants and transmits
    /// come out of [`Sfu::poll_output`].
    pub fn handle_command(&mut self, now: Instant, command: Command) -> Result<Reply, SfuError> {
        let reply = self.dispatch(now, command);
        self.finish_input(now);
        reply
    }

    fn dispatch(&mut self, now: Instant, command: Command) -> Result<Reply, SfuError> {
        match command {
            Command::Join {
                participant,
                room,
                identity,
                name,
                permissions,
                auto_subscribe,
            } => {
                let info = ParticipantInfo {
                    id: participant,
                    identity,
                    name,
                };
                self.join(now, info, room, permissions, auto_subscribe)
            }
            Command::PublisherOffer {
                participant,
                sdp,
                tracks,
            } => self
                .publisher_offer(now, participant, &sdp, tracks)
                .map(Reply::Answer),
            Command::SubscriberAnswer { participant, sdp } => self
                .subscriber_answer(now, participant, &sdp)
                .map(|_| Reply::Done),
            Command::Candidate {
                participant,
                target,
                candidate,
            } => self
                .remote_candidate(participant, target, &candidate)
                .map(|_| Reply::Done),
            Command::Subscribe {
                participant,
                tracks,
            } => self
                .subscribe(now, participant, &tracks)
                .map(|_| Reply::Done),
            Command::Unsubscribe {
                participant,
                tracks,
            } => self.unsubscribe(participant, &tracks).map(|_| Reply::Done),
            Command::TrackSettings {
                participant,
                track,
                request,
            } => self
                .set_layer_request(now, participant, track, request)
                .map(|_| Reply::Done),
            Command::SetMuted {
                participant,
                track,
                muted,
            } => self
                .set_muted(participant, track, muted)
                .map(|_| Reply::Done),
            Command::Leave { participant } => {
                self.participant(participant)?;
                self.remove_participant(now, participant, LeaveReason::Left);
                Ok(Reply::Done)
            }
            Command::ConnectionLost { participant } => {
                self.participant(participant)?;
                self.remove_participant(now, participant, LeaveReason::ConnectionLost);
                Ok(Reply::Done)
            }
            Command::RestartIce { participant } => {
                self.restart_subscriber_ice(participant)?;
                // A client restarts ICE after an outage or a network change.
                self.after_outage(now, participant);
                Ok(Reply::Done)
            }
            Command::Resume { participant } => self.resume(participant),
            Command::AddTap { track } => self.add_tap(now, track).map(Reply::TapAdded),
            Command::TapKeyframe { tap } => self.tap_keyframe(now, tap).map(|_| Reply::Done),
            Command::RemoveTap { tap } => self.remove_tap(tap).map(|_| Reply::Done),
            Command::TapRoom { room, label } => {
                self.tap_room(now, &room, label).map(Reply::RoomTapped)
            }
            Command::SetRoomTapState { tap, state } => {
                self.set_room_tap_state(tap, state).map(|_| Reply::Done)
            }
            Command::UntapRoom { tap, state } => self.untap_room(tap, state).map(|_| Reply::Done),
            Command::ListRooms => Ok(Reply::Rooms(self.list_rooms())),
            Command::ListParticipants { room } => {
                self.list_participants(&room).map(Reply::Participants)
            }
            Command::RemoveParticipant { room, identity } => {
                let id = self
                    .find_identity(&room, &identity)?
                    .ok_or(SfuError::ParticipantNotFound)?;
                self.remove_participant(now, id, LeaveReason::Removed);
                Ok(Reply::Done)
            }
            Command::CloseRoom { room } => {
                let ids = self.room(&room)?.participants.clone();
                self.end_room_taps(&room);
                for id in ids {
                    self.remove_participant(now, id, LeaveReason::RoomClosed);
                }
                self.close_if_empty(&room);
                Ok(Reply::Done)
            }
            Command::SendData {
                room,
                message,
                reliable,
            } => self
                .send_data(&room, &message, reliable)
                .map(Reply::DataSent),
            Command::Shutdown => {
                let rooms: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
                for room in &rooms {
                    self.end_room_taps(room);
                }
                let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
                for id in ids {
                    self.remove_participant(now, id, LeaveReason::ServerShutdown);
                }
                for room in &rooms {
                    self.close_if_empty(room);
                }
                Ok(Reply::Done)
            }
        }
    }

    fn join(
        &mut self,
        now: Instant,
        info: ParticipantInfo,
        room: String,
        permissions: Permissions,
        auto_subscribe: bool,
    ) -> Result<Reply, SfuError> {
        if self.participants.contains_key(&info.id) {
            return Err(SfuError::DuplicateParticipant);
        }
        if let Some(r) = self.rooms.get(room.as_str())
            && r.participants.len() >= self.config.max_participants_per_room
        {
            return Err(SfuError::LimitReached("participants per room"));
        }
        if let Ok(Some(old)) = self.find_identity(&room, &info.identity) {
            self.remove_participant(now, old, LeaveReason::DuplicateIdentity);
        }
        let (pub_rtc, pub_ufrag) = self.new_rtc(now, PcRole::Publisher)?;
        let (sub_rtc, sub_ufrag) = self.new_rtc(now, PcRole::Subscriber)?;
        let id = info.id;
        let room_name: Arc<str> = match self.rooms.get_key_value(room.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(room.as_str()),
        };
        let r = self.rooms.entry(room_name.clone()).or_default();
        let others: Vec<ParticipantId> = r.participants.clone();
        let existing_tracks: Vec<TrackId> = r.tracks.clone();
        r.participants.push(id);
        self.ufrags.insert(
            pub_ufrag.clone(),
            PcKey {
                participant: id,
                role: PcRole::Publisher,
            },
        );
        self.ufrags.insert(
            sub_ufrag.clone(),
            PcKey {
                participant: id,
                role: PcRole::Subscriber,
            },
        );
        self.participants.insert(
            id,
            Participant {
                info: info.clone(),
                room: room_name,
                permissions,
                auto_subscribe,
                publisher: Pc::new(pub_rtc, pub_ufrag, now),
                subscriber: Pc::new(sub_rtc, sub_ufrag, now),
                published: HashMap::new(),
                ssrc_layers: HashMap::new(),
                subscriptions: IdMap::default(),
                sub_mids: HashMap::new(),
                negotiation: SubscriberNegotiation::default(),
                hints: HashMap::new(),
                estimate: None,
                quality: Default::default(),
                data: Default::default(),
                bwe_reset: None,
                stall: Default::default(),
            },
        );
        tracing::info!(participant = %id, identity = %info.identity, room, "joined");
        for other in &others {
            self.notify(*other, Notice::ParticipantJoined(info.clone()));
        }
        let tracks: Vec<TrackInfo> = existing_tracks
            .iter()
            .filter_map(|t| self.tracks.get(t))
            .map(|t| t.info.clone())
            .collect();
        if auto_subscribe && permissions.subscribe {
            for t in &existing_tracks {
                self.add_subscription(now, id, *t);
            }
            self.schedule_negotiation(id);
        }
        let others = others
            .iter()
            .filter_map(|o| self.participants.get(o))
            .map(|p| p.info.clone())
            .collect();
        self.room_occupancy_changed(&room);
        Ok(Reply::Joined {
            participant: info,
            others,
            tracks,
            room_taps: self.room_tap_labels(&room),
        })
    }

    /// Remove a participant: unpublish its tracks, drop its subscriptions, tell the room.
    pub(crate) fn remove_participant(
        &mut self,
        _now: Instant,
        id: ParticipantId,
        reason: LeaveReason,
    ) {
        let Some(mut p) = self.participants.remove(&id) else {
            return;
        };
        tracing::info!(participant = %id, room = %p.room, ?reason, "removed");
        for role in [PcRole::Publisher, PcRole::Subscriber] {
            let pc = p.pc_mut(role);
            pc.rtc.disconnect();
            let (remotes, ufrag) = (std::mem::take(&mut pc.remotes), pc.ufrag.clone());
            for old in std::mem::take(&mut pc.old_ufrags) {
                self.ufrags.remove(&old);
            }
            self.unroute(&remotes, &ufrag);
        }
        for track in p.published.values() {
            self.unpublish_track(*track);
        }
        for track in p.subscriptions.keys() {
            if let Some(t) = self.tracks.get_mut(track) {
                t.subscribers.retain(|s| *s != id);
            }
        }
        let Some(room) = self.rooms.get_mut(&p.room) else {
            return;
        };
        room.participants.retain(|o| *o != id);
        let others = room.participants.clone();
        // A tapped room stays open while empty: its recording waits out a grace period.
        let empty = others.is_empty() && room.taps.is_empty();
        for other in others {
            self.notify(
                other,
                Notice::ParticipantLeft {
                    participant: id,
                    reason,
                },
            );
        }
        if reason != LeaveReason::Left {
            self.notify(id, Notice::Removed(reason));
        }
        if empty {
            self.close_room(&p.room);
        } else {
            self.room_occupancy_changed(&p.room);
        }
    }

    /// Closes `room` if no one is in it and nothing taps it.
    fn close_if_empty(&mut self, room: &str) {
        if let Some((name, r)) = self.rooms.get_key_value(room)
            && r.participants.is_empty()
            && r.taps.is_empty()
        {
            let name = name.clone();
            self.close_room(&name);
        }
    }

    pub(crate) fn notify(&mut self, to: ParticipantId, notice: Notice) {
        self.outputs.push_back(Output::Notice(to, notice));
    }

    pub(crate) fn participant(&self, id: ParticipantId) -> Result<&Participant, SfuError> {
        self.participants
            .get(&id)
            .ok_or(SfuError::ParticipantNotFound)
    }

    fn room(&self, name: &str) -> Result<&crate::room::Room, SfuError> {
        self.rooms
            .get(name)
            .ok_or_else(|| SfuError::RoomNotFound(name.to_string()))
    }

    fn find_identity(&self, room: &str, identity: &str) -> Result<Option<ParticipantId>, SfuError> {
        let r = self.room(room)?;
        Ok(r.participants.iter().copied().find(|id| {
            self.participants
                .get(id)
                .is_some_and(|p| p.info.identity == identity)
        }))
    }

    fn list_rooms(&self) -> Vec<RoomInfo> {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .iter()
            .map(|(name, r)| RoomInfo {
                name: name.to_string(),
                participants: r.participants.len(),
                tracks: r.tracks.len(),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    fn list_participants(&self, room: &str) -> Result<Vec<ParticipantDetail>, SfuError> {
        let r = self.room(room)?;
        Ok(r.participants
            .iter()
            .filter_map(|id| self.participants.get(id))
            .map(|p| ParticipantDetail {
                info: p.info.clone(),
                tracks: p
                    .published
                    .values()
                    .filter_map(|t| self.tracks.get(t))
                    .map(|t| t.info.clone())
                    .collect(),
                connected: p.connected(),
            })
            .collect())
    }
}
