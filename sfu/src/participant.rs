//! A participant: its two peer connections and its subscriptions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::Mid;
use str0m::rtp::Ssrc;

use crate::error::SfuError;
use crate::ids::{IdMap, ParticipantId, TrackId};
use crate::quality::QualityReported;
use crate::red::RedWrapper;
use crate::sfu::Remote;
use crate::signal::{ParticipantInfo, PcRole, Permissions, RemoteCandidate, TrackSource};
use crate::subscription::Subscription;
use crate::track::LayerRef;

/// One str0m `Rtc` (one peer connection) and what routes datagrams to it.
pub(crate) struct Pc {
    pub rtc: Rtc,
    /// The server's ICE ufrag for this connection (the STUN USERNAME's first half).
    pub ufrag: String,
    /// Ufrags of ICE generations before an ICE restart: still routed until the participant
    /// goes, so checks in flight during the restart find their connection.
    pub old_ufrags: Vec<String>,
    /// Remote addresses that reached this connection; each is a key in the route map.
    pub remotes: Vec<Remote>,
    /// When str0m next wants `handle_input(Timeout)`.
    pub next_timeout: Instant,
    /// A timer entry for `next_timeout` is in the core's heap.
    pub timer_armed: bool,
    /// Since when ICE has been disconnected, if it is.
    pub disconnected_since: Option<Instant>,
    /// ICE connected at least once.
    pub ever_connected: bool,
    /// DTLS is up and SRTP keys exist: RTP written now reaches the peer.
    pub media_ready: bool,
    /// The `a=ice-ufrag` of the last remote description.
    pub remote_ufrag: Option<String>,
    /// The `a=mid`s of the last remote description, in m-line order.
    pub remote_mids: Vec<String>,
    /// RTP was written to it that it has not been polled for yet (see `Sfu::queue_poll`).
    pub poll_queued: bool,
    /// How many times str0m was handed a timeout or input (each runs its timeout step, which
    /// releases the packets written before it; see `QueuedPackets`).
    pub releases: u32,
}

impl Pc {
    pub fn new(rtc: Rtc, ufrag: String, now: Instant) -> Self {
        Self {
            rtc,
            ufrag,
            old_ufrags: Vec::new(),
            remotes: Vec::new(),
            next_timeout: now,
            timer_armed: false,
            disconnected_since: None,
            ever_connected: false,
            media_ready: false,
            remote_ufrag: None,
            remote_mids: Vec::new(),
            poll_queued: false,
            releases: 0,
        }
    }

    /// Keeps what trickled candidates are checked against from a remote description.
    pub fn remember_remote(&mut self, sdp: &str) {
        (self.remote_ufrag, self.remote_mids) = crate::sdp::remote_transport(sdp);
    }

    /// A trickled candidate must name this connection's current ICE generation and one of its
    /// m-lines, when it names them at all (RFC 8838 section 4.1, RFC 8839 section 5.1).
    /// An empty `sdpMid` or `usernameFragment` names nothing and is taken as absent.
    pub fn check_candidate_target(&self, c: &RemoteCandidate) -> Result<(), SfuError> {
        let (ufrag, sdp_mid) = (named(&c.username_fragment), named(&c.sdp_mid));
        if let (Some(theirs), Some(ours)) = (ufrag, self.remote_ufrag.as_deref())
            && theirs != ours
        {
            return Err(SfuError::BadCandidate(format!(
                "usernameFragment {theirs:?} is not the current ICE ufrag of this connection"
            )));
        }
        // Before the first remote description there is nothing to check the m-line against.
        if self.remote_mids.is_empty() {
            return Ok(());
        }
        if let Some(mid) = sdp_mid
            && !self.remote_mids.iter().any(|m| m == mid)
        {
            return Err(SfuError::BadCandidate(format!(
                "sdpMid {mid:?} names no m-line of this connection"
            )));
        }
        if let Some(index) = c.sdp_m_line_index {
            let at = self.remote_mids.get(index as usize);
            let fits = at.is_some_and(|m| sdp_mid.is_none_or(|mid| mid == m));
            if !fits {
                return Err(SfuError::BadCandidate(format!(
                    "sdpMLineIndex {index} names no m-line of this connection, or another mid"
                )));
            }
        }
        Ok(())
    }
}

/// One subscription delivered on the subscriber connection: its m-line, and the subscription.
pub(crate) struct Downlink {
    /// Its m-line on the subscriber connection, once added to an offer.
    pub mid: Option<Mid>,
    /// The outgoing SSRC, once the answer is accepted.
    pub ssrc: Option<Ssrc>,
    /// Cached payload type mapping: publisher pt -> subscriber pt.
    pub pt_map: Option<(u8, u8)>,
    /// Audio: the RED payload type its m-line negotiated, if any (once looked up).
    pub red_pt: Option<Option<u8>>,
    /// Audio: what wrapping plain audio in RED keeps.
    pub red: RedWrapper,
    /// Layer choice, numbering and keyframe state.
    pub sub: Subscription,
    /// Packets written to its stream since the connection's packets were last released.
    pub queued: QueuedPackets,
}

/// How many packets wait in one outgoing stream's send queue, counted per release of the
/// connection's queued packets (`Pc::releases`), so that no reset walks the subscriptions.
#[derive(Default)]
pub(crate) struct QueuedPackets {
    release: u32,
    count: u16,
}

impl QueuedPackets {
    /// One more packet written while the connection is at `release`; returns how many wait.
    pub fn push(&mut self, release: u32) -> u16 {
        if self.release != release {
            self.release = release;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }
}

/// The offer/answer state of the subscriber connection.
#[derive(Default)]
pub(crate) struct SubscriberNegotiation {
    /// The offer we sent and wait an answer for.
    pub pending: Option<SdpPendingOffer>,
    /// m-lines to stop in the next offer (unsubscribed tracks).
    pub mids_to_stop: Vec<Mid>,
    /// The first m-line ever offered: it tags the BUNDLE group, and is never stopped (see
    /// `Sfu::negotiate`).
    pub bundle_tag: Option<Mid>,
    /// Something changed and a new offer is needed.
    pub dirty: bool,
    /// The participant asked for an ICE restart: the next offer has new credentials.
    pub ice_restart: bool,
    /// The last offer sent, until it is answered: sent again when the participant resumes its
    /// session (the first may never have reached it).
    pub pending_sdp: Option<String>,
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
    /// Incoming SSRCs to the track layers they carry: filled on the first packet of each SSRC,
    /// then a hash lookup.
    pub ssrc_layers: HashMap<Ssrc, LayerRef>,
    /// What it subscribes to.
    pub subscriptions: IdMap<TrackId, Downlink>,
    /// Subscriber mids back to tracks, for keyframe requests.
    pub sub_mids: HashMap<Mid, TrackId>,
    pub negotiation: SubscriberNegotiation,
    /// What the publisher said each of its mids carries.
    pub hints: HashMap<String, TrackSource>,
    /// The subscriber connection's bandwidth estimate in bit/s, once there is one.
    pub estimate: Option<u64>,
    /// What it was last told of its video's quality.
    pub quality: QualityReported,
    /// Its data channels.
    pub data: crate::data_channel::DataChannels,
    /// When its subscriber estimate was last reset after an outage.
    pub bwe_reset: Option<Instant>,
    /// Its subscriber estimate against what tern sends it (restarts a locked estimator).
    pub stall: crate::stall::StallWatch,
}

/// The text of an optional field, unless absent or empty.
fn named(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
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

    /// The track layers whose keyframe this participant's negotiated subscriptions wait for.
    pub fn awaiting_keyframes(&self) -> Vec<LayerRef> {
        self.subscriptions
            .iter()
            .filter(|(_, d)| d.ssrc.is_some())
            .filter_map(|(track, d)| {
                let layer = d.sub.awaiting_keyframe()?;
                Some(LayerRef {
                    track: *track,
                    layer,
                })
            })
            .collect()
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
