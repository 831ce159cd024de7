//! Helpers of the recording tests: the REST calls, waiting for a state, and looking at media
//! files with ffprobe and ffmpeg.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use serde_json::Value;
use str0m::media::MediaKind;
use tempfile::TempDir;
use tern_server::Running;
use tern_server::config::Config;

use super::media::{Media, Replay};
use super::rtc_client::RtcClient;
use super::s3::S3;

/// A server that records into a temporary local store; with its spool and store directories.
pub async fn local_server(change: impl FnOnce(&mut Config)) -> (Running, TempDir, TempDir) {
    let spool = tempfile::tempdir().expect("spool");
    let store = tempfile::tempdir().expect("store");
    let server = super::server_with(|c| {
        c.recording.spool_dir = spool.path().into();
        c.recording.storage.local_dir = store.path().into();
        change(c);
    })
    .await;
    (server, spool, store)
}

/// A server that records into `s3`; with its spool directory.
pub async fn s3_server(s3: &S3, change: impl FnOnce(&mut Config)) -> (Running, TempDir) {
    let spool = tempfile::tempdir().expect("spool");
    let server = super::server_with(|c| {
        s3.configure(c);
        c.recording.spool_dir = spool.path().into();
        change(c);
    })
    .await;
    (server, spool)
}

/// Joins `identity` to `room`, publishes camera and microphone and replays `media` for a second.
pub async fn publisher(
    http: SocketAddr,
    identity: &str,
    room: &str,
    media: &Media,
) -> (RtcClient, Replay) {
    let mut c = RtcClient::join(http, identity, room).await;
    let m = c.publish(&[MediaKind::Audio, MediaKind::Video]).await;
    let mut replay = Replay::new(media, m[0], m[1]);
    c.run_replaying(&mut replay, Duration::from_secs(1)).await;
    (c, replay)
}

/// Starts a recording of `room` that must be accepted; returns its id.
pub async fn start_ok(http: SocketAddr, room: &str, body: &str) -> String {
    let (status, rec) = start(http, room, body).await;
    assert_eq!(status, 201, "{rec}");
    rec["id"].as_str().expect("an id").to_string()
}

/// The manifest of `rec` in `s3`, after checking that every segment and file it names is there
/// with its checksum; returns it and how many segments it names.
pub fn checked_manifest(s3: &S3, rec: &Value) -> (Value, usize) {
    let key = rec["manifest_key"].as_str().expect("a manifest key");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(s3.object(key)).expect("manifest in the bucket"))
            .expect("manifest JSON");
    let mut segments = 0;
    for part in manifest["parts"].as_array().expect("parts") {
        for seg in part["segments"].as_array().expect("segments") {
            let object = s3.object(seg["key"].as_str().expect("key"));
            assert_eq!(
                sha256_hex(&object),
                seg["sha256"].as_str().expect("sha"),
                "{seg}"
            );
            segments += 1;
        }
    }
    for file in manifest["files"].as_array().expect("files") {
        let object = s3.object(file["key"].as_str().expect("key"));
        assert_eq!(
            sha256_hex(&object),
            file["sha256"].as_str().expect("sha"),
            "{file}"
        );
    }
    (manifest, segments)
}

/// Starts a recording of `room` with this JSON body ("" for none).
pub async fn start(http: SocketAddr, room: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {}", super::admin_token());
    super::http_request(
        "POST",
        http,
        &format!("/api/v1/rooms/{room}/recordings"),
        Some(&auth),
        (!body.is_empty()).then_some(body),
    )
    .await
}

/// A REST call with the admin token.
pub async fn api(method: &str, http: SocketAddr, path: &str) -> (u16, Value) {
    super::http(method, http, path, Some(&super::admin_token())).await
}

/// Polls a recording until its state is `state`, up to `limit`; returns it as last seen.
pub async fn wait_state(http: SocketAddr, id: &str, state: &str, limit: Duration) -> Value {
    let end = Instant::now() + limit;
    loop {
        let (_, rec) = api("GET", http, &format!("/api/v1/recordings/{id}")).await;
        if rec["state"] == state || Instant::now() > end {
            return rec;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ffprobe's JSON of a file.
pub fn probe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// The codec of each stream of a probed file.
pub fn codecs(probed: &Value) -> Vec<String> {
    probed["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["codec_name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The duration of a probed file, seconds.
pub fn duration(probed: &Value) -> f64 {
    probed["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0)
}

/// The errors ffmpeg reports decoding the whole file (empty: clean). Frames keep their own
/// timestamps (`-fps_mode passthrough`, the file's time base): the null muxer's default retiming
/// to a frame-rate grid would report its own rounding of variable frame timing (what cameras and
/// stalled senders produce) as "non monotonically increasing dts", which is not a decoding error.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The process ids of ffmpeg sidecars whose command line names `dir` (recording sidecars).
pub fn sidecars_in(dir: &Path) -> Vec<u32> {
    ffmpeg_in(dir, "segment")
}

/// The process ids of ffmpeg processes whose command line names `dir` and `marker`.
pub fn ffmpeg_in(dir: &Path, marker: &str) -> Vec<u32> {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("ffmpeg") && c.contains(&needle) && c.contains(marker)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The SHA-256 of bytes, hex (with the system's sha256sum).
pub fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The complete segments the spool holds for recording `id` (those their part's list names):
/// `part-NNN/file` and its SHA-256, to compare with what reaches storage.
pub fn listed_in_spool(spool: &std::path::Path, id: &str) -> HashMap<String, String> {
    let mut spooled = HashMap::new();
    for part in std::fs::read_dir(spool.join(id))
        .expect("spool dir")
        .flatten()
    {
        let list = std::fs::read_to_string(part.path().join("composite.csv")).unwrap_or_default();
        for line in list.lines() {
            let name = line.split(',').next().unwrap_or_default();
            let key = format!("{}/{name}", part.file_name().to_string_lossy());
            spooled.insert(key, sha256_hex(&part.path().join(name)));
        }
    }
    spooled
}

/// Checks that each of `spooled` is in `s3` under `rec`'s prefix, byte for byte.
pub fn assert_uploaded(s3: &S3, rec: &Value, spooled: &HashMap<String, String>) {
    let prefix = rec["manifest_key"]
        .as_str()
        .and_then(|k| k.strip_suffix("/manifest.json"))
        .expect("prefix");
    for (key, sha) in spooled {
        let object = s3.object(&format!("{prefix}/{key}"));
        assert!(object.exists(), "{key} reached storage");
        assert_eq!(&sha256_hex(&object), sha, "{key} is byte-identical");
    }
}
