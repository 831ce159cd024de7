//! A participant: its two peer connections and its subscriptions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::Mid;
use str0m::rtp::Ssrc;

use crate::ids::{ParticipantId, TrackId};
use crate::rewrite::RtpRewriter;
use crate::signal::{ParticipantInfo, PcRole, Permissions, TrackSource};

/// One str0m `Rtc` (one peer connection) and what routes datagrams to it.
pub(crate) struct Pc {
    pub rtc: Rtc,
    /// The server's ICE ufrag for this connection (the STUN USERNAME's first half).
    pub ufrag: String,
    /// Remote addresses that reached this connection; each is a key in the route map.
    pub remotes: Vec<SocketAddr>,
    /// When str0m next wants `handle_input(Timeout)`.
    pub next_timeout: Instant,
    /// A timer entry for `next_timeout` is in the core's heap.
    pub timer_armed: bool,
    /// Since when ICE has been disconnected, if it is.
    pub disconnected_since: Option<Instant>,
    /// ICE connected at least once.
    pub ever_connected: bool,
}

impl Pc {
    pub fn new(rtc: Rtc, ufrag: String, now: Instant) -> Self {
        Self {
            rtc,
            ufrag,
            remotes: Vec::new(),
            next_timeout: now,
            timer_armed: false,
            disconnected_since: None,
            ever_connected: false,
        }
    }
}

/// One track delivered to this participant.
pub(crate) struct Subscription {
    /// Its m-line on the subscriber connection, once added to an offer.
    pub mid: Option<Mid>,
    /// The outgoing SSRC, once the answer is accepted.
    pub ssrc: Option<Ssrc>,
    /// Outgoing numbering.
    pub rewriter: RtpRewriter,
    /// Video waits for a keyframe before the first packet is forwarded.
    pub waiting_for_keyframe: bool,
    /// Cached payload type mapping: publisher pt -> subscriber pt.
    pub pt_map: Option<(u8, u8)>,
}

/// The offer/answer state of the subscriber connection.
#[derive(Default)]
pub(crate) struct SubscriberNegotiation {
    /// The offer we sent and wait an answer for.
    pub pending: Option<SdpPendingOffer>,
    /// m-lines to stop in the next offer (unsubscribed tracks).
    pub mids_to_stop: Vec<Mid>,
    /// Something changed and a new offer is needed.
    pub dirty: bool,
}

/// One peer in a room.
pub(crate) struct Participant {
    pub info: ParticipantInfo,
    pub room: Arc<str>,
    pub permissions: Permissions,
    pub auto_subscribe: bool,
    pub publisher: Pc,
    pub subscriber: Pc,
    /// Publisher mids to the tracks they carry.
    pub published: HashMap<Mid, TrackId>,
    /// Incoming SSRCs to tracks: filled on the first packet of each SSRC, then a hash lookup.
    pub ssrc_tracks: HashMap<Ssrc, TrackId>,
    /// What it subscribes to.
    pub subscriptions: HashMap<TrackId, Subscription>,
    /// Subscriber mids back to tracks, for keyframe requests.
    pub sub_mids: HashMap<Mid, TrackId>,
    pub negotiation: SubscriberNegotiation,
    /// What the publisher said each of its mids carries.
    pub hints: HashMap<String, TrackSource>,
}

impl Participant {
    pub fn id(&self) -> ParticipantId {
        self.info.id
    }

    pub fn pc_mut(&mut self, role: PcRole) -> &mut Pc {
        match role {
            PcRole::Publisher => &mut self.publisher,
            PcRole::Subscriber => &mut self.subscriber,
        }
    }

    /// Media is up: every connection that was ever used is connected now.
    pub fn connected(&self) -> bool {
        [&self.publisher, &self.subscriber]
            .iter()
            .any(|pc| pc.ever_connected)
            && [&self.publisher, &self.subscriber]
                .iter()
                .all(|pc| pc.disconnected_since.is_none())
    }
}
