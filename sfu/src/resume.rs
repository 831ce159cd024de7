//! Coming back after a network change: ICE restarts (new credentials on a connection, RFC 8445
//! section 9) and the state a resumed signaling session starts from.

use crate::error::SfuError;
use crate::ids::ParticipantId;
use crate::sfu::{PcKey, Sfu};
use crate::signal::{PcRole, Reply, TrackInfo};

/// How many earlier ICE generations of one connection stay routed.
const OLD_UFRAGS: usize = 4;

impl Sfu {
    /// The next subscriber offer restarts ICE.
    pub(crate) fn restart_subscriber_ice(&mut self, id: ParticipantId) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::ParticipantNotFound)?;
        // Nothing negotiated yet: there is no ICE to restart (the first offer brings it).
        if p.negotiation.bundle_tag.is_none() {
            return Ok(());
        }
        p.negotiation.ice_restart = true;
        p.negotiation.dirty = true;
        self.schedule_negotiation(id);
        Ok(())
    }

    /// After an ICE restart the connection has a new local ufrag: STUN checks that name it must
    /// find the connection. Earlier ones stay routed (a few) until the participant goes.
    pub(crate) fn sync_ufrag(&mut self, key: PcKey) {
        let Some(p) = self.participants.get_mut(&key.participant) else {
            return;
        };
        let pc = p.pc_mut(key.role);
        let now = pc.rtc.direct_api().local_ice_credentials().ufrag;
        if now == pc.ufrag {
            return;
        }
        let old = std::mem::replace(&mut pc.ufrag, now.clone());
        pc.old_ufrags.push(old);
        let expired = if pc.old_ufrags.len() > OLD_UFRAGS {
            Some(pc.old_ufrags.remove(0))
        } else {
            None
        };
        if let Some(expired) = expired {
            self.ufrags.remove(&expired);
        }
        self.ufrags.insert(now, key);
    }

    /// The room as the resuming participant finds it, its own tracks, and the subscriber offer
    /// still waiting for its answer (which it may never have received).
    pub(crate) fn resume(&mut self, id: ParticipantId) -> Result<Reply, SfuError> {
        let p = self
            .participants
            .get(&id)
            .ok_or(SfuError::ParticipantNotFound)?;
        let room = p.room.clone();
        let participant = p.info.clone();
        let others = self
            .others_in(&room, id)
            .iter()
            .filter_map(|o| self.participants.get(o))
            .map(|o| o.info.clone())
            .collect();
        let tracks: Vec<TrackInfo> = self
            .rooms
            .get(&room)
            .map(|r| r.tracks.clone())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| self.tracks.get(t))
            .filter(|t| t.info.participant != id)
            .map(|t| t.info.clone())
            .collect();
        let mut own: Vec<(String, TrackInfo)> = p
            .published
            .iter()
            .filter_map(|(mid, t)| Some((mid.to_string(), self.tracks.get(t)?.info.clone())))
            .collect();
        own.sort_by_key(|(_, t)| t.id);
        Ok(Reply::Resumed {
            participant,
            others,
            tracks,
            room_taps: self.room_tap_labels(&room),
            own_tracks: own,
            pending_offer: p.negotiation.pending_sdp.clone(),
        })
    }
}

impl PcKey {
    /// The publisher connection of `participant`.
    pub(crate) fn publisher(participant: ParticipantId) -> Self {
        PcKey {
            participant,
            role: PcRole::Publisher,
        }
    }

    /// The subscriber connection of `participant`.
    pub(crate) fn subscriber(participant: ParticipantId) -> Self {
        PcKey {
            participant,
            role: PcRole::Subscriber,
        }
    }
}
