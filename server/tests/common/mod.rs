//! Shared pieces of the integration tests: a real server on loopback ports and a WebSocket client.
#![allow(dead_code)] // each test binary uses a different subset

pub mod broadcast;
pub mod browser;
pub mod firefox;
pub mod media;
pub mod netns;
pub mod recording;
pub mod rtc_client;
pub mod s3;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tern_server::Running;
use tern_server::auth::{Claims, Grants, mint_with_secret, unix_seconds};
use tern_server::config::Config;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret-0123456789-0123456789-0123456789";

/// Set in the environment of a test binary re-run inside a network namespace it made.
const NETNS_ENV: &str = "TERN_TEST_IN_NETNS";

/// Runs `body` inside a network namespace of the test's own: the first call re-runs this test
/// binary's test `test` under `unshare --net` (and `--mount` when `mount_ns`) after the shell
/// commands `setup` (which start with `ip link set lo up`), and asserts that it passed there; in
/// the re-run, `body` runs on a 2-thread runtime. Needs root (CI runs as root).
pub fn in_own_netns<F: std::future::Future>(
    test: &str,
    setup: &str,
    mount_ns: bool,
    body: impl FnOnce() -> F,
) {
    if std::env::var_os(NETNS_ENV).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(body());
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut unshare = std::process::Command::new("unshare");
    unshare.arg("--net");
    if mount_ns {
        unshare.arg("--mount");
    }
    let status = unshare
        .args(["--", "sh", "-c"])
        .arg(format!(
            "ip link set lo up && {setup} exec \"$0\" --exact {test} --nocapture"
        ))
        .arg(&exe)
        .env(NETNS_ENV, "1")
        .status()
        .expect("unshare runs (util-linux)");
    assert!(
        status.success(),
        "the test failed inside its network namespace (needs root): {status}"
    );
}

/// A server on ephemeral loopback ports with one API key (not development mode).
pub async fn server() -> Running {
    server_with(|_| {}).await
}

/// Like [`server`], with config changes.
pub async fn server_with(change: impl FnOnce(&mut Config)) -> Running {
    let mut c = Config::default();
    c.http.listen = "127.0.0.1:0".parse().expect("addr");
    c.rtc.udp_port = 0;
    c.rtc.workers = 2;
    c.turn.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    c.turn.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    c.turn.workers = 1;
    c.auth.keys.insert(KEY.into(), SECRET.into());
    // Every server spools and stores in a directory of its own, never in the source tree: a
    // server finishes at start whatever it finds in its spools.
    let own = scratch_dir();
    c.recording.spool_dir = own.join("spool");
    c.recording.storage.local_dir = own.join("recordings");
    c.broadcast.spool_dir = own.join("broadcasts");
    change(&mut c);
    tern_server::start(c).await.expect("server starts")
}

/// A fresh directory under this test process's scratch directory (`$TMPDIR/tern-test-<pid>`).
/// The scratch directories of test processes that are gone are removed on first use.
pub fn scratch_dir() -> std::path::PathBuf {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<std::path::PathBuf> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = BASE.get_or_init(|| {
        let tmp = std::env::temp_dir();
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(pid) = name.strip_prefix("tern-test-")
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        tmp.join(format!("tern-test-{}", std::process::id()))
    });
    let dir = base.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Claims for `identity` in `room` with join, publish and subscribe.
pub fn claims(identity: &str, room: &str) -> Claims {
    Claims {
        iss: KEY.into(),
        sub: identity.into(),
        name: Some(identity.into()),
        room: Some(room.into()),
        grants: Grants {
            join: true,
            publish: true,
            subscribe: true,
            ..Default::default()
        },
        exp: unix_seconds(SystemTime::now()) + 600,
        nbf: None,
        iat: None,
    }
}

/// A participant token signed with the test key.
pub fn token(identity: &str, room: &str) -> String {
    mint_with_secret(SECRET, &claims(identity, room))
}

/// A participant token whose grants `change` adjusts (from join, publish and subscribe).
pub fn token_with(identity: &str, room: &str, change: impl FnOnce(&mut Grants)) -> String {
    let mut c = claims(identity, room);
    change(&mut c.grants);
    mint_with_secret(SECRET, &c)
}

/// An admin token for every room.
pub fn admin_token() -> String {
    let c = Claims {
        room: None,
        grants: Grants {
            admin: true,
            ..Default::default()
        },
        ..claims("admin", "")
    };
    mint_with_secret(SECRET, &c)
}

/// A signaling WebSocket client speaking JSON.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(http: SocketAddr) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{http}/rtc"))
            .await
            .expect("ws connects");
        Ws { stream }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::text(v.to_string()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        let _ = self.stream.send(m).await;
    }

    /// The next JSON message, skipping pings. `None` when the socket closed.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("a message within 10 s")?;
            match m.ok()? {
                Message::Text(t) => {
                    return Some(serde_json::from_str(&t).expect("server sends JSON"));
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Reads until a message of type `t` arrives; returns it.
    pub async fn expect(&mut self, t: &str) -> Value {
        loop {
            let m = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("socket closed while waiting for {t}"));
            if m["type"] == t {
                return m;
            }
        }
    }

    /// True if the server closes the socket within `d` (messages before that are skipped).
    /// The code of the close frame the server sends within `d`; `None` if none came (the
    /// connection dropped without one, or stayed open).
    pub async fn close_code_within(&mut self, d: Duration) -> Option<u16> {
        tokio::time::timeout(d, async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    None | Some(Err(_)) => return None,
                    _ => continue,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    pub async fn closes_within(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, async {
            loop {
                match self.stream.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    _ => continue,
                }
            }
        })
        .await
        .is_ok()
    }
}

/// Connects and joins; returns the socket and the `joined` message.
pub async fn join(http: SocketAddr, identity: &str, room: &str) -> (Ws, Value) {
    let mut ws = Ws::connect(http).await;
    ws.send(json!({"type": "join", "v": 1, "token": token(identity, room), "room": room}))
        .await;
    let joined = ws.expect("joined").await;
    (ws, joined)
}

/// A GET or DELETE against the REST API; returns status and JSON body (Null when empty).
pub async fn http(
    method: &str,
    http: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> (u16, Value) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    http_authorized(method, http, path, auth.as_deref()).await
}

/// Like [`http`], with this `Authorization` header value as it is.
pub async fn http_authorized(
    method: &str,
    http: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> (u16, Value) {
    http_request(method, http, path, authorization, None).await
}

/// A request with an optional `Authorization` value and JSON body; returns status and JSON body.
pub async fn http_request(
    method: &str,
    http: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(http).await.expect("tcp");
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let body = body
        .map(|b| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
        })
        .unwrap_or_else(|| "\r\n".into());
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {http}\r\n{auth}Connection: close\r\n{body}");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or(Value::Null),
    )
}

/// The Prometheus text of `/metrics`.
pub async fn metrics_text(http: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(http).await.expect("tcp");
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// Sum of a metric over its label sets.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What a demo page receives, from `window.ternDemo.inbound()`:
/// (max framesDecoded, max frameWidth, max totalAudioEnergy).
pub fn inbound_summary(v: &Value) -> (u64, u64, f64) {
    let max = |arr: &Value, key: &str| {
        arr.as_array().map_or(0.0, |a| {
            a.iter()
                .map(|s| s[key].as_f64().unwrap_or(0.0))
                .fold(0.0, f64::max)
        })
    };
    (
        max(&v["video"], "framesDecoded") as u64,
        max(&v["video"], "frameWidth") as u64,
        max(&v["audio"], "totalAudioEnergy"),
    )
}

/// The JavaScript that returns a demo page's inbound summary.
pub const INBOUND_JS: &str = "window.ternDemo ? window.ternDemo.inbound() : null";

/// Waits until a server answers `GET /healthz` with 200 (a bare TCP connect is not proof: polling
/// a free ephemeral port can connect to itself). False after `limit`.
pub async fn wait_healthy(http: SocketAddr, limit: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(http).await {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(req.as_bytes()).await;
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            if out.starts_with("HTTP/1.1 200") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Polls `done(subject)` every 50 ms until it holds; false once `limit` has passed.
pub async fn poll_until<T: ?Sized>(
    subject: &T,
    limit: Duration,
    mut done: impl FnMut(&T) -> bool,
) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if done(subject) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done(subject)
}
