//! Recordings: REST routes (admin token) and the start/stop used by signaling (the `record`
//! grant), and the glue between the recorder and the SFU worker of the room: a room tap whose
//! events and packets go to the recording, and a task carrying the recording's requests
//! (keyframes, state for the room, untap) back to the worker. Documented in docs/recording.md.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tern_recording::{
    Download, Mode, Recorder, RecorderError, Recording, StartRequest, TapControl, TapLink,
    tap_channel,
};
use tern_sfu::{Command, Reply, RoomTapId, RoomTapKind, RoomTapLabel, SfuError};
use tokio::sync::mpsc;

use crate::AppState;
use crate::api::{ApiError, admin, worker_of};
use crate::auth::random_token;
use crate::wire_recording;
use crate::worker::WorkerHandle;

/// The recording routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rooms/{room}/recordings", post(start).get(list))
        .route("/api/v1/recordings/{id}", get(get_one))
        .route("/api/v1/recordings/{id}/stop", post(stop))
        .route("/api/v1/recordings/{id}/download", get(download))
}

/// The optional body of a start request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The composite's layout: `grid` (the default).
    #[serde(default)]
    pub layout: Option<String>,
    /// Record each track on its own, without transcoding, instead of the composite.
    #[serde(default)]
    pub per_track: Option<bool>,
}

impl StartBody {
    fn request(&self) -> StartRequest {
        StartRequest {
            mode: if self.per_track.unwrap_or(false) {
                Mode::PerTrack
            } else {
                Mode::Composite
            },
            layout: self.layout.clone().unwrap_or_else(|| "grid".into()),
        }
    }
}

impl From<RecorderError> for ApiError {
    fn from(e: RecorderError) -> Self {
        ApiError::new(status_of(e.code()), e.code(), e.to_string())
    }
}

/// The HTTP status of a recording's or broadcast's error code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "already_recording" | "not_recording" | "already_broadcasting" | "not_broadcasting" => {
            StatusCode::CONFLICT
        }
        "recording_not_found" | "broadcast_not_found" | "file_not_found" | "target_not_found" => {
            StatusCode::NOT_FOUND
        }
        "limit_reached" => StatusCode::TOO_MANY_REQUESTS,
        "bad_request" => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The recorder, or why there is none (storage misconfigured).
pub fn recorder(state: &AppState) -> Result<&Recorder, RecorderError> {
    match &state.recorder {
        Ok(r) => Ok(r),
        Err(why) => Err(RecorderError::Storage(why.clone())),
    }
}

/// Starts recording `room`: checks, taps the room on its worker, runs the recording. It runs
/// as a task of its own, so a caller that goes away halfway cannot leave the room tapped.
pub async fn start_recording(
    state: &AppState,
    room: &str,
    body: &StartBody,
) -> Result<Recording, ApiError> {
    let (state, room, request) = (state.clone(), room.to_string(), body.request());
    tokio::spawn(async move { start_now(&state, &room, request).await })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

async fn start_now(
    state: &AppState,
    room: &str,
    request: StartRequest,
) -> Result<Recording, ApiError> {
    let recorder = recorder(state)?;
    let id = new_id("RC");
    worker_of(state, room)?;
    let rec = recorder.prepare(id.clone(), room, request).await?;
    let (worker, tap, link) = tap_room(state, room, RoomTapKind::Recording, id).await?;
    let (control, requests) = mpsc::unbounded_channel();
    match recorder.begin(rec, link, control) {
        Ok(rec) => {
            tokio::spawn(carry_requests(worker, tap, requests));
            Ok(rec)
        }
        Err(e) => {
            untap_failed(&worker, tap).await;
            Err(e.into())
        }
    }
}

/// A new recording or broadcast id: `prefix` and a random URL-safe tail.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_token(9).replace(['-', '_'], "x"))
}

/// Taps every track of `room` on its worker for the recording or broadcast `id`: the worker,
/// the room tap, and the link its events and media come through.
pub async fn tap_room(
    state: &AppState,
    room: &str,
    kind: RoomTapKind,
    id: String,
) -> Result<(WorkerHandle, RoomTapId, TapLink), ApiError> {
    let worker = state.workers[worker_of(state, room)?].clone();
    let (sink, link) = tap_channel();
    let label = RoomTapLabel {
        kind,
        id,
        state: "starting".into(),
    };
    let cmd = Command::TapRoom {
        room: room.to_string(),
        label,
    };
    match worker.tap_room(cmd, sink).await {
        Ok(Ok(Reply::RoomTapped(tap))) => Ok((worker, tap, link)),
        Ok(Ok(other)) => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// Ends a room tap whose holder did not start.
pub async fn untap_failed(worker: &WorkerHandle, tap: RoomTapId) {
    let cmd = Command::UntapRoom {
        tap,
        state: "failed".into(),
    };
    let _ = worker.request(cmd).await;
}

/// Carries a recording's or broadcast's requests to the worker of its room until it untaps.
pub async fn carry_requests(
    worker: WorkerHandle,
    tap: RoomTapId,
    mut requests: mpsc::UnboundedReceiver<TapControl>,
) {
    while let Some(r) = requests.recv().await {
        let cmd = match r {
            TapControl::Keyframe(t) => Command::TapKeyframe { tap: t },
            TapControl::State(s) => Command::SetRoomTapState {
                tap,
                state: s.into(),
            },
            TapControl::Untap(s) => {
                let cmd = Command::UntapRoom {
                    tap,
                    state: s.into(),
                };
                let _ = worker.request(cmd).await;
                return;
            }
        };
        if let Ok(Err(e)) = worker.request(cmd).await
            && !matches!(e, SfuError::TrackNotFound(_))
        {
            tracing::debug!(room_tap = %tap, error = %e, "recording request refused");
        }
    }
    // The holder ended without saying so (its task failed): do not leave the room tapped.
    untap_failed(&worker, tap).await;
}

/// A recording as the API returns it, with download URLs.
pub async fn view(state: &AppState, rec: &Recording) -> wire_recording::RecordingView {
    let mut urls = Vec::new();
    for f in &rec.files {
        let url = if !f.uploaded {
            None
        } else {
            match recorder(state) {
                Ok(r) => match r.download(rec, Some(&f.stream)).await {
                    Ok(Download::Url(u)) => Some(u),
                    Ok(Download::File(_)) => Some(format!(
                        "/api/v1/recordings/{}/download?stream={}",
                        rec.id, f.stream
                    )),
                    Err(_) => None,
                },
                Err(_) => None,
            }
        };
        urls.push(url);
    }
    wire_recording::RecordingView::new(rec, urls)
}

async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    admin(&state, &headers, Some(&room))?;
    let body: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?
    };
    let rec = start_recording(&state, &room, &body).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &rec).await)).into_response())
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    admin(&state, &headers, Some(&room))?;
    let recs = recorder(&state)?.list(&room).await?;
    let mut views = Vec::new();
    for r in &recs {
        views.push(view(&state, r).await);
    }
    Ok(Json(serde_json::json!({ "recordings": views })).into_response())
}

/// Finds a recording and checks the token may see its room.
async fn authorized(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Recording, ApiError> {
    admin(state, headers, None)?;
    let rec = recorder(state)?.find(id).await?;
    admin(state, headers, Some(&rec.room))?;
    Ok(rec)
}

async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = authorized(&state, &headers, &id).await?;
    Ok(Json(view(&state, &rec).await).into_response())
}

async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorized(&state, &headers, &id).await?;
    let rec = recorder(&state)?.stop(&id).await?;
    Ok(Json(view(&state, &rec).await).into_response())
}

/// `?stream=`: which file (default: the composite, or the only one).
#[derive(Debug, Deserialize)]
struct DownloadQuery {
    stream: Option<String>,
}

async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let rec = authorized(&state, &headers, &id).await?;
    match recorder(&state)?
        .download(&rec, q.stream.as_deref())
        .await?
    {
        Download::Url(url) => Ok((StatusCode::FOUND, [(header::LOCATION, url)]).into_response()),
        Download::File(path) => {
            let file = tokio::fs::File::open(&path).await.map_err(|e| {
                ApiError::new(StatusCode::NOT_FOUND, "file_not_found", e.to_string())
            })?;
            let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let kind = match path.extension().and_then(|e| e.to_str()) {
                Some("mp4") => "video/mp4",
                Some("webm") => "video/webm",
                Some("mkv") => "video/x-matroska",
                _ => "application/octet-stream",
            };
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            let disposition = format!("attachment; filename=\"{}-{name}\"", rec.id);
            Ok((
                [
                    (header::CONTENT_TYPE, kind.to_string()),
                    (header::CONTENT_LENGTH, len.to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response())
        }
    }
}
