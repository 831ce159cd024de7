//! The REST API for server-side integration, under `/api/v1`, authenticated with an admin token
//! (`Authorization: Bearer <jwt>` whose grants include `admin`). Documented in docs/api.md.
//! Bodies are [`crate::wire`] types, converted from the core's replies.

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tern_sfu::{Command, Reply, SfuError};

use crate::AppState;
use crate::auth::{AuthError, Claims};
use crate::wire;

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rooms", get(list_rooms))
        .route("/api/v1/rooms/{room}", delete(close_room))
        .route("/api/v1/rooms/{room}/participants", get(list_participants))
        .route(
            "/api/v1/rooms/{room}/participants/{identity}",
            delete(remove_participant),
        )
        .route("/api/v1/rooms/{room}/data", post(send_data))
}

/// The body of `POST /api/v1/rooms/{room}/data`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DataBody {
    /// Text to send.
    #[serde(default)]
    payload: Option<String>,
    /// Bytes to send, base64 (standard alphabet, padded), delivered as a binary message.
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    /// Participant ids; absent or empty: everyone in the room.
    #[serde(default)]
    to: Vec<tern_sfu::ParticipantId>,
    #[serde(default = "yes")]
    reliable: bool,
}

fn yes() -> bool {
    true
}

/// Sends a data message into a room, from the server (`from: null`).
async fn send_data(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    use base64::Engine;
    use tern_sfu::data_message::{MAX_RECIPIENTS, MAX_TOPIC_BYTES};
    admin(&state, &headers, Some(&room))?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let body: DataBody = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    let payload = match (body.payload, body.payload_base64) {
        (Some(text), None) => tern_sfu::Payload::Text(text),
        (None, Some(b64)) => tern_sfu::Payload::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(format!("payload_base64: {e}")))?,
        ),
        _ => return Err(bad("exactly one of payload and payload_base64".into())),
    };
    if body
        .topic
        .as_ref()
        .is_some_and(|t| t.len() > MAX_TOPIC_BYTES)
    {
        return Err(bad(format!("topic longer than {MAX_TOPIC_BYTES} bytes")));
    }
    if body.to.len() > MAX_RECIPIENTS {
        return Err(bad(format!("more than {MAX_RECIPIENTS} recipients")));
    }
    // The payload alone over the limit: refused here (the worker checks the whole message).
    if payload.len() > state.config.sfu.data_max_message_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "data_too_large",
            format!(
                "a message may have at most {} bytes",
                state.config.sfu.data_max_message_bytes
            ),
        ));
    }
    let message = tern_sfu::DataMessage {
        topic: body.topic,
        to: body.to,
        payload,
        id: None,
    };
    let w = worker_of(&state, &room)?;
    let cmd = Command::SendData {
        room,
        message,
        reliable: body.reliable,
    };
    match ask(&state, w, cmd).await {
        Ok(Reply::DataSent(n)) => Ok(Json(json!({ "recipients": n })).into_response()),
        Ok(_) => Err(ApiError::internal("unexpected reply")),
        // The message as delivered (header included) is over the limit participants have.
        Err(e) if e.code() == "data_too_large" => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            e.code(),
            e.message(),
        )),
        Err(e) => Err(e),
    }
}

/// An API error: an HTTP status and a JSON body `{"code", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// Its stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Its message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A 500 `internal` error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::metrics::count_error("api", self.code);
        (
            self.status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match e {
            AuthError::NotGranted(_) | AuthError::WrongRoom(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<SfuError> for ApiError {
    fn from(e: SfuError) -> Self {
        let status = match e {
            SfuError::RoomNotFound(_)
            | SfuError::ParticipantNotFound
            | SfuError::TrackNotFound(_) => StatusCode::NOT_FOUND,
            _ if e.fault() == tern_sfu::Fault::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// Checks the bearer token: valid, admin, and (if it names a room) for `room`.
pub fn admin(
    state: &AppState,
    headers: &HeaderMap,
    room: Option<&str>,
) -> Result<Claims, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(AuthError::Missing)?;
    let claims = state.auth.verify(token, SystemTime::now())?;
    if !claims.grants.admin {
        return Err(AuthError::NotGranted("admin").into());
    }
    if let (Some(scope), Some(room)) = (claims.room.as_deref(), room)
        && scope != room
    {
        return Err(AuthError::WrongRoom(room.to_string()).into());
    }
    Ok(claims)
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 section 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn ask(state: &AppState, worker: usize, cmd: Command) -> Result<Reply, ApiError> {
    let w = state.workers.get(worker).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no such worker",
        )
    })?;
    let reply = w
        .request(cmd)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))?;
    Ok(reply?)
}

/// The worker that holds `room`, or `room_not_found`.
pub fn worker_of(state: &AppState, room: &str) -> Result<usize, ApiError> {
    state
        .registry
        .find(room)
        .ok_or_else(|| SfuError::RoomNotFound(room.to_string()).into())
}

async fn list_rooms(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = admin(&state, &headers, None)?;
    let mut rooms = Vec::new();
    for w in 0..state.workers.len() {
        if let Reply::Rooms(r) = ask(&state, w, Command::ListRooms).await? {
            rooms.extend(r.into_iter().map(wire::Room::from));
        }
    }
    if let Some(scope) = claims.room {
        rooms.retain(|r| r.name == scope);
    }
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(wire::rooms_body(&rooms)).into_response())
}

async fn list_participants(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    admin(&state, &headers, Some(&room))?;
    let w = worker_of(&state, &room)?;
    match ask(&state, w, Command::ListParticipants { room }).await? {
        Reply::Participants(p) => {
            let participants: Vec<wire::ParticipantDetail> = wire::list(p);
            Ok(Json(wire::participants_body(&participants)).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "unexpected reply",
        )),
    }
}

async fn remove_participant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((room, identity)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin(&state, &headers, Some(&room))?;
    let w = worker_of(&state, &room)?;
    ask(&state, w, Command::RemoveParticipant { room, identity }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn close_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&state, &headers, Some(&room))?;
    let w = worker_of(&state, &room)?;
    ask(&state, w, Command::CloseRoom { room }).await?;
    Ok(StatusCode::NO_CONTENT)
}
