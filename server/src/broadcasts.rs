//! Broadcasts: REST routes (admin token), the public HLS files and watch page, and the glue
//! between the broadcaster and the SFU worker of the room (the same room taps and request
//! carrier as recordings). Documented in docs/broadcast.md.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tern_broadcast::{Broadcast, BroadcastError, BroadcastRequest, Broadcaster, HlsFile};
use tern_sfu::RoomTapKind;
use tokio::sync::mpsc;

use crate::AppState;
use crate::api::{ApiError, admin, worker_of};
use crate::recordings::{carry_requests, new_id, status_of, tap_room, untap_failed};

/// The broadcast routes: REST, HLS and the watch page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rooms/{room}/broadcasts", post(start).get(list))
        .route("/api/v1/broadcasts/{id}", get(get_one))
        .route("/api/v1/broadcasts/{id}/stop", post(stop))
        .route("/api/v1/broadcasts/{id}/rtmp", post(add_rtmp))
        .route(
            "/api/v1/broadcasts/{id}/rtmp/{target}",
            axum::routing::delete(remove_rtmp),
        )
        .route("/hls/{id}/{*path}", get(hls).options(preflight))
        .route("/watch/{room}", get(watch_page))
        .route("/watch/{room}/broadcast", get(watch_info))
        .route("/hls.light.min.js", get(hls_js))
}

/// The optional body of a start request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The program's layout: `speaker` (the default) or `grid`.
    #[serde(default)]
    pub layout: Option<String>,
    /// RTMP URLs to push the program to (`rtmp://host/app/key`).
    #[serde(default)]
    pub rtmp: Vec<String>,
}

impl From<BroadcastError> for ApiError {
    fn from(e: BroadcastError) -> Self {
        ApiError::new(status_of(e.code()), e.code(), e.to_string())
    }
}

/// The broadcaster, or why there is none (storage misconfigured).
pub fn broadcaster(state: &AppState) -> Result<&Broadcaster, BroadcastError> {
    match &state.broadcaster {
        Ok(b) => Ok(b),
        Err(why) => Err(BroadcastError::Storage(why.clone())),
    }
}

/// Starts broadcasting `room`: checks, taps the room on its worker, runs the broadcast, as a
/// task of its own so a caller that goes away cannot leave the room tapped.
pub async fn start_broadcast(
    state: &AppState,
    room: &str,
    body: StartBody,
) -> Result<Broadcast, ApiError> {
    let request = BroadcastRequest {
        layout: body.layout,
        rtmp: body.rtmp,
    };
    let (state, room) = (state.clone(), room.to_string());
    tokio::spawn(async move { start_now(&state, &room, request).await })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

async fn start_now(
    state: &AppState,
    room: &str,
    request: BroadcastRequest,
) -> Result<Broadcast, ApiError> {
    let broadcaster = broadcaster(state)?;
    let id = new_id("BC");
    worker_of(state, room)?;
    let rtmp = request.rtmp.clone();
    let b = broadcaster.prepare(id.clone(), room, request).await?;
    let (worker, tap, link) = tap_room(state, room, RoomTapKind::Broadcast, id).await?;
    let (control, requests) = mpsc::unbounded_channel();
    match broadcaster.begin(b, rtmp, link, control) {
        Ok(b) => {
            tokio::spawn(carry_requests(worker, tap, requests));
            Ok(b)
        }
        Err(e) => {
            untap_failed(&worker, tap).await;
            Err(e.into())
        }
    }
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
    let b = start_broadcast(&state, &room, body).await?;
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    admin(&state, &headers, Some(&room))?;
    let all = broadcaster(&state)?.list(&room).await?;
    Ok(Json(serde_json::json!({ "broadcasts": all })).into_response())
}

/// Finds a broadcast and checks the token may see its room.
async fn authorized(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Broadcast, ApiError> {
    admin(state, headers, None)?;
    let b = broadcaster(state)?.find(id).await?;
    admin(state, headers, Some(&b.room))?;
    Ok(b)
}

async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(authorized(&state, &headers, &id).await?).into_response())
}

async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorized(&state, &headers, &id).await?;
    let b = broadcaster(&state)?.stop(&id).await?;
    Ok(Json(b).into_response())
}

/// The body of `POST /api/v1/broadcasts/{id}/rtmp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RtmpBody {
    url: String,
}

async fn add_rtmp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorized(&state, &headers, &id).await?;
    let body: RtmpBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let target = broadcaster(&state)?.add_rtmp(&id, body.url).await?;
    Ok((StatusCode::CREATED, Json(target)).into_response())
}

async fn remove_rtmp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorized(&state, &headers, &id).await?;
    let target = broadcaster(&state)?.remove_rtmp(&id, &target).await?;
    Ok(Json(target).into_response())
}

/// Stops broadcast `id` of `room`, or every running one (from signaling).
pub async fn stop_in_room(
    state: &AppState,
    room: &str,
    id: Option<&str>,
) -> Result<(), (&'static str, String)> {
    let fail = |e: BroadcastError| (e.code(), e.to_string());
    let broadcaster = broadcaster(state).map_err(fail)?;
    let running = broadcaster.running_in(room);
    let targets: Vec<String> = match id {
        Some(id) if running.iter().any(|b| b.id == id) => vec![id.to_string()],
        // This room's broadcast that is over, or another room's, or none: as the REST API says.
        Some(id) => {
            return Err(fail(match broadcaster.get(id).filter(|b| b.room == room) {
                Some(b) => BroadcastError::NotBroadcasting(id.to_string(), b.state.as_str()),
                None => BroadcastError::NotFound(id.to_string()),
            }));
        }
        None => running.into_iter().map(|b| b.id).collect(),
    };
    if targets.is_empty() {
        let e = BroadcastError::NotBroadcasting(room.to_string(), "not running");
        return Err((e.code(), format!("room {room} is not being broadcast")));
    }
    for id in targets {
        broadcaster.stop(&id).await.map_err(fail)?;
    }
    Ok(())
}

/// CORS for players on other origins: HLS is public.
fn cors(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Type"),
    );
}

async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    cors(h);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

/// `GET /hls/<id>/<path>`: playlists fresh (a live playlist changes every segment), segments
/// and init segments immutable (their names are never reused).
async fn hls(State(state): State<AppState>, Path((id, path)): Path<(String, String)>) -> Response {
    let found = match broadcaster(&state) {
        Ok(b) => b.hls_file(&id, &path).await,
        Err(e) => Err(e),
    };
    let mut response = match found {
        Ok(file) => {
            let bytes = match file {
                HlsFile::Local(p) => match tokio::fs::read(&p).await {
                    Ok(b) => b,
                    // Deleted behind the window between the check and the read.
                    Err(_) => return not_found(&id, &path),
                },
                HlsFile::Stored(b) => b,
            };
            let playlist = path.ends_with(".m3u8");
            let kind = if playlist {
                "application/vnd.apple.mpegurl"
            } else if path.ends_with(".m4s") {
                "video/iso.segment"
            } else {
                "video/mp4"
            };
            let cache = if playlist {
                "public, max-age=1"
            } else {
                "public, max-age=31536000, immutable"
            };
            (
                [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
                bytes,
            )
                .into_response()
        }
        Err(_) => not_found(&id, &path),
    };
    cors(response.headers_mut());
    response
}

fn not_found(id: &str, path: &str) -> Response {
    let mut r = ApiError::new(
        StatusCode::NOT_FOUND,
        "file_not_found",
        format!("no {path} in broadcast {id}"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors(r.headers_mut());
    r
}

/// `GET /watch/<room>/broadcast`: the room's broadcast for the watch page (public, like its
/// HLS): the live one, else the latest.
async fn watch_info(
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let b = broadcaster(&state)?
        .latest_in(&room)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "broadcast_not_found",
                format!("room {room} has no broadcast"),
            )
        })?;
    let body = serde_json::json!({
        "id": b.id,
        "room": b.room,
        "state": b.state,
        "hls_url": b.hls_url,
        "segment_secs": b.segment_secs,
        "duration_secs": b.duration_secs,
        "started_at": b.started_at,
        "ended_at": b.ended_at,
    });
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn watch_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../web-demo/watch.html"),
    )
        .into_response()
}

async fn hls_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../web-demo/vendor/hls.js/hls.light.min.js"),
    )
        .into_response()
}
