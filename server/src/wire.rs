//! The server's own types for what goes over the wire: signaling protocol v1 (docs/signaling.md)
//! and the REST API (docs/api.md).
//!
//! The SFU core's types carry no serde: they are converted to and from these at the boundary.
//! Every conversion destructures a core struct without `..` or matches a core enum without a
//! wildcard arm, so a new field or variant in the core stops the build here until someone
//! decides whether, and how, it goes on the wire. The ids keep the core's [`ParticipantId`] and
//! [`TrackId`], whose string forms (`PA_1`, `TR_3`) are part of the protocol.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tern_sfu::{ParticipantId, TrackId};

/// A participant as others see it: `{"id","identity","name"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Server-assigned id.
    pub id: ParticipantId,
    /// The identity from the access token (unique in the room).
    pub identity: String,
    /// Display name.
    pub name: String,
}

/// A published track as others see it: `{"id","participant","kind","source","muted"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// Server-assigned id; also the msid track id on subscriber connections.
    pub id: TrackId,
    /// Who publishes it; also the msid stream id on subscriber connections.
    pub participant: ParticipantId,
    /// `audio` or `video`.
    pub kind: TrackKind,
    /// `camera`, `microphone`, `screen`, `screen_audio` or `unknown`.
    pub source: TrackSource,
    /// Whether the publisher has muted it.
    pub muted: bool,
}

/// Dynacast: one encoding of one's own video track, and whether to send it:
/// `{"rid":"q","active":true}` (`rid` is `null` for a track sent without simulcast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLayer {
    /// The encoding's rid.
    pub rid: Option<String>,
    /// Send it (`RTCRtpEncodingParameters.active`).
    pub active: bool,
}

/// Someone speaking: `{"participant":"PA_1","level":0.42}` (`level` 0 to 1, smoothed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    /// Who.
    pub participant: ParticipantId,
    /// How loud, 0 (silence) to 1 (full scale), rounded to two decimals.
    pub level: f32,
}

/// One received video in a `quality` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    /// The track.
    pub track: TrackId,
    /// The layer forwarded now, 0 the lowest; `null` when none is.
    pub layer: Option<u8>,
    /// That layer's rid, for a simulcast track.
    pub rid: Option<String>,
    /// The layer aimed at; `null` when paused.
    pub target: Option<u8>,
    /// The subscriber's bandwidth holds it below what its tile asks for.
    pub bandwidth_limited: bool,
}

impl From<tern_sfu::LayerReport> for LayerReport {
    fn from(r: tern_sfu::LayerReport) -> Self {
        let tern_sfu::LayerReport {
            track,
            layer,
            rid,
            target,
            bandwidth_limited,
        } = r;
        Self {
            track,
            layer,
            rid,
            target,
            bandwidth_limited,
        }
    }
}

/// The kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
}

/// Where a track comes from, as its publisher says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    /// `camera`.
    Camera,
    /// `microphone`.
    Microphone,
    /// `screen`: a shared screen or window.
    Screen,
    /// `screen_audio`: the audio of a shared screen.
    ScreenAudio,
    /// `unknown`: not said (the default in an `offer`'s `tracks`).
    #[default]
    Unknown,
}

/// One entry of an `offer`'s `tracks`: `{"mid","source"}`, `source` defaulting to `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackHint {
    /// The m-line's mid.
    pub mid: String,
    /// What the track is.
    #[serde(default)]
    pub source: TrackSource,
}

/// Which of a participant's two peer connections: a `candidate`'s `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `publisher`: the participant offers; carries what it publishes.
    Publisher,
    /// `subscriber`: the server offers; carries what the participant receives.
    Subscriber,
}

/// Why a participant left: the `reason` of `participant_left` and `closing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// `left`: it asked to, or its signaling connection closed.
    Left,
    /// `connection_lost`: its media connection was lost and did not come back in time.
    ConnectionLost,
    /// `removed`: an administrator removed it.
    Removed,
    /// `room_closed`: the room was closed.
    RoomClosed,
    /// `duplicate_identity`: the same identity joined again elsewhere.
    DuplicateIdentity,
    /// `server_shutdown`: the server is shutting down.
    ServerShutdown,
}

/// A room in `GET /api/v1/rooms`: `{"name","participants","tracks"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// The room's name.
    pub name: String,
    /// How many participants are in it.
    pub participants: usize,
    /// How many tracks are published in it.
    pub tracks: usize,
}

/// A participant in `GET /api/v1/rooms/{room}/participants`: the fields of a [`Participant`],
/// its `tracks` and `connected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantDetail {
    /// Server-assigned id.
    pub id: ParticipantId,
    /// The identity from the access token.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// What it publishes.
    pub tracks: Vec<Track>,
    /// Whether its media connections are up.
    pub connected: bool,
}

/// The body of `GET /api/v1/rooms`: `{"rooms":[...]}`. It goes through a [`serde_json::Value`],
/// whose objects keep their keys in alphabetical order: that order is part of the API.
pub fn rooms_body(rooms: &[Room]) -> serde_json::Value {
    json!({ "rooms": rooms })
}

/// The body of `GET /api/v1/rooms/{room}/participants`: `{"participants":[...]}`, keys in
/// alphabetical order as in [`rooms_body`].
pub fn participants_body(participants: &[ParticipantDetail]) -> serde_json::Value {
    json!({ "participants": participants })
}

/// Converts a list at the boundary.
pub fn list<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}

impl From<tern_sfu::ParticipantInfo> for Participant {
    fn from(p: tern_sfu::ParticipantInfo) -> Self {
        let tern_sfu::ParticipantInfo { id, identity, name } = p;
        Self { id, identity, name }
    }
}

impl From<tern_sfu::TrackInfo> for Track {
    fn from(t: tern_sfu::TrackInfo) -> Self {
        let tern_sfu::TrackInfo {
            id,
            participant,
            kind,
            source,
            muted,
        } = t;
        Self {
            id,
            participant,
            kind: kind.into(),
            source: source.into(),
            muted,
        }
    }
}

impl From<tern_sfu::TrackKind> for TrackKind {
    fn from(k: tern_sfu::TrackKind) -> Self {
        match k {
            tern_sfu::TrackKind::Audio => TrackKind::Audio,
            tern_sfu::TrackKind::Video => TrackKind::Video,
        }
    }
}

impl From<tern_sfu::TrackSource> for TrackSource {
    fn from(s: tern_sfu::TrackSource) -> Self {
        match s {
            tern_sfu::TrackSource::Camera => TrackSource::Camera,
            tern_sfu::TrackSource::Microphone => TrackSource::Microphone,
            tern_sfu::TrackSource::Screen => TrackSource::Screen,
            tern_sfu::TrackSource::ScreenAudio => TrackSource::ScreenAudio,
            tern_sfu::TrackSource::Unknown => TrackSource::Unknown,
        }
    }
}

impl From<TrackSource> for tern_sfu::TrackSource {
    fn from(s: TrackSource) -> Self {
        match s {
            TrackSource::Camera => tern_sfu::TrackSource::Camera,
            TrackSource::Microphone => tern_sfu::TrackSource::Microphone,
            TrackSource::Screen => tern_sfu::TrackSource::Screen,
            TrackSource::ScreenAudio => tern_sfu::TrackSource::ScreenAudio,
            TrackSource::Unknown => tern_sfu::TrackSource::Unknown,
        }
    }
}

impl From<TrackHint> for tern_sfu::TrackHint {
    fn from(h: TrackHint) -> Self {
        let TrackHint { mid, source } = h;
        Self {
            mid,
            source: source.into(),
        }
    }
}

impl From<Role> for tern_sfu::PcRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Publisher => tern_sfu::PcRole::Publisher,
            Role::Subscriber => tern_sfu::PcRole::Subscriber,
        }
    }
}

impl From<tern_sfu::LeaveReason> for LeaveReason {
    fn from(r: tern_sfu::LeaveReason) -> Self {
        match r {
            tern_sfu::LeaveReason::Left => LeaveReason::Left,
            tern_sfu::LeaveReason::ConnectionLost => LeaveReason::ConnectionLost,
            tern_sfu::LeaveReason::Removed => LeaveReason::Removed,
            tern_sfu::LeaveReason::RoomClosed => LeaveReason::RoomClosed,
            tern_sfu::LeaveReason::DuplicateIdentity => LeaveReason::DuplicateIdentity,
            tern_sfu::LeaveReason::ServerShutdown => LeaveReason::ServerShutdown,
        }
    }
}

impl From<tern_sfu::RoomInfo> for Room {
    fn from(r: tern_sfu::RoomInfo) -> Self {
        let tern_sfu::RoomInfo {
            name,
            participants,
            tracks,
        } = r;
        Self {
            name,
            participants,
            tracks,
        }
    }
}

impl From<tern_sfu::ParticipantDetail> for ParticipantDetail {
    fn from(d: tern_sfu::ParticipantDetail) -> Self {
        let tern_sfu::ParticipantDetail {
            info,
            tracks,
            connected,
        } = d;
        let Participant { id, identity, name } = info.into();
        Self {
            id,
            identity,
            name,
            tracks: list(tracks),
            connected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientMessage, IceServer, ServerMessage};

    fn alice() -> tern_sfu::ParticipantInfo {
        tern_sfu::ParticipantInfo {
            id: ParticipantId(1),
            identity: "alice-3f".into(),
            name: "Alice".into(),
        }
    }

    fn mic() -> tern_sfu::TrackInfo {
        tern_sfu::TrackInfo {
            id: TrackId(3),
            participant: ParticipantId(1),
            kind: tern_sfu::TrackKind::Audio,
            source: tern_sfu::TrackSource::Microphone,
            muted: false,
        }
    }

    #[test]
    fn joined_is_protocol_v1_to_the_byte() {
        let bob = tern_sfu::ParticipantInfo {
            id: ParticipantId(2),
            identity: "bob".into(),
            name: "Bob".into(),
        };
        let msg = ServerMessage::Joined {
            v: 1,
            room: "demo".into(),
            participant: bob.into(),
            participants: list(vec![alice()]),
            tracks: list(vec![mic()]),
            ice_servers: vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
                username: Some("1700000000:PA_2".into()),
                credential: Some("c".into()),
            }],
            recordings: vec![crate::wire_recording::RecordingStatus {
                id: "RC_1".into(),
                state: "active".into(),
            }],
            broadcasts: vec![crate::protocol::BroadcastStatus::new(
                "BC_1".into(),
                "live".into(),
            )],
            resume_token: "r3sum3".into(),
            resume_grace_secs: 15,
            resumed: false,
            local_tracks: vec![],
            missed: 0,
            req: Some(1),
        };
        assert_eq!(
            serde_json::to_string(&msg).expect("json"),
            concat!(
                r#"{"type":"joined","v":1,"room":"demo","#,
                r#""participant":{"id":"PA_2","identity":"bob","name":"Bob"},"#,
                r#""participants":[{"id":"PA_1","identity":"alice-3f","name":"Alice"}],"#,
                r#""tracks":[{"id":"TR_3","participant":"PA_1","kind":"audio","source":"microphone","muted":false}],"#,
                r#""ice_servers":[{"urls":["turn:127.0.0.1:3478?transport=udp"],"username":"1700000000:PA_2","credential":"c"}],"#,
                r#""recordings":[{"id":"RC_1","state":"active"}],"#,
                r#""broadcasts":[{"id":"BC_1","state":"live","hls_url":"/hls/BC_1/master.m3u8"}],"#,
                r#""resume_token":"r3sum3","resume_grace_secs":15,"resumed":false,"local_tracks":[],"missed":0,"#,
                r#""req":1}"#
            )
        );
    }

    #[test]
    fn the_rest_participant_list_is_the_documented_json_to_the_byte() {
        let detail = tern_sfu::ParticipantDetail {
            info: alice(),
            tracks: vec![mic()],
            connected: true,
        };
        let body = participants_body(&list(vec![detail]));
        assert_eq!(
            serde_json::to_string(&body).expect("json"),
            concat!(
                r#"{"participants":[{"connected":true,"id":"PA_1","identity":"alice-3f","name":"Alice","#,
                r#""tracks":[{"id":"TR_3","kind":"audio","muted":false,"participant":"PA_1","source":"microphone"}]}]}"#
            )
        );
        let room = tern_sfu::RoomInfo {
            name: "demo".into(),
            participants: 2,
            tracks: 4,
        };
        assert_eq!(
            serde_json::to_string(&rooms_body(&list(vec![room]))).expect("json"),
            r#"{"rooms":[{"name":"demo","participants":2,"tracks":4}]}"#
        );
    }

    fn json(value: impl Serialize) -> String {
        serde_json::to_string(&value).expect("json")
    }

    #[test]
    fn every_enum_value_has_its_documented_name() {
        let kinds = [tern_sfu::TrackKind::Audio, tern_sfu::TrackKind::Video];
        let kinds: Vec<String> = kinds.map(|k| json(TrackKind::from(k))).into();
        assert_eq!(kinds, [r#""audio""#, r#""video""#]);
        let sources = [
            tern_sfu::TrackSource::Camera,
            tern_sfu::TrackSource::Microphone,
            tern_sfu::TrackSource::Screen,
            tern_sfu::TrackSource::ScreenAudio,
            tern_sfu::TrackSource::Unknown,
        ];
        let sources: Vec<String> = sources.map(|s| json(TrackSource::from(s))).into();
        assert_eq!(
            sources,
            [
                r#""camera""#,
                r#""microphone""#,
                r#""screen""#,
                r#""screen_audio""#,
                r#""unknown""#
            ]
        );
        let reasons = [
            tern_sfu::LeaveReason::Left,
            tern_sfu::LeaveReason::ConnectionLost,
            tern_sfu::LeaveReason::Removed,
            tern_sfu::LeaveReason::RoomClosed,
            tern_sfu::LeaveReason::DuplicateIdentity,
            tern_sfu::LeaveReason::ServerShutdown,
        ];
        let reasons: Vec<String> = reasons.map(|r| json(LeaveReason::from(r))).into();
        assert_eq!(
            reasons,
            [
                r#""left""#,
                r#""connection_lost""#,
                r#""removed""#,
                r#""room_closed""#,
                r#""duplicate_identity""#,
                r#""server_shutdown""#
            ]
        );
    }

    #[test]
    fn an_offer_s_track_hints_reach_the_core() {
        let text = r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"0"},{"mid":"1","source":"screen_audio"}]}"#;
        let ClientMessage::Offer { tracks, .. } = serde_json::from_str(text).expect("offer") else {
            panic!("not an offer")
        };
        let hints: Vec<tern_sfu::TrackHint> = list(tracks);
        assert_eq!(
            hints,
            [
                tern_sfu::TrackHint {
                    mid: "0".into(),
                    source: tern_sfu::TrackSource::Unknown
                },
                tern_sfu::TrackHint {
                    mid: "1".into(),
                    source: tern_sfu::TrackSource::ScreenAudio
                },
            ]
        );
        let role: Role = serde_json::from_str(r#""subscriber""#).expect("role");
        assert_eq!(tern_sfu::PcRole::from(role), tern_sfu::PcRole::Subscriber);
    }
}
