//! One WebSocket signaling session: join, then relay messages between the client and its worker.

use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use tern_sfu::{
    Command, LayerRequest, Notice, ParticipantId, Permissions, RemoteCandidate, Reply, SfuError,
    SourceSet,
};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::AppState;
use crate::auth::{AuthError, random_token};
use crate::protocol::{ClientMessage, PROTOCOL_VERSION, ServerMessage};
use crate::wire::{self, LeaveReason};
use crate::worker::{NOTICE_QUEUE, WorkerHandle};

/// `GET /rtc`: upgrades to a signaling WebSocket with explicit size limits.
pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let limit = state.config.signaling.max_message_bytes;
    // Small buffers: most sockets carry a few small messages, and ones that never join must
    // cost little. They grow, up to the message limit, when a large SDP arrives.
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .on_upgrade(move |socket| session(state, socket))
}

/// Initial read and write buffer of a signaling WebSocket.
const WS_BUFFER: usize = 4096;

/// A joined participant's session: what outlives one socket when it is resumed.
pub(crate) struct Joined {
    pub(crate) id: ParticipantId,
    pub(crate) room: String,
    /// The identity from the token.
    identity: String,
    /// The token's grants: a resume with other grants is a new session.
    pub(crate) grants: crate::auth::Grants,
    /// What a new socket presents to take this session over.
    pub(crate) resume_token: String,
    /// Replies that come later, from tasks (a recording's start probes storage: the session
    /// does not wait for it).
    later: mpsc::Sender<ServerMessage>,
    later_rx: mpsc::Receiver<ServerMessage>,
    /// The token's `record` grant.
    record: bool,
    /// The token's `broadcast` grant.
    broadcast: bool,
    pub(crate) worker: WorkerHandle,
    pub(crate) notices: mpsc::Receiver<Notice>,
}

/// The close code of a client that gives up on a socket it thinks dead and will resume the
/// session on another (a private-use code, RFC 6455 section 7.4.2).
const RESUMABLE_CLOSE: u16 = 4000;

/// How a session's socket ended.
enum Ended {
    /// The server removed the participant (it was told `closing`).
    ByServer,
    /// The participant left (`leave`), or the server is shutting down.
    Left,
    /// The socket dropped or went idle: the session may be resumed.
    Lost,
    /// A new socket resumed the session: it is handed over there.
    TakenOver(tokio::sync::oneshot::Sender<crate::resume::Handoff>),
}

async fn session(state: AppState, mut socket: WebSocket) {
    let _live = state.session_token();
    let join_timeout = Duration::from_secs(state.config.signaling.join_timeout_secs);
    let (admitted, req) =
        match tokio::time::timeout(join_timeout, join_phase(&state, &mut socket)).await {
            Ok(Some(j)) => j,
            Ok(None) => return,
            Err(_) => {
                send(
                    &mut socket,
                    &ServerMessage::error("join_timeout", "no join message in time", None),
                )
                .await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        };
    // Sent outside the join timeout: once admitted, the session is never dropped unseen.
    let Admitted {
        joined,
        msg,
        missed,
    } = admitted;
    send(&mut socket, &with_req(msg, req)).await;
    let (id, worker) = (joined.id, joined.worker.clone());
    let span = tracing::info_span!("participant", room = %joined.room, participant = %id, worker = worker.index);
    async move {
        tracing::info!("session joined");
        // What happened while the session was parked, in order, before anything new.
        for n in missed {
            send(&mut socket, &to_message(n)).await;
        }
        let mut taken =
            state
                .resumable
                .register(&joined.resume_token, &joined.identity, &joined.room);
        let (ended, joined) = relay(&state, &mut socket, joined, &mut taken).await;
        let resumable = state.config.signaling.resume_grace_secs > 0 && !state.is_shutting_down();
        let by_server = matches!(ended, Ended::ByServer);
        match ended {
            Ended::TakenOver(back) => {
                if let Err((joined, _)) = back.send((joined, Vec::new())) {
                    // The new socket gave up meanwhile: nobody holds the session now.
                    crate::resume::end(&state, &joined, true).await;
                }
                let _ = socket.send(Message::Close(None)).await;
                tracing::info!("session taken over by a new socket");
                return;
            }
            Ended::Lost if resumable => {
                crate::resume::park(&state, joined, taken);
                tracing::info!("session parked");
                return;
            }
            Ended::ByServer => state.resumable.forget(&joined.resume_token),
            Ended::Left | Ended::Lost => {
                state.resumable.forget(&joined.resume_token);
                let _ = worker.request(Command::Leave { participant: id }).await;
            }
        }
        // Whoever ended the session, the participant's relay access ends with it.
        if let Some(turn) = &state.turn {
            turn.revoke(&id.to_string());
        }
        let _ = socket.send(Message::Close(None)).await;
        tracing::info!(by_server, "session ended");
    }
    .instrument(span)
    .await;
}

/// Reads messages until a valid `join`; answers others with errors. `None`: the socket closed.
/// The admitted session (its `joined` not sent yet), and the join's `req`.
async fn join_phase(state: &AppState, socket: &mut WebSocket) -> Option<(Admitted, Option<u64>)> {
    loop {
        let text = match socket.recv().await? {
            Ok(Message::Text(t)) => t,
            Err(e) => {
                close_if_too_big(socket, &e).await;
                return None;
            }
            Ok(Message::Close(_)) => return None,
            Ok(Message::Binary(_)) => {
                reply_error(socket, "bad_message", "messages are JSON text", None).await;
                continue;
            }
            Ok(_) => continue,
        };
        let msg = match parse(&text) {
            Ok(m) => m,
            Err((code, message)) => {
                reply_error(socket, code, &message, None).await;
                continue;
            }
        };
        match msg {
            ClientMessage::Join {
                v,
                token,
                room,
                auto_subscribe,
                resume,
                req,
            } => match join(state, v, &token, &room, auto_subscribe, resume.as_deref()).await {
                Ok(admitted) => return Some((admitted, req)),
                Err((code, message)) => {
                    reply_error(socket, code, &message, req).await;
                    if code == "server_shutting_down" {
                        return None;
                    }
                }
            },
            ClientMessage::Ping {} => send(socket, &ServerMessage::Pong).await,
            ClientMessage::Leave {} => return None,
            other => reply_error(socket, "not_joined", "send join first", other.req()).await,
        }
    }
}

type JoinError = (&'static str, String);

async fn join(
    state: &AppState,
    v: u32,
    token: &str,
    room: &str,
    auto_subscribe: bool,
    resume: Option<&str>,
) -> Result<Admitted, JoinError> {
    if v != PROTOCOL_VERSION {
        return Err((
            "unsupported_version",
            format!("this server speaks version {PROTOCOL_VERSION}"),
        ));
    }
    if state.is_shutting_down() {
        return Err(("server_shutting_down", "the server is shutting down".into()));
    }
    validate_room_name(room)?;
    let claims = state
        .auth
        .verify(token, SystemTime::now())
        .map_err(auth_error)?;
    if !claims.grants.join {
        return Err(auth_error(AuthError::NotGranted("join")));
    }
    if claims.room.as_deref() != Some(room) {
        return Err(auth_error(AuthError::WrongRoom(room.to_string())));
    }
    // The session of this resume token, for this identity, room and grants: take it over.
    // Otherwise join anew.
    if let Some(resume) = resume
        && let Some((mut j, reply, mut missed)) =
            crate::resume::resume(state, resume, &claims.sub, room, &claims.grants).await
    {
        // A fresh token: the one presented has been used.
        j.resume_token = random_token(32);
        let (msg, pending_offer) = joined_message(state, &j, reply)?;
        // The offer waiting for an answer goes last, once: any earlier copy may have been lost.
        missed.retain(|n| !matches!(n, Notice::SubscriberOffer(_)));
        missed.extend(pending_offer.map(Notice::SubscriberOffer));
        let mut msg = msg;
        if let ServerMessage::Joined { missed: n, .. } = &mut msg {
            *n = missed.len();
        }
        tracing::info!(participant = %j.id, missed = missed.len(), "session resumed");
        return Ok(Admitted {
            joined: j,
            msg,
            missed,
        });
    }
    let id = state.next_participant_id();
    let worker = state.workers[state.registry.place(room)].clone();
    let (tx, notices) = mpsc::channel(NOTICE_QUEUE);
    let cmd = Command::Join {
        participant: id,
        room: room.to_string(),
        name: claims.name.clone().unwrap_or_else(|| claims.sub.clone()),
        identity: claims.sub.clone(),
        permissions: Permissions {
            publish: claims.grants.publish,
            subscribe: claims.grants.subscribe,
            publish_data: claims.grants.publish_data,
            publish_sources: claims.grants.publish_sources.as_ref().map_or(
                SourceSet::ALL,
                |only| {
                    let sources: Vec<_> = only.iter().map(|s| s.source()).collect();
                    SourceSet::of(&sources)
                },
            ),
        },
        auto_subscribe,
    };
    let reply = worker
        .join(cmd, tx)
        .await
        .map_err(|e| ("internal", e.to_string()))?;
    let reply = reply.map_err(sfu_error)?;
    metrics::counter!("tern_joins_total").increment(1);
    let (later, later_rx) = mpsc::channel(16);
    let joined = Joined {
        id,
        room: room.to_string(),
        identity: claims.sub,
        grants: claims.grants.clone(),
        resume_token: random_token(32),
        later,
        later_rx,
        record: claims.grants.record,
        broadcast: claims.grants.broadcast,
        worker,
        notices,
    };
    let (msg, _) = joined_message(state, &joined, reply)?;
    Ok(Admitted {
        joined,
        msg,
        missed: Vec::new(),
    })
}

/// A session let in: its state, the `joined` to send, and what it missed while parked.
struct Admitted {
    joined: Joined,
    msg: ServerMessage,
    missed: Vec<Notice>,
}

/// The `joined` message for a session, from the worker's `Joined` reply (a new session) or
/// `Resumed` reply; with a resumed session's subscriber offer still waiting for its answer.
fn joined_message(
    state: &AppState,
    j: &Joined,
    reply: Reply,
) -> Result<(ServerMessage, Option<String>), JoinError> {
    // A resumed session's reply is a joined one with its own tracks and pending offer besides.
    let (reply, own, pending_offer, resumed) = match reply {
        Reply::Resumed {
            participant,
            others,
            tracks,
            room_taps,
            own_tracks,
            pending_offer,
        } => {
            let joined = Reply::Joined {
                participant,
                others,
                tracks,
                room_taps,
            };
            (joined, own_tracks, pending_offer, true)
        }
        other => (other, Vec::new(), None, false),
    };
    let Reply::Joined {
        participant,
        others,
        tracks,
        room_taps,
    } = reply
    else {
        return Err(("internal", format!("unexpected reply {reply:?}")));
    };
    let ice_servers = state
        .turn
        .as_ref()
        .map_or_else(Vec::new, |t| t.ice_servers(&j.id.to_string()));
    let msg = ServerMessage::Joined {
        v: PROTOCOL_VERSION,
        room: j.room.clone(),
        participant: participant.into(),
        participants: wire::list(others),
        tracks: wire::list(tracks),
        ice_servers,
        // Those recording or on air now: a stopping one is no longer.
        recordings: room_taps
            .iter()
            .filter(|l| l.kind == tern_sfu::RoomTapKind::Recording)
            .filter(|l| l.state == "starting" || l.state == "active")
            .map(|l| crate::wire_recording::RecordingStatus {
                id: l.id.clone(),
                state: l.state.clone(),
            })
            .collect(),
        broadcasts: room_taps
            .into_iter()
            .filter(|l| l.kind == tern_sfu::RoomTapKind::Broadcast)
            .filter(|l| l.state == "starting" || l.state == "live")
            .map(|l| crate::protocol::BroadcastStatus::new(l.id, l.state))
            .collect(),
        resume_token: j.resume_token.clone(),
        resume_grace_secs: state.config.signaling.resume_grace_secs,
        resumed,
        local_tracks: own
            .into_iter()
            .map(|(mid, track)| crate::protocol::LocalTrack {
                mid,
                track: track.into(),
            })
            .collect(),
        missed: 0,
        req: None,
    };
    Ok((msg, pending_offer))
}

fn validate_room_name(room: &str) -> Result<(), JoinError> {
    let ok = !room.is_empty() && room.len() <= 128 && !room.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err((
            "bad_room",
            "room names are 1 to 128 characters, without control characters".into(),
        ))
    }
}

/// Relays until the session ends. Returns true when the server removed the participant.
async fn relay(
    state: &AppState,
    socket: &mut WebSocket,
    mut j: Joined,
    taken: &mut crate::resume::Takeover,
) -> (Ended, Joined) {
    let sig = &state.config.signaling;
    let idle_timeout = Duration::from_secs(sig.idle_timeout_secs);
    let mut ping = tokio::time::interval(Duration::from_secs(sig.ping_interval_secs.max(1)));
    // Fresh TURN credentials before the last ones stop making allocations.
    let refresh_every = state
        .turn
        .as_ref()
        .map_or(Duration::from_secs(3600), |t| t.refresh_interval());
    let mut refresh =
        tokio::time::interval_at(tokio::time::Instant::now() + refresh_every, refresh_every);
    let mut last_seen = Instant::now();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let msg = match incoming {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        if close_if_too_big(socket, &e).await {
                            return (Ended::Left, j);
                        }
                        return (Ended::Lost, j);
                    }
                    None => return (Ended::Lost, j),
                };
                last_seen = Instant::now();
                match msg {
                    Message::Text(text) => {
                        if !handle_text(state, socket, &j, &text).await {
                            return (Ended::Left, j);
                        }
                    }
                    Message::Binary(_) => reply_error(socket, "bad_message", "messages are JSON text", None).await,
                    // A clean close (a closed tab sends one) leaves at once; a client that gave
                    // up on a socket it thought dead closes with 4000 and may resume.
                    Message::Close(Some(f)) if f.code == RESUMABLE_CLOSE => return (Ended::Lost, j),
                    Message::Close(_) => return (Ended::Left, j),
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            Some(reply) = j.later_rx.recv() => send(socket, &reply).await,
            Some(back) = taken.recv() => return (Ended::TakenOver(back), j),
            notice = j.notices.recv() => match notice {
                Some(Notice::Removed(reason)) => {
                    send(socket, &ServerMessage::Closing { reason: reason.into() }).await;
                    return (Ended::ByServer, j);
                }
                Some(n) => send(socket, &to_message(n)).await,
                None => {
                    // The worker dropped us: we could not keep up, or it stopped.
                    send(socket, &ServerMessage::error("too_slow", "the session fell behind and was removed", None)).await;
                    return (Ended::ByServer, j);
                }
            },
            _ = refresh.tick(), if state.turn.is_some() => {
                if let Some(turn) = &state.turn {
                    let ice_servers = turn.ice_servers(&j.id.to_string());
                    send(socket, &ServerMessage::IceServers { ice_servers }).await;
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > idle_timeout {
                    tracing::info!(participant = %j.id, "signaling idle; closing");
                    return (Ended::Lost, j);
                }
                let _ = socket.send(Message::Ping(Default::default())).await;
            }
            _ = state.shutdown_signal() => {
                // The worker's Shutdown command sends Removed(ServerShutdown); wait for it briefly.
                if let Ok(Some(Notice::Removed(reason))) = tokio::time::timeout(Duration::from_secs(2), async {
                    loop {
                        match j.notices.recv().await {
                            Some(Notice::Removed(r)) => return Some(Notice::Removed(r)),
                            Some(_) => continue,
                            None => return None,
                        }
                    }
                }).await {
                    send(socket, &ServerMessage::Closing { reason: reason.into() }).await;
                    return (Ended::ByServer, j);
                }
                send(socket, &ServerMessage::Closing { reason: LeaveReason::ServerShutdown }).await;
                return (Ended::Left, j);
            }
        }
    }
}

/// The largest tile side `track_settings` accepts, in device pixels.
const MAX_TILE_SIDE: u32 = 16_384;

/// A `track_settings` request: both sides or neither, each 1 to [`MAX_TILE_SIDE`].
fn layer_request(
    paused: bool,
    width: Option<u32>,
    height: Option<u32>,
) -> Result<LayerRequest, &'static str> {
    let size = match (width, height) {
        (None, None) => None,
        (Some(w), Some(h))
            if (1..=MAX_TILE_SIDE).contains(&w) && (1..=MAX_TILE_SIDE).contains(&h) =>
        {
            Some((w, h))
        }
        (Some(_), Some(_)) => return Err("width and height must be 1 to 16384"),
        _ => return Err("width and height go together"),
    };
    Ok(LayerRequest { paused, size })
}

/// Runs a request whose answer comes later (a recording's or broadcast's start probes storage),
/// so the session never waits for it; the answer, or the error, goes out with `req`.
fn answer_later<F>(j: &Joined, req: Option<u64>, work: F)
where
    F: std::future::Future<Output = Result<ServerMessage, crate::api::ApiError>> + Send + 'static,
{
    let later = j.later.clone();
    tokio::spawn(async move {
        let reply = match work.await {
            Ok(m) => m,
            Err(e) => {
                crate::metrics::count_error("signaling", e.code());
                ServerMessage::error(e.code(), e.message(), req)
            }
        };
        let _ = later.send(reply).await;
    });
}

/// Answers a request done at once: `ok`, or the error.
async fn reply_done(
    socket: &mut WebSocket,
    done: Result<(), (&'static str, String)>,
    req: Option<u64>,
) {
    match done {
        Ok(()) => {
            if let Some(req) = req {
                send(socket, &ServerMessage::Ok { req }).await;
            }
        }
        Err((code, message)) => reply_error(socket, code, &message, req).await,
    }
}

/// Recording from signaling needs the token's `record` grant.
fn record_granted(j: &Joined) -> Result<(), (&'static str, String)> {
    granted(j.record, "record")
}

/// A request that needs the grant `name`, which the token has (`has`) or not.
fn granted(has: bool, name: &'static str) -> Result<(), (&'static str, String)> {
    if has {
        Ok(())
    } else {
        let e = AuthError::NotGranted(name);
        Err((e.code(), e.to_string()))
    }
}

/// Stops recording `id` of the participant's room, or every running one.
async fn stop_recordings(
    state: &AppState,
    j: &Joined,
    id: Option<&str>,
) -> Result<(), (&'static str, String)> {
    record_granted(j)?;
    let recorder = crate::recordings::recorder(state).map_err(|e| (e.code(), e.to_string()))?;
    let running = recorder.running_in(&j.room);
    let targets: Vec<String> = match id {
        Some(id) if running.iter().any(|r| r.id == id) => vec![id.to_string()],
        Some(id) => {
            // This room's recording that no longer records; or another room's, or none, which
            // are as unknown here as the REST API says.
            let e = match recorder.get(id).filter(|r| r.room == j.room) {
                Some(r) => {
                    tern_recording::RecorderError::NotRecording(id.to_string(), r.state.as_str())
                }
                None => tern_recording::RecorderError::NotFound(id.to_string()),
            };
            return Err((e.code(), e.to_string()));
        }
        None => running.into_iter().map(|r| r.id).collect(),
    };
    if targets.is_empty() {
        let e = tern_recording::RecorderError::NotRecording(j.room.clone(), "not running");
        return Err((e.code(), format!("room {} is not being recorded", j.room)));
    }
    for id in targets {
        recorder
            .stop(&id)
            .await
            .map_err(|e| (e.code(), e.to_string()))?;
    }
    Ok(())
}

/// One text message from a joined client. Returns false to end the session.
async fn handle_text(state: &AppState, socket: &mut WebSocket, j: &Joined, text: &str) -> bool {
    let msg = match parse(text) {
        Ok(m) => m,
        Err((code, message)) => {
            reply_error(socket, code, &message, None).await;
            return true;
        }
    };
    let req = msg.req();
    let participant = j.id;
    let cmd = match msg {
        ClientMessage::Join { .. } => {
            reply_error(
                socket,
                "already_joined",
                "this session has joined already",
                req,
            )
            .await;
            return true;
        }
        ClientMessage::Ping {} => {
            send(socket, &ServerMessage::Pong).await;
            return true;
        }
        ClientMessage::Leave {} => return false,
        ClientMessage::Offer { sdp, tracks, .. } => Command::PublisherOffer {
            participant,
            sdp,
            tracks: wire::list(tracks),
        },
        ClientMessage::Answer { sdp, .. } => Command::SubscriberAnswer { participant, sdp },
        ClientMessage::Candidate {
            target,
            candidate,
            sdp_mid,
            sdp_m_line_index,
            username_fragment,
            ..
        } => Command::Candidate {
            participant,
            target: target.into(),
            candidate: RemoteCandidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
                username_fragment,
            },
        },
        ClientMessage::Subscribe { tracks, .. } => Command::Subscribe {
            participant,
            tracks,
        },
        ClientMessage::Unsubscribe { tracks, .. } => Command::Unsubscribe {
            participant,
            tracks,
        },
        ClientMessage::TrackSettings {
            track,
            paused,
            width,
            height,
            ..
        } => match layer_request(paused, width, height) {
            Ok(request) => Command::TrackSettings {
                participant,
                track,
                request,
            },
            Err(message) => {
                reply_error(socket, "bad_message", message, req).await;
                return true;
            }
        },
        ClientMessage::Mute { track, muted, .. } => Command::SetMuted {
            participant,
            track,
            muted,
        },
        ClientMessage::RestartIce { .. } => Command::RestartIce { participant },
        ClientMessage::StartRecording {
            per_track, layout, ..
        } => {
            if let Err((code, message)) = record_granted(j) {
                reply_error(socket, code, &message, req).await;
                return true;
            }
            let body = crate::recordings::StartBody {
                layout,
                per_track: Some(per_track),
            };
            let (state, room) = (state.clone(), j.room.clone());
            answer_later(j, req, async move {
                let rec = crate::recordings::start_recording(&state, &room, &body).await?;
                Ok(ServerMessage::Recording {
                    id: rec.id,
                    state: rec.state.as_str().to_string(),
                    req,
                })
            });
            return true;
        }
        ClientMessage::StartBroadcast { layout, .. } => {
            if let Err((code, message)) = granted(j.broadcast, "broadcast") {
                reply_error(socket, code, &message, req).await;
                return true;
            }
            let body = crate::broadcasts::StartBody {
                layout,
                rtmp: Vec::new(),
            };
            let (state, room) = (state.clone(), j.room.clone());
            answer_later(j, req, async move {
                let b = crate::broadcasts::start_broadcast(&state, &room, body).await?;
                Ok(ServerMessage::Broadcast {
                    id: b.id,
                    state: b.state.as_str().to_string(),
                    hls_url: b.hls_url,
                    req,
                })
            });
            return true;
        }
        ClientMessage::StopBroadcast { id, .. } => {
            let stopped = match granted(j.broadcast, "broadcast") {
                Ok(()) => crate::broadcasts::stop_in_room(state, &j.room, id.as_deref()).await,
                Err(e) => Err(e),
            };
            reply_done(socket, stopped, req).await;
            return true;
        }
        ClientMessage::StopRecording { id, .. } => {
            let stopped = stop_recordings(state, j, id.as_deref()).await;
            reply_done(socket, stopped, req).await;
            return true;
        }
    };
    match j.worker.request(cmd).await {
        Ok(Ok(Reply::Answer(sdp))) => send(socket, &ServerMessage::Answer { sdp, req }).await,
        Ok(Ok(_)) => {
            if let Some(req) = req {
                send(socket, &ServerMessage::Ok { req }).await;
            }
        }
        Ok(Err(e)) => {
            let (code, message) = sfu_error(e);
            reply_error(socket, code, &message, req).await;
        }
        Err(e) => {
            reply_error(socket, "internal", &e.to_string(), req).await;
            return false;
        }
    }
    true
}

/// The `type`s a client may send.
const CLIENT_TYPES: [&str; 15] = [
    "join",
    "offer",
    "answer",
    "candidate",
    "subscribe",
    "unsubscribe",
    "track_settings",
    "mute",
    "restart_ice",
    "start_recording",
    "start_broadcast",
    "stop_broadcast",
    "stop_recording",
    "leave",
    "ping",
];

/// Parses a client message, naming what is wrong: `bad_message` or `unknown_type`.
pub fn parse(text: &str) -> Result<ClientMessage, (&'static str, String)> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ("bad_message", e.to_string()))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err((
            "bad_message",
            "a message is a JSON object with a string `type`".into(),
        ));
    };
    if !CLIENT_TYPES.contains(&kind) {
        return Err(("unknown_type", format!("unknown message type {kind:?}")));
    }
    serde_json::from_value(value).map_err(|e| ("bad_message", e.to_string()))
}

/// A room tap's label as participants see it: a `recording` or `broadcast` message.
fn room_tap_message(label: tern_sfu::RoomTapLabel) -> ServerMessage {
    let tern_sfu::RoomTapLabel { kind, id, state } = label;
    match kind {
        tern_sfu::RoomTapKind::Recording => ServerMessage::Recording {
            id,
            state,
            req: None,
        },
        tern_sfu::RoomTapKind::Broadcast => {
            let s = crate::protocol::BroadcastStatus::new(id, state);
            ServerMessage::Broadcast {
                id: s.id,
                state: s.state,
                hls_url: s.hls_url,
                req: None,
            }
        }
    }
}

/// A core notice as a protocol v1 message.
fn to_message(n: Notice) -> ServerMessage {
    match n {
        Notice::ParticipantJoined(participant) => ServerMessage::ParticipantJoined {
            participant: participant.into(),
        },
        Notice::ParticipantLeft {
            participant,
            reason,
        } => ServerMessage::ParticipantLeft {
            participant,
            reason: reason.into(),
        },
        Notice::TrackPublished(track) => ServerMessage::TrackPublished {
            track: track.into(),
        },
        Notice::TrackUnpublished(track) => ServerMessage::TrackUnpublished { track },
        Notice::TrackMuted { track, muted } => ServerMessage::TrackMuted { track, muted },
        Notice::SubscriberOffer(sdp) => ServerMessage::Offer { sdp },
        Notice::LocalTrackPublished { mid, track } => ServerMessage::LocalTrackPublished {
            mid,
            track: track.into(),
        },
        Notice::Removed(reason) => ServerMessage::Closing {
            reason: reason.into(),
        },
        Notice::Quality { estimate, tracks } => ServerMessage::Quality {
            estimate,
            tracks: tracks.into_iter().map(Into::into).collect(),
        },
        Notice::Speakers { active, speaking } => ServerMessage::Speakers {
            active,
            speaking: speaking
                .into_iter()
                .map(|(participant, level)| wire::Speaker {
                    participant,
                    level: (level * 100.0).round() / 100.0,
                })
                .collect(),
        },
        Notice::SendLayers { track, mid, layers } => ServerMessage::SendLayers {
            track,
            mid,
            layers: layers
                .into_iter()
                .map(|(rid, active)| wire::SendLayer { rid, active })
                .collect(),
        },
        Notice::RoomTap(label) => room_tap_message(label),
        Notice::SubscriptionFailed {
            track,
            code,
            message,
        } => {
            tracing::warn!(%track, code, "subscription failed: {message}");
            crate::metrics::count_error("signaling", code);
            ServerMessage::Error {
                code: code.into(),
                message,
                req: None,
                track: Some(track),
            }
        }
    }
}

fn with_req(mut msg: ServerMessage, req: Option<u64>) -> ServerMessage {
    if let ServerMessage::Joined { req: r, .. } = &mut msg {
        *r = req;
    }
    msg
}

fn auth_error(e: AuthError) -> JoinError {
    (e.code(), e.to_string())
}

fn sfu_error(e: SfuError) -> JoinError {
    (e.code(), e.to_string())
}

/// A message over `signaling.max_message_bytes` ends the session with close code 1009 (message
/// too big, RFC 6455 section 7.4.1), as docs/signaling.md promises.
/// Returns whether it was that.
async fn close_if_too_big(socket: &mut WebSocket, e: &axum::Error) -> bool {
    let too_big = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<tungstenite::Error>())
        .is_some_and(|t| matches!(t, tungstenite::Error::Capacity(_)));
    if too_big {
        crate::metrics::count_error("signaling", "message_too_big");
        let frame = CloseFrame {
            code: close_code::SIZE,
            reason: "message too big".into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }
    too_big
}

async fn reply_error(socket: &mut WebSocket, code: &'static str, message: &str, req: Option<u64>) {
    crate::metrics::count_error("signaling", code);
    send(socket, &ServerMessage::error(code, message, req)).await;
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) {
    match serde_json::to_string(msg) {
        Ok(text) => {
            let _ = socket.send(Message::Text(text.into())).await;
        }
        Err(e) => tracing::error!(error = %e, "could not encode a server message"),
    }
}
