//! The tern media server: configuration, HTTP, WebSocket signaling, REST API and worker threads
//! around the SFU core. `main.rs` parses the command line and calls [`start`].

pub mod api;
pub mod auth;
pub mod broadcasts;
pub mod config;
pub mod forward_latency;
pub mod http;
pub mod http_server;
pub mod ice_tcp;
pub mod metrics;
pub mod protocol;
pub mod recordings;
pub mod registry;
pub mod resume;
pub mod signaling;
pub mod tls;
pub mod turn;
pub mod turn_config;
pub mod turn_metrics;
pub mod wire;
pub mod wire_recording;
pub mod worker;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tern_sfu::{Command, ParticipantId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{Auth, random_token};
use crate::config::Config;
use crate::registry::Registry;
use crate::worker::WorkerHandle;

/// Shared state of the HTTP application. Control path only: media state lives in the workers.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The effective configuration.
    pub config: Config,
    /// Token verification.
    pub auth: Auth,
    /// True when no API key was configured.
    pub dev_mode: bool,
    /// The generated API key in development mode.
    pub dev_key: Option<String>,
    /// The workers.
    pub workers: Vec<WorkerHandle>,
    /// Room placement.
    pub registry: Arc<Registry>,
    /// Prometheus rendering.
    pub metrics: Option<PrometheusHandle>,
    /// The embedded TURN relay, unless disabled.
    pub turn: Option<turn::TurnService>,
    /// HTTPS/WSS on the HTTP listener, when configured.
    pub tls: Option<Arc<tls::Tls>>,
    /// The recorder, or why recording cannot work (storage misconfigured).
    pub recorder: Result<tern_recording::Recorder, String>,
    /// The broadcaster, or why broadcasting cannot work (storage misconfigured).
    pub broadcaster: Result<tern_broadcast::Broadcaster, String>,
    /// Sessions that can be resumed on a new socket.
    pub resumable: resume::Resumable,
    next_participant: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Each signaling session holds a clone; shutdown waits until only this one is left.
    sessions: Arc<()>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// A fresh participant id, unique in this process.
    pub fn next_participant_id(&self) -> ParticipantId {
        ParticipantId(self.next_participant.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A token held by a live signaling session.
    pub fn session_token(&self) -> Arc<()> {
        self.sessions.clone()
    }

    /// Waits until no signaling session is left, or `limit` passes.
    async fn sessions_closed(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while Arc::strong_count(&self.sessions) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resolves when shutdown begins.
    pub async fn shutdown_signal(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// A running server.
pub struct Running {
    /// The HTTP listener's address.
    pub http_addr: SocketAddr,
    /// Each worker's advertised media address.
    pub media_addrs: Vec<SocketAddr>,
    /// The metrics listener's address, when `http.metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// In development mode, the generated API key and secret.
    pub dev_credentials: Option<(String, String)>,
    state: AppState,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Begins a graceful shutdown: refuse joins, tell every participant, close.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits for the server to stop (after [`Running::shutdown`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")?
    }

    /// The application state (for tests and tooling).
    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// Starts workers and the HTTP listener.
pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    for (key, secret) in &config.auth.keys {
        auth::check_secret(key, secret).map_err(anyhow::Error::msg)?;
    }
    let dev_credentials = if config.auth.keys.is_empty() {
        let ip = config.http.listen.ip();
        anyhow::ensure!(
            ip.is_loopback() || config.auth.dev_allow_remote,
            "development mode (no API key) hands tokens and relay access to anyone who reaches \
             http.listen {}; configure an API key (auth.keys, TERN_API_KEY and \
             TERN_API_SECRET), or pass --dev-allow-remote to accept that on a trusted network",
            config.http.listen
        );
        if !ip.is_loopback() {
            tracing::warn!(
                listen = %config.http.listen,
                "DEVELOPMENT MODE ON A NON-LOOPBACK ADDRESS: anyone who reaches this port can \
                 mint tokens and use the TURN relay (--dev-allow-remote)"
            );
        }
        let creds = (format!("dev-{}", &random_token(6)[..8]), random_token(32));
        config.auth.keys.insert(creds.0.clone(), creds.1.clone());
        Some(creds)
    } else {
        None
    };
    let workers_n = config.rtc.worker_count();
    let registry = Arc::new(Registry::new(workers_n));
    let workers = (0..workers_n)
        .map(|i| worker::spawn(i, &config.rtc, config.sfu.clone(), registry.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let media_addrs: Vec<SocketAddr> = workers.iter().map(|w| w.media_addr).collect();
    let turn = turn::TurnService::start_embedded(&config, &media_addrs)?;
    let tls = tls::Tls::from_config(&config.http, certificate_names(&config))?.map(Arc::new);
    if let Some(t) = &tls {
        t.watch();
    }
    let recorder = tern_recording::Recorder::new(config.recording.clone()).map_err(|e| {
        tracing::error!(error = %e, "recording is unavailable");
        e.to_string()
    });
    let broadcaster = tern_broadcast::Broadcaster::new(
        config.broadcast.clone(),
        config.recording.ffmpeg.clone(),
        &config.broadcast.storage_or(&config.recording.storage),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "broadcasting is unavailable");
        e.to_string()
    });
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding HTTP listener {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState(Arc::new(Inner {
        auth: Auth::new(&config.auth.keys),
        dev_mode: dev_credentials.is_some(),
        dev_key: dev_credentials.as_ref().map(|c| c.0.clone()),
        config,
        workers,
        registry,
        metrics: metrics::install(),
        turn,
        tls,
        recorder,
        broadcaster,
        resumable: resume::Resumable::default(),
        next_participant: AtomicU64::new(0),
        shutdown: shutdown_rx,
        sessions: Arc::new(()),
    }));
    if state.turn.is_some() {
        let s = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !s.is_shutting_down() {
                tick.tick().await;
                if let Some(t) = &s.turn {
                    metrics::record_turn(&t.relay().stats());
                }
            }
        });
    }
    if let Ok(r) = &state.recorder {
        let resumed = r.resume_spool();
        tracing::info!(store = r.store().describe(), resumed, "recording ready");
        let s = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !s.is_shutting_down() {
                tick.tick().await;
                if let Ok(r) = &s.recorder {
                    let (running, spooled, feed_errors) = r.gauges();
                    metrics::record_recordings(running, spooled, feed_errors);
                }
                if let Ok(b) = &s.broadcaster {
                    let (running, feed_errors) = b.gauges();
                    metrics::record_broadcasts(running, feed_errors);
                }
            }
        });
    }
    if let Ok(b) = &state.broadcaster {
        let resumed = b.resume_spool();
        tracing::info!(resumed, "broadcasting ready");
    }
    let metrics_addr = match state.config.http.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics listener {addr}"))?;
            let bound = l.local_addr()?;
            let app = http::metrics_app(state.clone());
            let (limits, stop) = (state.config.http.limits(), state.shutdown.clone());
            tokio::spawn(http_server::serve(l, app, limits, None, stop));
            tracing::info!(%bound, "metrics are served on their own listener");
            Some(bound)
        }
        None => None,
    };
    let app = http::app(state.clone());
    let serve_state = state.clone();
    let task = tokio::spawn(async move {
        let graceful = {
            let state = serve_state.clone();
            async move {
                state.shutdown_signal().await;
                let recordings = async {
                    if let Ok(r) = &state.recorder {
                        r.begin_shutdown(Duration::from_secs(5)).await;
                    }
                };
                // Broadcasts end their playlists (a VOD) while media still flows.
                let broadcasts = async {
                    if let Ok(b) = &state.broadcaster {
                        b.shutdown(Duration::from_secs(5)).await;
                    }
                };
                tokio::join!(recordings, broadcasts);
                for w in &state.workers {
                    let _ = w.request(Command::Shutdown).await;
                }
            }
        };
        let limits = serve_state.config.http.limits();
        let stop = serve_state.shutdown.clone();
        let tls = serve_state.tls.clone();
        let server = async move {
            // Participants are told first, so their sessions can say `closing` before the end.
            tokio::join!(
                graceful,
                http_server::serve(listener, app, limits, tls, stop)
            );
        };
        // Sessions close within a few seconds of the shutdown notice; do not wait forever.
        let mut sd = serve_state.shutdown.clone();
        tokio::select! {
            () = server => {},
            _ = async { let _ = sd.wait_for(|s| *s).await; tokio::time::sleep(Duration::from_secs(10)).await } => {
                tracing::warn!("connections still open 10 s after shutdown; closing");
            }
        }
        // WebSocket sessions outlive the HTTP server (they are upgraded connections): let them
        // send `closing` and close before the process exits.
        serve_state.sessions_closed(Duration::from_secs(5)).await;
        // Recordings finish their files and uploads; what storage has not taken stays in the
        // spool for the next start.
        if let Ok(r) = &serve_state.recorder {
            r.finish_shutdown(Duration::from_secs(20)).await;
        }
        if let Some(t) = &serve_state.turn {
            t.signal_stop();
        }
        Ok(())
    });
    tracing::info!(%http_addr, "tern is listening");
    Ok(Running {
        http_addr,
        media_addrs,
        metrics_addr,
        dev_credentials,
        state,
        shutdown: shutdown_tx,
        task,
    })
}

/// The names a self-signed certificate covers: localhost and the addresses tern is reached at.
fn certificate_names(config: &Config) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let ips = [Some(config.http.listen.ip()), config.rtc.advertise_ip];
    for ip in ips.into_iter().flatten().filter(|ip| !ip.is_unspecified()) {
        if !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
    }
    names
}
