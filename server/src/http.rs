//! The HTTP application: the web demo, signaling, REST, health, metrics and (in development mode
//! only) the token endpoint. Built as a function so tests can drive it directly.

use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Claims, Grants, random_token, unix_seconds};
use crate::{AppState, api, signaling};

/// How long development tokens last.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route(
            "/",
            get(|| {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("../../web-demo/index.html"),
                )
            }),
        )
        .route(
            "/app.js",
            get(|| asset("text/javascript", include_str!("../../web-demo/app.js"))),
        )
        .route(
            "/tern-client.js",
            get(|| {
                asset(
                    "text/javascript",
                    include_str!("../../web-demo/tern-client.js"),
                )
            }),
        )
        .route(
            "/devices.js",
            get(|| asset("text/javascript", include_str!("../../web-demo/devices.js"))),
        )
        .route(
            "/chat.js",
            get(|| asset("text/javascript", include_str!("../../web-demo/chat.js"))),
        )
        .route(
            "/style.css",
            get(|| asset("text/css", include_str!("../../web-demo/style.css"))),
        )
        .route("/rtc", get(signaling::upgrade))
        .route("/healthz", get(healthz))
        .merge(api::routes())
        .merge(crate::recordings::routes())
        .merge(crate::broadcasts::routes());
    if state.config.http.metrics_listen.is_none() {
        router = router.route("/metrics", get(metrics));
    }
    if state.dev_mode {
        router = router
            .route("/dev/token", get(dev_token))
            .layer(axum::middleware::from_fn(dev_host_check));
    }
    router.with_state(state)
}

/// The application of `http.metrics_listen`: `/metrics` and `/healthz` only.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Development mode answers only requests whose `Host` is `localhost` or an IP address: a page
/// on another site that rebinds its own name to this server's address (DNS rebinding) gets 403
/// instead of tokens.
async fn dev_host_check(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if host_is_local_or_literal(host) {
        next.run(request).await
    } else {
        let body = json!({ "code": "bad_host", "message": "in development mode, reach tern by IP address or localhost" });
        (StatusCode::FORBIDDEN, Json(body)).into_response()
    }
}

/// `localhost`, an IPv4 address or a bracketed IPv6 address, each with an optional port.
fn host_is_local_or_literal(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => {
            return rest
                .split_once(']')
                .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    if state.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(state.metrics.as_ref())
}

/// The Prometheus text of `handle`, or 503 when no recorder could be installed.
pub fn metrics_response(handle: Option<&PrometheusHandle>) -> Response {
    match handle {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available\n",
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct DevTokenQuery {
    room: String,
    name: String,
}

/// `GET /dev/token?room=&name=`: a join/publish/subscribe token, in development mode only.
async fn dev_token(State(state): State<AppState>, Query(q): Query<DevTokenQuery>) -> Response {
    let valid =
        |s: &str| !s.trim().is_empty() && s.len() <= 128 && !s.chars().any(char::is_control);
    if !valid(&q.room) || !valid(&q.name) {
        let body =
            json!({ "code": "bad_request", "message": "room and name are 1 to 128 characters" });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let Some(key) = state.dev_key.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = SystemTime::now();
    // A random suffix keeps two tabs with the same name from replacing each other.
    let identity = format!("{}-{}", q.name.trim(), &random_token(6)[..6]);
    let claims = Claims {
        iss: key,
        sub: identity.clone(),
        name: Some(q.name.trim().to_string()),
        room: Some(q.room.clone()),
        grants: Grants {
            join: true,
            publish: true,
            subscribe: true,
            publish_data: true,
            admin: false,
            publish_sources: None,
            // Development mode: the demo's Record and Go live buttons work.
            record: true,
            broadcast: true,
        },
        exp: unix_seconds(now + DEV_TOKEN_TTL),
        nbf: None,
        iat: Some(unix_seconds(now)),
    };
    match state.auth.mint(&claims) {
        Ok(token) => {
            Json(json!({ "token": token, "identity": identity, "room": q.room })).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
