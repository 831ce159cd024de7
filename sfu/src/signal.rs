//! What goes into the core from the control path ([`Command`]), what comes straight back
//! ([`Reply`]), and what the core tells participants later ([`Notice`]).

use crate::ids::{ParticipantId, TrackId};

/// What a participant may do, from its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// May publish tracks.
    pub publish: bool,
    /// May subscribe to tracks.
    pub subscribe: bool,
    /// May send data messages.
    pub publish_data: bool,
    /// The sources it may publish (with `publish`).
    pub publish_sources: SourceSet,
}

impl Permissions {
    /// Everything allowed.
    pub const ALL: Permissions = Permissions {
        publish: true,
        subscribe: true,
        publish_data: true,
        publish_sources: SourceSet::ALL,
    };
}

/// A set of track sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSet(u8);

impl SourceSet {
    /// Every source, `Unknown` included: no restriction.
    pub const ALL: SourceSet = SourceSet(0b1_1111);

    /// Exactly these sources. A restricted set never allows `Unknown`: a publisher must say
    /// what it sends.
    pub fn of(sources: &[TrackSource]) -> Self {
        SourceSet(
            sources
                .iter()
                .filter(|s| **s != TrackSource::Unknown)
                .fold(0, |bits, s| bits | Self::bit(*s)),
        )
    }

    /// Whether `source` is in the set.
    pub fn allows(self, source: TrackSource) -> bool {
        self.0 & Self::bit(source) != 0
    }

    /// Whether this is [`SourceSet::ALL`].
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    fn bit(source: TrackSource) -> u8 {
        match source {
            TrackSource::Camera => 1,
            TrackSource::Microphone => 2,
            TrackSource::Screen => 4,
            TrackSource::ScreenAudio => 8,
            TrackSource::Unknown => 16,
        }
    }
}

/// The kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// Where a track comes from, as the publisher describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrackSource {
    /// A camera.
    Camera,
    /// A microphone.
    Microphone,
    /// A shared screen or window.
    Screen,
    /// The audio of a shared screen.
    ScreenAudio,
    /// Not said.
    #[default]
    Unknown,
}

/// Which of a participant's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PcRole {
    /// The participant offers, the server answers; carries what the participant publishes.
    Publisher,
    /// The server offers, the participant answers; carries what the participant subscribes to.
    Subscriber,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantInfo {
    /// Server-assigned id.
    pub id: ParticipantId,
    /// The identity from the access token (unique in the room).
    pub identity: String,
    /// Display name.
    pub name: String,
}

/// A published track as others see it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    /// Server-assigned id. Also the msid track id on subscriber connections.
    pub id: TrackId,
    /// Who publishes it. Also the msid stream id on subscriber connections.
    pub participant: ParticipantId,
    /// Audio or video.
    pub kind: TrackKind,
    /// Camera, microphone, screen...
    pub source: TrackSource,
    /// Whether the publisher has muted it.
    pub muted: bool,
}

/// A publisher's description of one m-line of its offer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackHint {
    /// The m-line's mid.
    pub mid: String,
    /// What the track is.
    pub source: TrackSource,
}

/// A room as the REST API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomInfo {
    /// The room's name.
    pub name: String,
    /// How many participants are in it.
    pub participants: usize,
    /// How many tracks are published in it.
    pub tracks: usize,
}

/// A participant with its tracks, as the REST API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantDetail {
    /// Who.
    pub info: ParticipantInfo,
    /// What it publishes.
    pub tracks: Vec<TrackInfo>,
    /// Whether its media connections are up.
    pub connected: bool,
}

/// A trickled ICE candidate, as `RTCIceCandidateInit` carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCandidate {
    /// The `candidate:...` attribute; empty for end of candidates.
    pub candidate: String,
    /// The m-line it was gathered for; any m-line of the bundle names the one transport.
    pub sdp_mid: Option<String>,
    /// The index of that m-line.
    pub sdp_m_line_index: Option<u32>,
    /// The ICE ufrag of the generation it belongs to; a stale one is refused.
    pub username_fragment: Option<String>,
}

impl From<&str> for RemoteCandidate {
    /// A bare `candidate:...` line that names no m-line or generation.
    fn from(candidate: &str) -> Self {
        Self {
            candidate: candidate.to_string(),
            ..Self::default()
        }
    }
}

/// A request from the control path to a worker's core.
#[derive(Debug, Clone)]
pub enum Command {
    /// A participant joins a room (the room is created if needed).
    Join {
        /// Server-assigned id.
        participant: ParticipantId,
        /// The room name.
        room: String,
        /// Identity from the token.
        identity: String,
        /// Display name.
        name: String,
        /// Grants from the token.
        permissions: Permissions,
        /// Subscribe to every track in the room, now and later.
        auto_subscribe: bool,
    },
    /// An SDP offer for the participant's publisher connection. Replies [`Reply::Answer`].
    PublisherOffer {
        /// Who.
        participant: ParticipantId,
        /// The offer.
        sdp: String,
        /// What each sending m-line is.
        tracks: Vec<TrackHint>,
    },
    /// The participant's answer to the server's subscriber offer.
    SubscriberAnswer {
        /// Who.
        participant: ParticipantId,
        /// The answer.
        sdp: String,
    },
    /// A trickled ICE candidate from the participant.
    Candidate {
        /// Who.
        participant: ParticipantId,
        /// For which connection.
        target: PcRole,
        /// The candidate and what it names.
        candidate: RemoteCandidate,
    },
    /// Subscribe to tracks.
    Subscribe {
        /// Who.
        participant: ParticipantId,
        /// Which tracks.
        tracks: Vec<TrackId>,
    },
    /// Unsubscribe from tracks.
    Unsubscribe {
        /// Who.
        participant: ParticipantId,
        /// Which tracks.
        tracks: Vec<TrackId>,
    },
    /// How a subscriber shows one video track it receives: the size of its tile, or not at
    /// all (paused). The SFU forwards the smallest layer that covers the size.
    TrackSettings {
        /// Who.
        participant: ParticipantId,
        /// Which of its subscribed tracks.
        track: TrackId,
        /// What it asks for.
        request: crate::LayerRequest,
    },
    /// The publisher muted or unmuted one of its tracks.
    SetMuted {
        /// Who.
        participant: ParticipantId,
        /// Which of its tracks.
        track: TrackId,
        /// Muted or not.
        muted: bool,
    },
    /// The participant leaves (or its signaling connection ended).
    Leave {
        /// Who.
        participant: ParticipantId,
    },
    /// The participant's signaling connection was lost and not resumed in time: it is removed
    /// and the others are told `ConnectionLost`.
    ConnectionLost {
        /// Who.
        participant: ParticipantId,
    },
    /// Restart ICE on the participant's subscriber connection: the next offer carries new ICE
    /// credentials (RFC 8445 section 9). Its publisher connection restarts with its own offer.
    RestartIce {
        /// Who.
        participant: ParticipantId,
    },
    /// The participant resumed its session on a new signaling connection. Replies
    /// [`Reply::Resumed`].
    Resume {
        /// Who.
        participant: ParticipantId,
    },
    /// Tap a track for a recorder or broadcaster. Replies [`Reply::TapAdded`]; its packets come
    /// out as [`crate::Output::Tap`].
    AddTap {
        /// The track.
        track: TrackId,
    },
    /// Ask the tapped track's publisher for a keyframe (the tap's consumer restarted).
    TapKeyframe {
        /// The tap.
        tap: crate::TapId,
    },
    /// End a tap.
    RemoveTap {
        /// The tap.
        tap: crate::TapId,
    },
    /// Tap every track of a room, now and later, for a recorder or broadcaster. Replies
    /// [`Reply::RoomTapped`]; what the holder is told comes out as [`crate::Output::RoomTap`].
    TapRoom {
        /// The room (it must exist).
        room: String,
        /// What participants are told about it.
        label: crate::RoomTapLabel,
    },
    /// Change the state participants see for a room tap.
    SetRoomTapState {
        /// The room tap.
        tap: crate::RoomTapId,
        /// Its new state.
        state: String,
    },
    /// End a room tap and its taps; participants are told its last state.
    UntapRoom {
        /// The room tap.
        tap: crate::RoomTapId,
        /// Its last state.
        state: String,
    },
    /// List the rooms on this worker. Replies [`Reply::Rooms`].
    ListRooms,
    /// List the participants of a room. Replies [`Reply::Participants`].
    ListParticipants {
        /// The room.
        room: String,
    },
    /// Remove a participant by identity (admin). It is told [`Notice::Removed`].
    RemoveParticipant {
        /// The room.
        room: String,
        /// The identity.
        identity: String,
    },
    /// Close a room (admin): every participant is removed.
    CloseRoom {
        /// The room.
        room: String,
    },
    /// Send a data message into a room from the server (REST API). Replies
    /// [`Reply::DataSent`].
    SendData {
        /// The room.
        room: String,
        /// The message (its `to`, when not empty, names the recipients).
        message: crate::DataMessage,
        /// On the reliable channels, or the lossy ones.
        reliable: bool,
    },
    /// Tell every participant the server is shutting down, and remove them all.
    Shutdown,
}

/// The immediate answer to a [`Command`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Done, nothing to return.
    Done,
    /// The participant joined.
    Joined {
        /// Itself.
        participant: ParticipantInfo,
        /// The others already in the room.
        others: Vec<ParticipantInfo>,
        /// The tracks already published in the room.
        tracks: Vec<TrackInfo>,
        /// What taps the room (recordings, broadcasts).
        room_taps: Vec<crate::RoomTapLabel>,
    },
    /// The SDP answer for a publisher offer.
    Answer(String),
    /// The tap started.
    TapAdded(crate::TapId),
    /// The room tap started.
    RoomTapped(crate::RoomTapId),
    /// Rooms on this worker.
    Rooms(Vec<RoomInfo>),
    /// Participants in a room.
    Participants(Vec<ParticipantDetail>),
    /// A data message was written to this many participants.
    DataSent(usize),
    /// A participant resumed its session: the room as it is now, and what of its own it may
    /// have missed.
    Resumed {
        /// Itself.
        participant: ParticipantInfo,
        /// The others in the room.
        others: Vec<ParticipantInfo>,
        /// The others' tracks.
        tracks: Vec<TrackInfo>,
        /// What taps the room (recordings, broadcasts).
        room_taps: Vec<crate::RoomTapLabel>,
        /// Its own tracks, with their publisher mids.
        own_tracks: Vec<(String, TrackInfo)>,
        /// The subscriber offer waiting for its answer, if any: send it again.
        pending_offer: Option<String>,
    },
}

/// The state of one video subscription, as [`Notice::Quality`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    /// The track.
    pub track: TrackId,
    /// The layer forwarded now (0 is the lowest), if any.
    pub layer: Option<u8>,
    /// That layer's rid, for a simulcast track.
    pub rid: Option<String>,
    /// The layer aimed at (the forwarded one changes on its next keyframe); `None`: paused.
    pub target: Option<u8>,
    /// The subscriber's bandwidth holds it below what its tile asks for.
    pub bandwidth_limited: bool,
}

/// Why a participant was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It asked to leave, or its signaling connection closed.
    Left,
    /// Its media connection was lost and did not come back in time.
    ConnectionLost,
    /// An administrator removed it.
    Removed,
    /// The room was closed.
    RoomClosed,
    /// The same identity joined again elsewhere.
    DuplicateIdentity,
    /// The server is shutting down.
    ServerShutdown,
}

/// Something the core tells one participant, outside any request.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Someone joined the room.
    ParticipantJoined(ParticipantInfo),
    /// Someone left the room.
    ParticipantLeft {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A track was published in the room.
    TrackPublished(TrackInfo),
    /// A track was unpublished.
    TrackUnpublished(TrackId),
    /// A track was muted or unmuted.
    TrackMuted {
        /// Which.
        track: TrackId,
        /// Muted or not.
        muted: bool,
    },
    /// The participant's own m-line `mid` became this track.
    LocalTrackPublished {
        /// The publisher connection's mid.
        mid: String,
        /// The track.
        track: TrackInfo,
    },
    /// A new offer for the participant's subscriber connection; answer with
    /// [`Command::SubscriberAnswer`].
    SubscriberOffer(String),
    /// A recording or broadcast of the room started, or its state changed.
    RoomTap(crate::RoomTapLabel),
    /// The participant itself was removed; the signaling session should close.
    Removed(LeaveReason),
    /// Who speaks in the room changed: the active speaker, or the set of those speaking.
    Speakers {
        /// The active speaker: the one speaking now, or the last one who spoke.
        active: Option<ParticipantId>,
        /// Those speaking now, loudest first, with their smoothed level (0 to 1).
        speaking: Vec<(ParticipantId, f32)>,
    },
    /// How the video the participant receives is doing (at most once a second, on change).
    Quality {
        /// Its downlink estimate in bit/s, once there is one.
        estimate: Option<u64>,
        /// Each video it subscribes to.
        tracks: Vec<LayerReport>,
    },
    /// Dynacast: which encodings of one of the participant's own video tracks anyone needs.
    /// The client turns the others off (`RTCRtpSender.setParameters`, `active: false`) and
    /// back on when told.
    SendLayers {
        /// The track.
        track: TrackId,
        /// Its publisher connection m-line.
        mid: String,
        /// Each encoding, lowest first: its rid (`None` for a track sent without simulcast)
        /// and whether to send it.
        layers: Vec<(Option<String>, bool)>,
    },
    /// A subscription could not be set up and was dropped.
    SubscriptionFailed {
        /// The track.
        track: TrackId,
        /// A stable code (`codec_unsupported`).
        code: &'static str,
        /// What happened, for people.
        message: String,
    },
}
