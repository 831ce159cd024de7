//! Recording bench: CPU and memory per recording (composite and per-track), the lag from live
//! media to a durable object in storage, and how many composite recordings this machine keeps
//! up with in real time. A release `tern` process records rooms of two publishers (Rust clients
//! replaying real VP8 and Opus) into s3s-fs.
//!
//! cargo build --release -p tern-server && cargo run --release -p tern-benches --bin recording -- [most composite recordings at once, default 4]

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;
#[path = "shared/tern_process.rs"]
#[allow(dead_code)]
mod tern_process;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use str0m::media::MediaKind;

use common::media::{Media, Replay};
use common::recording::{api, sidecars_in, start, wait_state};
use common::rtc_client::RtcClient;
use common::s3::{ACCESS_KEY, BUCKET, S3, SECRET_KEY};
use tern_process::{start_server_env, usage};

/// Publishers replaying in the background until `stop`.
fn publish(http: std::net::SocketAddr, room: String, media: Media, stop: Arc<AtomicBool>) {
    for who in ["alice", "bob"] {
        let (room, media, stop) = (room.clone(), media.clone(), stop.clone());
        tokio::spawn(async move {
            let mut c = RtcClient::join(http, who, &room).await;
            let m = c.publish(&[MediaKind::Audio, MediaKind::Video]).await;
            let mut replay = Replay::new(&media, m[0], m[1]);
            while !stop.load(Ordering::Relaxed) {
                c.run_replaying(&mut replay, Duration::from_millis(200))
                    .await;
            }
        });
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds from the end of each segment's media to its object appearing in storage, sampled
/// by watching the bucket's directory while the recording runs.
async fn watch_lag(s3_dir: std::path::PathBuf, for_: Duration) -> Vec<(String, u64)> {
    let mut seen: Vec<(String, u64)> = Vec::new();
    let end = Instant::now() + for_;
    while Instant::now() < end {
        for entry in walk(&s3_dir) {
            if entry.contains("/part-") && !seen.iter().any(|(k, _)| *k == entry) {
                seen.push((entry, now_ms()));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if let Some(s) = p.to_str() {
            out.push(s.to_string());
        }
    }
    out
}

struct Run {
    tern_cores: f64,
    tern_base: f64,
    ffmpeg_cores: f64,
    tern_rss: f64,
    ffmpeg_rss: f64,
    lags: Vec<f64>,
    realtime: bool,
    files: Vec<Value>,
}

async fn scenario(n: usize, per_track: bool, media: &Media) -> Run {
    let s3 = S3::start().await;
    let spool = tempfile::tempdir().expect("spool");
    let endpoint = s3.endpoint();
    let spool_path = spool.path().to_string_lossy().to_string();
    let server = start_server_env(
        &[
            "--turn-enabled",
            "false",
            "--recording-storage",
            "s3",
            "--recording-bucket",
            BUCKET,
            "--recording-endpoint",
            &endpoint,
            "--recording-spool-dir",
            &spool_path,
            "--recording-max-concurrent",
            "64",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    )
    .await;
    let http = server.http;
    let tern_pid = server.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    for r in 0..n {
        publish(http, format!("bench{r}"), media.clone(), stop.clone());
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let tern = move || vec![tern_pid];
    let (tern_base, _) = usage(&tern, Duration::from_secs(8)).await;

    let body = if per_track {
        r#"{"per_track":true}"#
    } else {
        ""
    };
    let mut ids = Vec::new();
    for r in 0..n {
        let (status, rec) = start(http, &format!("bench{r}"), body).await;
        assert_eq!(status, 201, "{rec}");
        ids.push(rec["id"].as_str().expect("id").to_string());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lag_watch = tokio::spawn(watch_lag(
        s3.dir.path().to_path_buf(),
        Duration::from_secs(20),
    ));
    let (tern_cores, tern_rss) = usage(&tern, Duration::from_secs(20)).await;
    let spool_dir = spool.path().to_path_buf();
    let ffmpeg = move || sidecars_in(&spool_dir);
    let (ffmpeg_cores, ffmpeg_rss) = usage(&ffmpeg, Duration::from_secs(10)).await;
    let appeared = lag_watch.await.expect("lag watch");
    for id in &ids {
        api("POST", http, &format!("/api/v1/recordings/{id}/stop")).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut realtime = true;
    let mut lags = Vec::new();
    let mut files = Vec::new();
    for id in &ids {
        let rec = wait_state(http, id, "complete", Duration::from_secs(120)).await;
        let recorded = rec["duration_secs"].as_f64().unwrap_or(0.0);
        let played: f64 = rec["parts"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["duration_secs"].as_f64()).sum())
            .unwrap_or(0.0);
        let restarted = rec["parts"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["end"] == "sidecar_exited"));
        realtime &= rec["state"] == "complete" && !restarted && played >= recorded - 2.0;
        files.extend(rec["files"].as_array().cloned().unwrap_or_default());
        // Lag: the manifest has each segment's place on the wall clock.
        let manifest: Value = std::fs::read(s3.object(rec["manifest_key"].as_str().unwrap_or("")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        for part in manifest["parts"].as_array().into_iter().flatten() {
            let start = part["started_at_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
            for seg in part["segments"].as_array().into_iter().flatten() {
                let key = seg["key"].as_str().unwrap_or("");
                let media_end = start
                    + seg["start_secs"].as_f64().unwrap_or(0.0)
                    + seg["duration_secs"].as_f64().unwrap_or(0.0);
                if let Some((_, at)) = appeared.iter().find(|(p, _)| p.ends_with(key)) {
                    lags.push(*at as f64 / 1000.0 - media_end);
                }
            }
        }
    }
    // Keeping up means segments reach storage promptly: a sidecar that falls behind buffers
    // input (its memory grows) and finishes late, which a final duration alone would not show.
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    realtime &= sorted
        .get(sorted.len() / 2)
        .is_some_and(|median| *median < 1.0);
    drop(server);
    Run {
        tern_cores,
        tern_base,
        ffmpeg_cores,
        tern_rss,
        ffmpeg_rss,
        lags,
        realtime,
        files,
    }
}

fn report(label: &str, n: usize, r: &Run) {
    let mut lags = r.lags.clone();
    lags.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        lags.get(((lags.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{label} x{n}: tern {:.3} cores with recording(s) vs {:.3} without ({:.3} per recording), ffmpeg {:.3} cores ({:.3} per recording); RSS tern {:.1} MiB, ffmpeg {:.1} MiB ({:.1} per recording); segment end -> object in storage: median {:.2} s, max {:.2} s over {} segments; real time: {}",
        r.tern_cores,
        r.tern_base,
        (r.tern_cores - r.tern_base) / n as f64,
        r.ffmpeg_cores,
        r.ffmpeg_cores / n as f64,
        r.tern_rss,
        r.ffmpeg_rss,
        r.ffmpeg_rss / n as f64,
        pick(0.5),
        pick(1.0),
        lags.len(),
        if r.realtime { "yes" } else { "NO" }
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let most: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4);
    let media = Media::encode(6, "testsrc2", 440).await;
    println!(
        "two publishers per room, 640x360 VP8 at about 600 kbit/s and Opus each; 2-core machine"
    );
    let r = scenario(1, true, &media).await;
    report("per-track", 1, &r);
    for n in 1..=most {
        let r = scenario(n, false, &media).await;
        report("composite", n, &r);
        if n == 1 {
            println!(
                "  files: {}",
                serde_json::to_string(&r.files).unwrap_or_default()
            );
        }
        if !r.realtime {
            println!(
                "composite x{n} fell behind real time: the machine keeps up with {} at once",
                n - 1
            );
            break;
        }
    }
}
