//! The signaling protocol on the WebSocket, version 1. Every message is a JSON object with a
//! `type`. Documented message by message in docs/signaling.md.
//!
//! Every type here, and in [`crate::wire`] which it uses, is the server's own: the SFU core's
//! types are converted at the boundary, so a change in the core cannot change the protocol.

use serde::{Deserialize, Serialize};
use tern_sfu::{ParticipantId, TrackId};

use crate::wire::{self, LeaveReason, Participant, Role, Track, TrackHint};

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: join a room.
    Join {
        /// Protocol version the client speaks.
        v: u32,
        /// The access token (JWT).
        token: String,
        /// The room; must match the token's room.
        room: String,
        /// Subscribe to every track in the room automatically (default true).
        #[serde(default = "yes")]
        auto_subscribe: bool,
        /// The `resume_token` of a session whose socket dropped: take it over (same participant,
        /// tracks and subscriptions) if it is still waiting.
        #[serde(default)]
        resume: Option<String>,
        /// Echoed in the reply or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// An offer for the publisher connection.
    Offer {
        /// SDP.
        sdp: String,
        /// What each sending m-line is.
        #[serde(default)]
        tracks: Vec<TrackHint>,
        /// Echoed in the answer or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// The answer to the server's subscriber offer.
    Answer {
        /// SDP.
        sdp: String,
        /// Echoed in an error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// A trickled ICE candidate: the fields of `RTCIceCandidateInit`, plus `target`.
    Candidate {
        /// Which connection.
        target: Role,
        /// The `candidate:...` attribute; empty for end-of-candidates.
        candidate: String,
        /// The m-line it was gathered for.
        #[serde(default, rename = "sdpMid")]
        sdp_mid: Option<String>,
        /// The index of that m-line.
        #[serde(default, rename = "sdpMLineIndex")]
        sdp_m_line_index: Option<u32>,
        /// The ICE ufrag of the generation it belongs to.
        #[serde(default, rename = "usernameFragment")]
        username_fragment: Option<String>,
        /// Echoed in an error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Subscribe to tracks.
    Subscribe {
        /// Track ids.
        tracks: Vec<TrackId>,
        /// Echoed in an error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Unsubscribe from tracks.
    Unsubscribe {
        /// Track ids.
        tracks: Vec<TrackId>,
        /// Echoed in an error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// How one shows a video track one receives: its tile's size, or not at all.
    TrackSettings {
        /// Track id.
        track: TrackId,
        /// Receive none of it.
        #[serde(default)]
        paused: bool,
        /// The tile's width in device pixels (with `height`).
        #[serde(default)]
        width: Option<u32>,
        /// The tile's height in device pixels (with `width`).
        #[serde(default)]
        height: Option<u32>,
        /// Echoed in the reply or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Mute or unmute one of one's own tracks.
    Mute {
        /// Track id.
        track: TrackId,
        /// Muted or not.
        muted: bool,
        /// Echoed in an error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Start recording the room (needs the `record` grant). Answered with `recording`.
    StartRecording {
        /// Record each track on its own (WebM, no transcoding) instead of the composite.
        #[serde(default)]
        per_track: bool,
        /// The composite's layout: `grid` (the default).
        #[serde(default)]
        layout: Option<String>,
        /// Echoed in the reply or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Stop a recording of the room (needs the `record` grant); without `id`, every running
    /// one. Answered with `ok`.
    StopRecording {
        /// The recording.
        #[serde(default)]
        id: Option<String>,
        /// Echoed in the reply or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Start broadcasting the room live (needs the `broadcast` grant). Answered with
    /// `broadcast`.
    StartBroadcast {
        /// The program's layout: `speaker` (the default) or `grid`.
        #[serde(default)]
        layout: Option<String>,
        /// Echoed in the reply or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Stop a broadcast of the room (needs the `broadcast` grant); without `id`, every running
    /// one. Answered with `ok`.
    StopBroadcast {
        /// The broadcast.
        #[serde(default)]
        id: Option<String>,
        /// Echoed in the reply or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Restart ICE on the subscriber connection: tern's next `offer` has new ICE credentials.
    /// (The publisher connection restarts with the client's own offer.) Answered with `ok`.
    RestartIce {
        /// Echoed in the reply or error.
        #[serde(default)]
        req: Option<u64>,
    },
    /// Leave the room; the server closes the socket.
    Leave {},
    /// Keep-alive; answered with `pong`.
    Ping {},
}

fn yes() -> bool {
    true
}

impl ClientMessage {
    /// The request id, if the message carries one.
    pub fn req(&self) -> Option<u64> {
        match self {
            ClientMessage::Join { req, .. }
            | ClientMessage::Offer { req, .. }
            | ClientMessage::Answer { req, .. }
            | ClientMessage::Candidate { req, .. }
            | ClientMessage::Subscribe { req, .. }
            | ClientMessage::Unsubscribe { req, .. }
            | ClientMessage::TrackSettings { req, .. }
            | ClientMessage::Mute { req, .. }
            | ClientMessage::StartRecording { req, .. }
            | ClientMessage::StopRecording { req, .. }
            | ClientMessage::StartBroadcast { req, .. }
            | ClientMessage::StopBroadcast { req, .. }
            | ClientMessage::RestartIce { req } => *req,
            ClientMessage::Leave {} | ClientMessage::Ping {} => None,
        }
    }
}

/// An ICE server for the client's RTCPeerConnection configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join succeeded.
    Joined {
        /// Protocol version of the server.
        v: u32,
        /// The room.
        room: String,
        /// The participant itself.
        participant: Participant,
        /// Others already in the room.
        participants: Vec<Participant>,
        /// Tracks already published.
        tracks: Vec<Track>,
        /// ICE servers to configure both connections with.
        ice_servers: Vec<IceServer>,
        /// Recordings of the room running now: people must know they are recorded.
        #[serde(default)]
        recordings: Vec<crate::wire_recording::RecordingStatus>,
        /// Broadcasts of the room running now (`starting` or `live`): people must know they are
        /// on air.
        #[serde(default)]
        broadcasts: Vec<BroadcastStatus>,
        /// Presented in a later `join` (`resume`) after the socket drops, within
        /// `resume_grace_secs`, to take this session over.
        resume_token: String,
        /// How long a session whose socket dropped waits to be resumed.
        resume_grace_secs: u64,
        /// True when this `join` resumed an earlier session (its `resume` was accepted).
        resumed: bool,
        /// One's own tracks (a resumed session's; empty otherwise), with their mids.
        local_tracks: Vec<LocalTrack>,
        /// How many messages sent while the session waited follow this one at once (a resumed
        /// session's; 0 otherwise).
        missed: usize,
        /// The join's `req`.
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// The answer to a publisher offer.
    Answer {
        /// SDP.
        sdp: String,
        /// The offer's `req`.
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// An offer for the subscriber connection.
    Offer {
        /// SDP.
        sdp: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: Participant,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A track was published.
    TrackPublished {
        /// The track.
        track: Track,
    },
    /// A track was unpublished.
    TrackUnpublished {
        /// The track.
        track: TrackId,
    },
    /// A track was muted or unmuted.
    TrackMuted {
        /// The track.
        track: TrackId,
        /// Muted or not.
        muted: bool,
    },
    /// Something went wrong with a request, or with a track.
    Error {
        /// Stable machine-readable code.
        code: String,
        /// Human-readable explanation.
        message: String,
        /// The failed request's `req`.
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The track the error is about, when it is about one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track: Option<TrackId>,
    },
    /// The server is ending the session; the socket closes next.
    Closing {
        /// Why.
        reason: LeaveReason,
    },
    /// A request with a `req` succeeded (and has no other reply).
    Ok {
        /// The request's `req`.
        req: u64,
    },
    /// Our own track was published: its id for the m-line we offered.
    LocalTrackPublished {
        /// The publisher connection's mid.
        mid: String,
        /// The track.
        track: Track,
    },
    /// Fresh TURN credentials, sent halfway through the lifetime of the last ones: use them for
    /// both connections (`RTCPeerConnection.setConfiguration`).
    IceServers {
        /// As in `joined`.
        ice_servers: Vec<IceServer>,
    },
    /// Dynacast: which encodings of one's own video track anyone needs; turn the others off
    /// with `RTCRtpSender.setParameters` (`active: false`) and back on when told.
    SendLayers {
        /// The track.
        track: TrackId,
        /// Its publisher connection m-line.
        mid: String,
        /// Every encoding, lowest first.
        layers: Vec<wire::SendLayer>,
    },
    /// Who speaks changed: the active speaker, or the set of those speaking.
    Speakers {
        /// The active speaker (speaking now, or the last who spoke); `null` before anyone has.
        active: Option<ParticipantId>,
        /// Those speaking now, loudest first.
        speaking: Vec<wire::Speaker>,
    },
    /// How the video one receives is doing: at most once a second, when it changed.
    Quality {
        /// One's downlink bandwidth estimate in bit/s; `null` before there is one.
        estimate: Option<u64>,
        /// Each video one subscribes to.
        tracks: Vec<wire::LayerReport>,
    },
    /// A recording of the room started or changed state (`starting`, `active`, then
    /// `stopping` when it no longer records); also the answer to `start_recording`.
    Recording {
        /// The recording.
        id: String,
        /// Its state.
        state: String,
        /// The `start_recording` request it answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// A broadcast of the room started or changed state (`starting`, `live`, then `stopping`
    /// when it no longer goes out).
    Broadcast {
        /// The broadcast.
        id: String,
        /// Its state.
        state: String,
        /// Its master playlist, root-relative.
        hls_url: String,
        /// The `start_broadcast` request it answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Answer to `ping`.
    Pong,
}

/// One of the participant's own tracks, with its publisher m-line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalTrack {
    /// The publisher connection's mid.
    pub mid: String,
    /// The track.
    pub track: Track,
}

/// A broadcast's status as participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastStatus {
    /// `BC_...`.
    pub id: String,
    /// Its state.
    pub state: String,
    /// Its master playlist, root-relative: `/hls/<id>/master.m3u8`.
    pub hls_url: String,
}

impl BroadcastStatus {
    /// The status of broadcast `id` in `state`.
    pub fn new(id: String, state: String) -> Self {
        let hls_url = format!("/hls/{id}/master.m3u8");
        Self { id, state, hls_url }
    }
}

impl ServerMessage {
    /// An error message.
    pub fn error(code: &str, message: impl Into<String>, req: Option<u64>) -> Self {
        ServerMessage::Error {
            code: code.into(),
            message: message.into(),
            req,
            track: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_from_the_documented_json() {
        let join: ClientMessage =
            serde_json::from_str(r#"{"type":"join","v":1,"token":"t","room":"demo"}"#)
                .expect("join");
        assert!(matches!(
            join,
            ClientMessage::Join {
                auto_subscribe: true,
                req: None,
                ..
            }
        ));
        let sub: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","tracks":["TR_3"],"req":7}"#)
                .expect("subscribe");
        assert_eq!(
            sub,
            ClientMessage::Subscribe {
                tracks: vec![TrackId(3)],
                req: Some(7)
            }
        );
        let cand: ClientMessage =
            serde_json::from_str(r#"{"type":"candidate","target":"publisher","candidate":""}"#)
                .expect("cand");
        assert!(matches!(
            cand,
            ClientMessage::Candidate {
                target: Role::Publisher,
                ..
            }
        ));
    }

    #[test]
    fn a_candidate_takes_the_fields_of_rtc_ice_candidate_init() {
        let text = r#"{"type":"candidate","target":"subscriber","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#;
        let ClientMessage::Candidate {
            sdp_mid,
            sdp_m_line_index,
            username_fragment,
            ..
        } = serde_json::from_str(text).expect("candidate")
        else {
            panic!("not a candidate")
        };
        assert_eq!(sdp_mid.as_deref(), Some("0"));
        assert_eq!(sdp_m_line_index, Some(0));
        assert_eq!(username_fragment.as_deref(), Some("abcd"));
    }

    #[test]
    fn unknown_types_and_fields_are_rejected() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"ping","x":1}"#).is_err());
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"mute","track":"PA_1","muted":true}"#)
                .is_err()
        );
    }

    #[test]
    fn server_messages_are_tagged_snake_case() {
        let m = ServerMessage::TrackMuted {
            track: TrackId(2),
            muted: true,
        };
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#"{"type":"track_muted","track":"TR_2","muted":true}"#
        );
    }
}
