//! Helpers of the broadcast tests: REST calls, fetching what tern serves, reading playlists.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The ladder sidecars (ffmpeg writing HLS) whose command line names `dir`.
pub fn ladder_sidecars(dir: &std::path::Path) -> Vec<u32> {
    super::recording::ffmpeg_in(dir, "hls")
}

/// A server whose broadcasts (and recordings) go to temporary local directories; with its
/// broadcast spool and its store. The room `room` has `alice` publishing `media`.
pub async fn local_server_with_publisher(
    room: &str,
    media: &super::media::Media,
) -> (
    tern_server::Running,
    tempfile::TempDir,
    tempfile::TempDir,
    super::rtc_client::RtcClient,
    super::media::Replay,
) {
    let store = tempfile::tempdir().expect("store");
    let spool = tempfile::tempdir().expect("spool");
    let server = super::server_with(|c| {
        c.recording.storage.local_dir = store.path().into();
        c.broadcast.spool_dir = spool.path().into();
    })
    .await;
    let (alice, replay) = super::recording::publisher(server.http_addr, "alice", room, media).await;
    (server, spool, store, alice, replay)
}

/// Starts a broadcast of `room` with this JSON body ("" for none).
pub async fn start(http: SocketAddr, room: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {}", super::admin_token());
    let path = format!("/api/v1/rooms/{room}/broadcasts");
    let body = (!body.is_empty()).then_some(body);
    super::http_request("POST", http, &path, Some(&auth), body).await
}

/// Polls a broadcast until its state is `state`, up to `limit`; returns it as last seen.
pub async fn wait_state(http: SocketAddr, id: &str, state: &str, limit: Duration) -> Value {
    let end = Instant::now() + limit;
    loop {
        let path = format!("/api/v1/broadcasts/{id}");
        let (_, b) = super::http("GET", http, &path, Some(&super::admin_token())).await;
        if b["state"] == state || Instant::now() > end {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A GET without credentials, as a player sends it: status, headers (lowercased names) and body.
pub fn fetch(http: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "--max-time",
            "10",
            &format!("http://{http}{path}"),
        ])
        .output()
        .expect("curl runs");
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

/// A header's value.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A playlist's text, fetched from tern.
pub fn playlist(http: SocketAddr, path: &str) -> String {
    let (status, _, body) = fetch(http, path);
    assert_eq!(status, 200, "{path}");
    String::from_utf8(body).expect("UTF-8 playlist")
}

/// The value of every line of `text` starting with `tag`.
pub fn tag_values<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines().filter_map(|l| l.strip_prefix(tag)).collect()
}

/// The URIs a media playlist names: its init segments and media segments.
pub fn uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(m) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            out.push(m.trim_end_matches('"').to_string());
        } else if !l.starts_with('#') && !l.is_empty() {
            out.push(l.to_string());
        }
    }
    out
}
