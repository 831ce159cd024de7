//! The `tern` binary: `tern` serves, `tern token` mints access tokens.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tern_server::auth::{Claims, Grants, mint_with_secret, unix_seconds};
use tern_server::config::{Config, LogFormat, Overrides};

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
    /// Grants, comma-separated: join, publish, subscribe, publish_data.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "join,publish,subscribe,publish_data"
    )]
    grants: Vec<String>,
    /// Grant use of the REST API.
    #[arg(long)]
    admin: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Token(args)) => token(args),
        None => serve(&cli.serve),
    }
}

fn token(a: TokenArgs) -> anyhow::Result<()> {
    let mut grants = Grants {
        admin: a.admin,
        ..Default::default()
    };
    for g in &a.grants {
        match g.trim() {
            "join" => grants.join = true,
            "publish" => grants.publish = true,
            "subscribe" => grants.subscribe = true,
            "publish_data" => grants.publish_data = true,
            "" => {}
            other => {
                anyhow::bail!("unknown grant {other:?}; use join, publish, subscribe, publish_data")
            }
        }
    }
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

fn serve(overrides: &Overrides) -> anyhow::Result<()> {
    let config = Config::load(overrides)?;
    init_logs(&config);
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
        if let Some((key, secret)) = &running.dev_credentials {
            tracing::warn!(
                "development mode: no API key configured; generated key {key} (secret {secret}). \
                 Open http://{}/ to try the demo.",
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
