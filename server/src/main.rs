//! The `tern` binary: `tern` serves, `tern token` mints access tokens, `tern turn` runs the
//! STUN/TURN relay alone.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tern_server::auth::{Claims, Grants, SourceGrant, mint_with_secret, unix_seconds};
use tern_server::config::{Config, LogFormat, Overrides};

#[cfg(all(unix, feature = "jemalloc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// tern: a WebRTC media server (SFU with WebSocket signaling).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    serve: Overrides,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mint an access token (JWT, HS256) for a participant or an administrator.
    Token(TokenArgs),
    /// Run the STUN/TURN relay alone (the `[turn]` keys; see docs/turn.md).
    Turn(Box<TurnArgs>),
}

#[derive(clap::Args)]
struct TurnArgs {
    /// Path of a TOML config file (its `[turn]` and `[log]` sections are used).
    #[arg(long, short = 'c', env = "TERN_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// log.level
    #[arg(long, env = "TERN_LOG_LEVEL")]
    log_level: Option<String>,
    #[command(flatten)]
    turn: tern_server::turn_config::TurnOverrides,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The API key that signs the token (its `iss`).
    #[arg(long, env = "TERN_API_KEY")]
    api_key: String,
    /// The API key's secret.
    #[arg(long, env = "TERN_API_SECRET", hide_env_values = true)]
    api_secret: String,
    /// The participant's identity (`sub`).
    #[arg(long)]
    identity: String,
    /// Display name (defaults to the identity).
    #[arg(long)]
    name: Option<String>,
    /// The room. Required unless --admin (an admin token without a room covers every room).
    #[arg(long, required_unless_present = "admin")]
    room: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    ttl_secs: u64,
    /// Grants, comma-separated: join, publish, subscribe, publish_data, record, broadcast.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "join,publish,subscribe,publish_data"
    )]
    grants: Vec<String>,
    /// Grant use of the REST API.
    #[arg(long)]
    admin: bool,
    /// Grant starting and stopping recordings of the room (same as the `record` grant).
    #[arg(long)]
    record: bool,
    /// Grant starting and stopping live broadcasts of the room (same as the `broadcast` grant).
    #[arg(long)]
    broadcast: bool,
    /// Restrict publishing to these sources, comma-separated: camera, microphone, screen,
    /// screen_audio (default: any).
    #[arg(long, value_delimiter = ',')]
    publish_sources: Option<Vec<String>>,
}

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    // A secret on the command line is visible to every user of the machine (ps, /proc).
    let secret_on_command_line = |m: &clap::ArgMatches| {
        m.value_source("api_secret") == Some(clap::parser::ValueSource::CommandLine)
    };
    match cli.command {
        Some(Cmd::Token(args)) => {
            if matches
                .subcommand_matches("token")
                .is_some_and(secret_on_command_line)
            {
                eprintln!("{SECRET_FLAG_WARNING}");
            }
            token(args)
        }
        Some(Cmd::Turn(args)) => turn(*args),
        None => serve(&cli.serve, secret_on_command_line(&matches)),
    }
}

/// What tern says when `--api-secret` is given as a flag.
const SECRET_FLAG_WARNING: &str = "warning: --api-secret on the command line is visible to \
    every user of this machine (ps, /proc); pass it as TERN_API_SECRET or in the config file";

fn token(a: TokenArgs) -> anyhow::Result<()> {
    let mut grants = Grants {
        admin: a.admin,
        record: a.record,
        broadcast: a.broadcast,
        ..Default::default()
    };
    for g in &a.grants {
        match g.trim() {
            "join" => grants.join = true,
            "publish" => grants.publish = true,
            "subscribe" => grants.subscribe = true,
            "publish_data" => grants.publish_data = true,
            "record" => grants.record = true,
            "broadcast" => grants.broadcast = true,
            "" => {}
            other => {
                anyhow::bail!(
                    "unknown grant {other:?}; use join, publish, subscribe, publish_data, record, \
                     broadcast"
                )
            }
        }
    }
    if let Some(only) = &a.publish_sources {
        let parsed: Result<Vec<SourceGrant>, _> = only
            .iter()
            .map(|s| serde_json::from_value(serde_json::Value::String(s.trim().to_string())))
            .collect();
        grants.publish_sources = Some(parsed.map_err(|_| {
            anyhow::anyhow!(
                "unknown source in {only:?}; use camera, microphone, screen, screen_audio"
            )
        })?);
    }
    tern_server::auth::check_secret(&a.api_key, &a.api_secret).map_err(anyhow::Error::msg)?;
    let now = SystemTime::now();
    let claims = Claims {
        iss: a.api_key,
        sub: a.identity,
        name: a.name,
        room: a.room,
        grants,
        exp: unix_seconds(now + Duration::from_secs(a.ttl_secs)),
        nbf: None,
        iat: Some(unix_seconds(now)),
    };
    println!("{}", mint_with_secret(&a.api_secret, &claims));
    Ok(())
}

fn serve(overrides: &Overrides, secret_on_command_line: bool) -> anyhow::Result<()> {
    let config = Config::load(overrides)?;
    init_logs(&config);
    raise_open_file_limit();
    return_freed_memory();
    if secret_on_command_line {
        tracing::warn!("{SECRET_FLAG_WARNING}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tern-control")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        // Handlers first: a signal that arrives while the server starts must not kill it unclean.
        let mut signals = Signals::register()?;
        let running = tern_server::start(config).await?;
        tokio::spawn(record_heap());
        if running.dev_credentials.is_some() {
            // The generated secret is never printed: it would mint admin tokens.
            tracing::warn!(
                "development mode: no API key configured. Open http://{}/?room=demo&name=you \
                 in two tabs to try the demo.",
                running.http_addr
            );
        }
        signals.next().await;
        tracing::info!("shutting down (send the signal again to force)");
        running.shutdown();
        tokio::spawn(async move {
            signals.next().await;
            tracing::warn!("forced exit");
            std::process::exit(130);
        });
        running.wait().await
    })
}

/// jemalloc's background thread purges freed pages (after its decay time, 10 s by default), so
/// memory held by connections that are gone returns to the OS even while tern is idle.
fn return_freed_memory() {
    #[cfg(all(unix, feature = "jemalloc"))]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background thread not started");
    }
}

/// Once a second, jemalloc's own figures as gauges: `tern_heap_allocated_bytes` (what live
/// allocations hold) and `tern_heap_resident_bytes` (what the allocator keeps in RAM: the
/// allocations, its metadata, and freed pages it has not returned yet).
async fn record_heap() {
    #[cfg(all(unix, feature = "jemalloc"))]
    loop {
        use tikv_jemalloc_ctl::{epoch, stats};
        // The figures are a snapshot, refreshed when the epoch advances.
        if epoch::advance().is_ok()
            && let (Ok(allocated), Ok(resident)) =
                (stats::allocated::read(), stats::resident::read())
        {
            metrics::gauge!("tern_heap_allocated_bytes").set(allocated as f64);
            metrics::gauge!("tern_heap_resident_bytes").set(resident as f64);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every connection, relay socket and ICE-TCP stream is a file descriptor: raise the soft limit
/// (often 1024) to the hard one, so limits are tern's to enforce, with a clear answer, rather
/// than the kernel's.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        let before = limit.current;
        if before < limit.maximum {
            limit.current = limit.maximum;
            match setrlimit(Resource::Nofile, limit) {
                Ok(()) => {
                    tracing::info!(from = ?before, to = ?limit.current, "raised the open file limit")
                }
                Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
            }
        }
    }
}

fn turn(args: TurnArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    args.turn.apply(&mut config.turn);
    if let Some(level) = args.log_level {
        config.log.level = level;
    }
    init_logs(&config);
    raise_open_file_limit();
    return_freed_memory();
    let t = &config.turn;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // Handlers before the sockets, as in `serve`.
    let mut signals = {
        let _inside = runtime.enter();
        Signals::register()?
    };
    let secret = match &t.secret {
        Some(s) => s.clone(),
        None => {
            let s = tern_server::auth::random_token(32);
            println!(
                "tern turn: no turn.secret configured; generated TURN REST shared secret: {s}"
            );
            s
        }
    };
    let policy = tern_turn::peer_policy::PeerPolicy::allowing(t.allow_peers.iter().copied());
    let relay = tern_turn::net::Relay::start(t.server_config(&secret, policy)?, t.net_config()?)
        .with_context(|| format!("starting the TURN relay on {:?}", t.listen))?;
    let relay = std::sync::Arc::new(relay);
    if let Some(addr) = t.metrics_listen {
        let bound = runtime
            .block_on(tern_server::turn_metrics::serve(addr, relay.clone()))
            .with_context(|| format!("serving metrics on {addr}"))?;
        println!("tern turn: metrics on http://{bound}/metrics");
    }
    println!(
        "tern turn: listening on UDP {:?}, TCP {:?}, TLS {:?}; relaying from {} ports {}-{}",
        relay.udp_addrs,
        relay.tcp_addrs,
        relay.tls_addrs,
        t.relay_v4().bind,
        t.min_port,
        t.max_port
    );
    runtime.block_on(signals.next());
    tracing::info!("shutting down");
    drop(runtime); // ends the metrics tasks and their handles on the relay
    match std::sync::Arc::try_unwrap(relay) {
        Ok(relay) => relay.stop(),
        Err(relay) => relay.signal_stop(),
    }
    Ok(())
}

/// SIGINT and SIGTERM.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn register() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn register() -> anyhow::Result<Self> {
        Ok(Self {})
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logs(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
