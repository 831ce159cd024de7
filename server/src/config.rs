//! Server configuration: defaults, then a TOML file, then environment variables, then CLI flags.
//! Every key is documented in docs/configuration.md.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use tern_sfu::SfuConfig;

/// The whole configuration of `tern`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[http]`: the HTTP, WebSocket and REST listener.
    pub http: HttpConfig,
    /// `[rtc]`: media sockets and workers.
    pub rtc: RtcConfig,
    /// `[sfu]`: forwarding behaviour.
    pub sfu: SfuConfig,
    /// `[auth]`: API keys for access tokens.
    pub auth: AuthConfig,
    /// `[signaling]`: WebSocket limits and liveness.
    pub signaling: SignalingConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[turn]`: the STUN/TURN relay.
    pub turn: crate::turn_config::TurnConfig,
    /// `[recording]`: the FFmpeg sidecar, the spool and object storage.
    pub recording: tern_recording::RecordingConfig,
    /// `[broadcast]`: the HLS ladder, the DVR window and where broadcasts go.
    pub broadcast: tern_broadcast::BroadcastConfig,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP listener (demo, signaling, REST, metrics). Default `127.0.0.1:7880`.
    pub listen: SocketAddr,
    /// A listener of its own for `/metrics` (and `/healthz`), off the public port; `/metrics`
    /// then leaves `listen`. Default none.
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds a connection has to send a request's headers; a kept-alive connection idle
    /// this long is closed too. Default 10.
    pub header_read_timeout_secs: u64,
    /// HTTP and WebSocket connections open at once; more are answered 503. Default 8192.
    pub max_connections: usize,
    /// Connections open at once from one IP address; more are answered 429. Default 256.
    pub max_connections_per_ip: usize,
    /// PEM certificate chain: with `tls_key`, `listen` serves HTTPS and WSS. Reloaded when the
    /// file changes and on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate made at start (for a LAN test; browsers warn). Default
    /// false.
    pub tls_self_signed: bool,
}

impl HttpConfig {
    /// The listener's limits.
    pub fn limits(&self) -> crate::http_server::HttpLimits {
        crate::http_server::HttpLimits {
            header_read_timeout: std::time::Duration::from_secs(
                self.header_read_timeout_secs.max(1),
            ),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7880),
            metrics_listen: None,
            header_read_timeout_secs: 10,
            max_connections: 8192,
            max_connections_per_ip: 256,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
        }
    }
}

/// `[rtc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtcConfig {
    /// IP the media sockets bind to. Default `127.0.0.1`.
    pub bind_ip: IpAddr,
    /// UDP port of the first worker; worker N listens on `udp_port + N`. 0 picks free ports.
    /// Default 7882.
    pub udp_port: u16,
    /// IP given to clients in ICE candidates (the public IP behind NAT). Default: `bind_ip`, or
    /// 127.0.0.1 when `bind_ip` is unspecified.
    pub advertise_ip: Option<IpAddr>,
    /// Number of worker threads; 0 means one per core. Default 0.
    pub workers: usize,
    /// Receive buffer of each media socket, in bytes. Default 4 MiB.
    pub udp_recv_buffer: usize,
    /// Send buffer of each media socket, in bytes. Default 4 MiB.
    pub udp_send_buffer: usize,
    /// Batch media socket I/O with recvmmsg/sendmmsg (Linux): up to 32 datagrams per system
    /// call. Default true; false takes the portable path of one system call per datagram.
    pub batch_io: bool,
    /// Each worker also accepts ICE over TCP (RFC 6544) and offers a passive TCP host candidate,
    /// for clients whose networks block UDP. Default true.
    pub tcp_enabled: bool,
    /// TCP port of the first worker's ICE-TCP listener; worker N listens on `tcp_port + N`.
    /// Default: the same as `udp_port` (0 picks free ports).
    pub tcp_port: Option<u16>,
    /// ICE-TCP connections one worker accepts at once; more are refused. Default 1024.
    pub tcp_max_connections: usize,
    /// An ICE-TCP connection that sends nothing this long is closed. Default 30 (clients send
    /// ICE consent checks every few seconds).
    pub tcp_idle_timeout_secs: u64,
}

impl Default for RtcConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp_port: 7882,
            advertise_ip: None,
            workers: 0,
            udp_recv_buffer: 4 << 20,
            udp_send_buffer: 4 << 20,
            batch_io: true,
            tcp_enabled: true,
            tcp_port: None,
            tcp_max_connections: 1024,
            tcp_idle_timeout_secs: 30,
        }
    }
}

impl RtcConfig {
    /// The IP put in ICE candidates.
    pub fn advertised_ip(&self) -> IpAddr {
        match self.advertise_ip {
            Some(ip) => ip,
            None if self.bind_ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => self.bind_ip,
        }
    }

    /// The ICE-TCP port of worker `index`, when ICE-TCP is on (0: a free port).
    pub fn tcp_port_of(&self, index: usize) -> anyhow::Result<Option<u16>> {
        let first = self.tcp_port.unwrap_or(self.udp_port);
        if !self.tcp_enabled {
            return Ok(None);
        }
        port_of(first, index, "rtc.tcp_port").map(Some)
    }

    /// The UDP port of worker `index` (0: a free port).
    pub fn udp_port_of(&self, index: usize) -> anyhow::Result<u16> {
        port_of(self.udp_port, index, "rtc.udp_port")
    }

    /// How many workers to start.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Worker `index`'s port counted from `first`; 0 stays 0 (a free port).
fn port_of(first: u16, index: usize, key: &str) -> anyhow::Result<u16> {
    if first == 0 {
        return Ok(0);
    }
    u16::try_from(index)
        .ok()
        .and_then(|i| first.checked_add(i))
        .with_context(|| format!("{key} {first} leaves no port for worker {index}"))
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// API key to secret. Empty means development mode: a key is made at start and `/dev/token`
    /// hands out tokens.
    pub keys: BTreeMap<String, String>,
    /// Let development mode serve a non-loopback `http.listen`, where anyone who reaches the
    /// port gets tokens and relay access. Default false: tern refuses to start so.
    pub dev_allow_remote: bool,
}

/// `[signaling]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalingConfig {
    /// Largest WebSocket message accepted, in bytes. Default 65536.
    pub max_message_bytes: usize,
    /// Seconds between WebSocket pings. Default 10.
    pub ping_interval_secs: u64,
    /// A session that sends nothing (not even a pong) this long is closed. Default 30.
    pub idle_timeout_secs: u64,
    /// Seconds a new connection has to send `join`. Default 10.
    pub join_timeout_secs: u64,
    /// A session whose socket drops (or goes idle) waits this long to be resumed by a `join`
    /// with its `resume_token`; meanwhile the others see nothing. Default 15, as
    /// `sfu.disconnect_timeout_ms`; 0 turns resuming off (the participant leaves at once).
    pub resume_grace_secs: u64,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            ping_interval_secs: 10,
            idle_timeout_secs: 30,
            join_timeout_secs: 10,
            resume_grace_secs: 15,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter, for example `info` or `tern=debug,str0m=warn`. Default `info,str0m=warn`.
    pub level: String,
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info,str0m=warn".into(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Overrides from the command line or environment (`TERN_*`). Each field is one config key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Path of a TOML config file.
    #[arg(long, short = 'c', env = "TERN_CONFIG")]
    pub config: Option<PathBuf>,
    /// http.listen
    #[arg(long, env = "TERN_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// http.metrics_listen
    #[arg(long, env = "TERN_HTTP_METRICS_LISTEN")]
    pub http_metrics_listen: Option<SocketAddr>,
    /// http.header_read_timeout_secs
    #[arg(long, env = "TERN_HTTP_HEADER_READ_TIMEOUT_SECS")]
    pub http_header_read_timeout_secs: Option<u64>,
    /// http.max_connections
    #[arg(long, env = "TERN_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// http.max_connections_per_ip
    #[arg(long, env = "TERN_HTTP_MAX_CONNECTIONS_PER_IP")]
    pub http_max_connections_per_ip: Option<usize>,
    /// http.tls_cert (PEM)
    #[arg(long, env = "TERN_HTTP_TLS_CERT")]
    pub http_tls_cert: Option<PathBuf>,
    /// http.tls_key (PEM)
    #[arg(long, env = "TERN_HTTP_TLS_KEY")]
    pub http_tls_key: Option<PathBuf>,
    /// http.tls_self_signed: serve HTTPS with a certificate made at start
    #[arg(long, env = "TERN_HTTP_TLS_SELF_SIGNED")]
    pub http_tls_self_signed: bool,
    /// rtc.bind_ip
    #[arg(long, env = "TERN_RTC_BIND_IP")]
    pub rtc_bind_ip: Option<IpAddr>,
    /// rtc.udp_port
    #[arg(long, env = "TERN_RTC_UDP_PORT")]
    pub rtc_udp_port: Option<u16>,
    /// rtc.advertise_ip
    #[arg(long, env = "TERN_RTC_ADVERTISE_IP")]
    pub rtc_advertise_ip: Option<IpAddr>,
    /// rtc.workers
    #[arg(long, env = "TERN_RTC_WORKERS")]
    pub rtc_workers: Option<usize>,
    /// rtc.udp_recv_buffer
    #[arg(long, env = "TERN_RTC_UDP_RECV_BUFFER")]
    pub rtc_udp_recv_buffer: Option<usize>,
    /// rtc.udp_send_buffer
    #[arg(long, env = "TERN_RTC_UDP_SEND_BUFFER")]
    pub rtc_udp_send_buffer: Option<usize>,
    /// rtc.batch_io
    #[arg(long, env = "TERN_RTC_BATCH_IO")]
    pub rtc_batch_io: Option<bool>,
    /// rtc.tcp_enabled
    #[arg(long, env = "TERN_RTC_TCP_ENABLED")]
    pub rtc_tcp_enabled: Option<bool>,
    /// rtc.tcp_port
    #[arg(long, env = "TERN_RTC_TCP_PORT")]
    pub rtc_tcp_port: Option<u16>,
    /// rtc.tcp_max_connections
    #[arg(long, env = "TERN_RTC_TCP_MAX_CONNECTIONS")]
    pub rtc_tcp_max_connections: Option<usize>,
    /// rtc.tcp_idle_timeout_secs
    #[arg(long, env = "TERN_RTC_TCP_IDLE_TIMEOUT_SECS")]
    pub rtc_tcp_idle_timeout_secs: Option<u64>,
    /// sfu.keyframe_interval_ms
    #[arg(long, env = "TERN_SFU_KEYFRAME_INTERVAL_MS")]
    pub sfu_keyframe_interval_ms: Option<u64>,
    /// sfu.keyframe_min_gap_ms
    #[arg(long, env = "TERN_SFU_KEYFRAME_MIN_GAP_MS")]
    pub sfu_keyframe_min_gap_ms: Option<u64>,
    /// sfu.bwe_initial_kbps
    #[arg(long, env = "TERN_SFU_BWE_INITIAL_KBPS")]
    pub sfu_bwe_initial_kbps: Option<u64>,
    /// sfu.congestion_control
    #[arg(long, env = "TERN_SFU_CONGESTION_CONTROL")]
    pub sfu_congestion_control: Option<bool>,
    /// sfu.rtx_buffer_ms
    #[arg(long, env = "TERN_SFU_RTX_BUFFER_MS")]
    pub sfu_rtx_buffer_ms: Option<u64>,
    /// sfu.rtx_buffer_packets
    #[arg(long, env = "TERN_SFU_RTX_BUFFER_PACKETS")]
    pub sfu_rtx_buffer_packets: Option<usize>,
    /// sfu.data_max_message_bytes
    #[arg(long, env = "TERN_SFU_DATA_MAX_MESSAGE_BYTES")]
    pub sfu_data_max_message_bytes: Option<usize>,
    /// sfu.data_messages_per_sec
    #[arg(long, env = "TERN_SFU_DATA_MESSAGES_PER_SEC")]
    pub sfu_data_messages_per_sec: Option<u32>,
    /// sfu.disconnect_timeout_ms
    #[arg(long, env = "TERN_SFU_DISCONNECT_TIMEOUT_MS")]
    pub sfu_disconnect_timeout_ms: Option<u64>,
    /// sfu.max_participants_per_room
    #[arg(long, env = "TERN_SFU_MAX_PARTICIPANTS_PER_ROOM")]
    pub sfu_max_participants_per_room: Option<usize>,
    /// sfu.max_tracks_per_participant
    #[arg(long, env = "TERN_SFU_MAX_TRACKS_PER_PARTICIPANT")]
    pub sfu_max_tracks_per_participant: Option<usize>,
    /// auth.dev_allow_remote: development mode (no API key) on a non-loopback address
    #[arg(long, env = "TERN_DEV_ALLOW_REMOTE")]
    pub dev_allow_remote: bool,
    /// One API key (added to auth.keys); needs --api-secret.
    #[arg(long, env = "TERN_API_KEY", requires = "api_secret")]
    pub api_key: Option<String>,
    /// The secret of --api-key.
    #[arg(
        long,
        env = "TERN_API_SECRET",
        hide_env_values = true,
        requires = "api_key"
    )]
    pub api_secret: Option<String>,
    /// signaling.max_message_bytes
    #[arg(long, env = "TERN_SIGNALING_MAX_MESSAGE_BYTES")]
    pub signaling_max_message_bytes: Option<usize>,
    /// signaling.ping_interval_secs
    #[arg(long, env = "TERN_SIGNALING_PING_INTERVAL_SECS")]
    pub signaling_ping_interval_secs: Option<u64>,
    /// signaling.resume_grace_secs
    #[arg(long, env = "TERN_SIGNALING_RESUME_GRACE_SECS")]
    pub signaling_resume_grace_secs: Option<u64>,
    /// signaling.idle_timeout_secs
    #[arg(long, env = "TERN_SIGNALING_IDLE_TIMEOUT_SECS")]
    pub signaling_idle_timeout_secs: Option<u64>,
    /// signaling.join_timeout_secs
    #[arg(long, env = "TERN_SIGNALING_JOIN_TIMEOUT_SECS")]
    pub signaling_join_timeout_secs: Option<u64>,
    /// log.level
    #[arg(long, env = "TERN_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// log.format
    #[arg(long, env = "TERN_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// `[turn]` keys.
    #[command(flatten)]
    pub turn: crate::turn_config::TurnOverrides,
    /// recording.ffmpeg
    #[arg(long, env = "TERN_RECORDING_FFMPEG")]
    pub recording_ffmpeg: Option<PathBuf>,
    /// recording.spool_dir
    #[arg(long, env = "TERN_RECORDING_SPOOL_DIR")]
    pub recording_spool_dir: Option<PathBuf>,
    /// recording.max_concurrent
    #[arg(long, env = "TERN_RECORDING_MAX_CONCURRENT")]
    pub recording_max_concurrent: Option<usize>,
    /// recording.empty_room_grace_secs
    #[arg(long, env = "TERN_RECORDING_EMPTY_ROOM_GRACE_SECS")]
    pub recording_empty_room_grace_secs: Option<u64>,
    /// recording.segment_secs
    #[arg(long, env = "TERN_RECORDING_SEGMENT_SECS")]
    pub recording_segment_secs: Option<u32>,
    /// recording.spool_max_bytes
    #[arg(long, env = "TERN_RECORDING_SPOOL_MAX_BYTES")]
    pub recording_spool_max_bytes: Option<u64>,
    /// recording.storage.backend: local, s3, gcs or azure
    #[arg(long, env = "TERN_RECORDING_STORAGE", value_parser = parse_backend)]
    pub recording_storage: Option<tern_recording::Backend>,
    /// recording.storage.local_dir
    #[arg(long, env = "TERN_RECORDING_LOCAL_DIR")]
    pub recording_local_dir: Option<PathBuf>,
    /// recording.storage.bucket
    #[arg(long, env = "TERN_RECORDING_BUCKET")]
    pub recording_bucket: Option<String>,
    /// recording.storage.endpoint
    #[arg(long, env = "TERN_RECORDING_ENDPOINT")]
    pub recording_endpoint: Option<String>,
    /// recording.storage.region
    #[arg(long, env = "TERN_RECORDING_REGION")]
    pub recording_region: Option<String>,
    /// recording.storage.prefix
    #[arg(long, env = "TERN_RECORDING_PREFIX")]
    pub recording_prefix: Option<String>,
    /// broadcast.dvr_window_secs (0: keep the whole event)
    #[arg(long, env = "TERN_BROADCAST_DVR_WINDOW_SECS")]
    pub broadcast_dvr_window_secs: Option<u64>,
    /// broadcast.program_height: 720, or 1080 for a 1080p rung
    #[arg(long, env = "TERN_BROADCAST_PROGRAM_HEIGHT")]
    pub broadcast_program_height: Option<u32>,
    /// broadcast.max_concurrent
    #[arg(long, env = "TERN_BROADCAST_MAX_CONCURRENT")]
    pub broadcast_max_concurrent: Option<usize>,
    /// broadcast.spool_dir
    #[arg(long, env = "TERN_BROADCAST_SPOOL_DIR")]
    pub broadcast_spool_dir: Option<PathBuf>,
}

fn parse_backend(s: &str) -> Result<tern_recording::Backend, String> {
    use tern_recording::Backend;
    match s.to_ascii_lowercase().as_str() {
        "local" => Ok(Backend::Local),
        "s3" => Ok(Backend::S3),
        "gcs" => Ok(Backend::Gcs),
        "azure" => Ok(Backend::Azure),
        other => Err(format!(
            "unknown storage {other:?}; use local, s3, gcs or azure"
        )),
    }
}

impl Config {
    /// Parses a TOML config text.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Defaults, then the file named by `--config`, then the overrides.
    pub fn load(o: &Overrides) -> anyhow::Result<Self> {
        let mut c = match &o.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        c.apply(o);
        Ok(c)
    }

    fn apply(&mut self, o: &Overrides) {
        fn set<T: Clone>(slot: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *slot = v.clone();
            }
        }
        set(&mut self.http.listen, &o.http_listen);
        if o.http_metrics_listen.is_some() {
            self.http.metrics_listen = o.http_metrics_listen;
        }
        set(
            &mut self.http.header_read_timeout_secs,
            &o.http_header_read_timeout_secs,
        );
        set(&mut self.http.max_connections, &o.http_max_connections);
        if o.http_tls_cert.is_some() {
            self.http.tls_cert = o.http_tls_cert.clone();
        }
        if o.http_tls_key.is_some() {
            self.http.tls_key = o.http_tls_key.clone();
        }
        self.http.tls_self_signed |= o.http_tls_self_signed;
        set(
            &mut self.http.max_connections_per_ip,
            &o.http_max_connections_per_ip,
        );
        set(&mut self.rtc.bind_ip, &o.rtc_bind_ip);
        set(&mut self.rtc.udp_port, &o.rtc_udp_port);
        if o.rtc_advertise_ip.is_some() {
            self.rtc.advertise_ip = o.rtc_advertise_ip;
        }
        set(&mut self.rtc.workers, &o.rtc_workers);
        set(&mut self.rtc.udp_recv_buffer, &o.rtc_udp_recv_buffer);
        set(&mut self.rtc.udp_send_buffer, &o.rtc_udp_send_buffer);
        set(&mut self.rtc.batch_io, &o.rtc_batch_io);
        set(&mut self.rtc.tcp_enabled, &o.rtc_tcp_enabled);
        if o.rtc_tcp_port.is_some() {
            self.rtc.tcp_port = o.rtc_tcp_port;
        }
        set(
            &mut self.rtc.tcp_max_connections,
            &o.rtc_tcp_max_connections,
        );
        set(
            &mut self.rtc.tcp_idle_timeout_secs,
            &o.rtc_tcp_idle_timeout_secs,
        );
        set(
            &mut self.sfu.keyframe_interval_ms,
            &o.sfu_keyframe_interval_ms,
        );
        set(
            &mut self.sfu.keyframe_min_gap_ms,
            &o.sfu_keyframe_min_gap_ms,
        );
        set(&mut self.sfu.bwe_initial_kbps, &o.sfu_bwe_initial_kbps);
        set(&mut self.sfu.congestion_control, &o.sfu_congestion_control);
        set(&mut self.sfu.rtx_buffer_ms, &o.sfu_rtx_buffer_ms);
        set(&mut self.sfu.rtx_buffer_packets, &o.sfu_rtx_buffer_packets);
        set(
            &mut self.sfu.data_max_message_bytes,
            &o.sfu_data_max_message_bytes,
        );
        set(
            &mut self.sfu.data_messages_per_sec,
            &o.sfu_data_messages_per_sec,
        );
        set(
            &mut self.sfu.disconnect_timeout_ms,
            &o.sfu_disconnect_timeout_ms,
        );
        set(
            &mut self.sfu.max_participants_per_room,
            &o.sfu_max_participants_per_room,
        );
        set(
            &mut self.sfu.max_tracks_per_participant,
            &o.sfu_max_tracks_per_participant,
        );
        self.auth.dev_allow_remote |= o.dev_allow_remote;
        if let (Some(k), Some(s)) = (&o.api_key, &o.api_secret) {
            self.auth.keys.insert(k.clone(), s.clone());
        }
        set(
            &mut self.signaling.max_message_bytes,
            &o.signaling_max_message_bytes,
        );
        set(
            &mut self.signaling.ping_interval_secs,
            &o.signaling_ping_interval_secs,
        );
        set(
            &mut self.signaling.idle_timeout_secs,
            &o.signaling_idle_timeout_secs,
        );
        set(
            &mut self.signaling.resume_grace_secs,
            &o.signaling_resume_grace_secs,
        );
        set(
            &mut self.signaling.join_timeout_secs,
            &o.signaling_join_timeout_secs,
        );
        set(&mut self.log.level, &o.log_level);
        set(&mut self.log.format, &o.log_format);
        o.turn.apply(&mut self.turn);
        let r = &mut self.recording;
        set(&mut r.ffmpeg, &o.recording_ffmpeg);
        set(&mut r.spool_dir, &o.recording_spool_dir);
        set(&mut r.max_concurrent, &o.recording_max_concurrent);
        set(
            &mut r.empty_room_grace_secs,
            &o.recording_empty_room_grace_secs,
        );
        set(&mut r.segment_secs, &o.recording_segment_secs);
        set(&mut r.spool_max_bytes, &o.recording_spool_max_bytes);
        set(&mut r.storage.backend, &o.recording_storage);
        set(&mut r.storage.local_dir, &o.recording_local_dir);
        set(&mut r.storage.bucket, &o.recording_bucket);
        if o.recording_endpoint.is_some() {
            r.storage.endpoint = o.recording_endpoint.clone();
        }
        if o.recording_region.is_some() {
            r.storage.region = o.recording_region.clone();
        }
        set(&mut r.storage.prefix, &o.recording_prefix);
        let b = &mut self.broadcast;
        set(&mut b.dvr_window_secs, &o.broadcast_dvr_window_secs);
        set(&mut b.program_height, &o.broadcast_program_height);
        set(&mut b.max_concurrent, &o.broadcast_max_concurrent);
        set(&mut b.spool_dir, &o.broadcast_spool_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("docs/config exists") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::from_file(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 2, "expected sample configs in {}", dir.display());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_toml("[http]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n")
            .expect_err("unknown key");
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
    }

    #[test]
    fn turn_allow_peers_take_addresses_ports_and_ranges() {
        let c = Config::from_toml(
            "[turn]\nallow_peers = [\"127.0.0.1\", \"10.0.0.5:5000-5100\", \"[::1]:7\"]\n",
        )
        .expect("parses");
        assert_eq!(c.turn.allow_peers.len(), 3);
        assert_eq!(c.turn.allow_peers[1].ports, Some((5000, 5100)));
        let err = Config::from_toml("[turn]\nallow_peers = [\"10.0.0.5:9-8\"]\n")
            .expect_err("a backwards range");
        assert!(format!("{err:#}").contains("10.0.0.5:9-8"), "{err:#}");
    }

    #[test]
    fn a_wildcard_relay_address_needs_an_external_one() {
        let mut c = Config::from_toml("[turn]\nrelay_ip = \"0.0.0.0\"\n").expect("parses");
        let err = c
            .turn
            .server_config("secret", Default::default())
            .expect_err("0.0.0.0 would be handed to clients");
        assert!(format!("{err:#}").contains("external_ip"), "{err:#}");
        c.turn.external_ip = Some("203.0.113.4".parse().expect("ip"));
        assert!(c.turn.server_config("secret", Default::default()).is_ok());
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut c = Config::from_toml("[rtc]\nudp_port = 9000\nworkers = 3\n").expect("parses");
        c.apply(&Overrides {
            rtc_udp_port: Some(9100),
            ..Default::default()
        });
        assert_eq!((c.rtc.udp_port, c.rtc.workers), (9100, 3));
    }
}
