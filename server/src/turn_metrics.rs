//! `/metrics` and `/healthz` for `tern turn` (the relay alone), on `turn.metrics_listen`. The
//! embedded relay's metrics are in tern's own `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tern_turn::net::Relay;

/// Binds `addr`, serves `/metrics` and `/healthz` there, and copies the relay's counters into
/// the metrics facade once a second. Returns the bound address; the tasks run until the
/// runtime stops.
pub async fn serve(addr: SocketAddr, relay: Arc<Relay>) -> anyhow::Result<SocketAddr> {
    let handle = crate::metrics::install();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            crate::metrics::record_turn(&relay.stats());
        }
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || async move { crate::http::metrics_response(handle.as_ref()) }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(bound)
}
