//! Broadcast bench: latency, and the cost of the ladder. A release `tern` process broadcasts
//! rooms of one publisher (a Rust client replaying real VP8 and Opus).
//!
//! - Latency: the publisher's picture turns from black to white every 9.4 s. For each flash: when
//!   the first segment showing it is published in tern's playlist (the live edge), and when
//!   hls.js in headless Chromium, playing the watch page, presents the first white frame
//!   (glass to glass, without a camera's own capture delay). Both from the moment the publisher
//!   sent the first white frame, on this machine's one clock.
//! - Cost: CPU and RSS of the ladder ffmpeg (720p/360p/180p) and of tern per broadcast, and how
//!   many broadcasts this machine keeps publishing in real time.
//!
//! cargo build --release -p tern-server && cargo run --release -p tern-benches --bin broadcast -- [most broadcasts at once, default 4]

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;
#[path = "shared/tern_process.rs"]
#[allow(dead_code)]
mod tern_process;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use str0m::media::MediaKind;

use common::broadcast::{fetch, playlist, start, uris, wait_state};
use common::browser::Browser;
use common::media::{Media, Replay};
use common::recording::{api, ffmpeg_in};
use common::rtc_client::RtcClient;
use tern_process::{start_server_env, usage};

/// The flash media: black, then white from this second of each loop.
const FLASH_AT: f64 = 4.7;
/// The flash media's length: not a multiple of the segment length, so the flashes fall at every
/// point of a segment.
const LOOP_SECS: f64 = 9.4;

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A publisher replaying `media` in `room` until `stop`; returns the wall time its replay
/// started.
async fn publish(http: SocketAddr, room: &str, media: &Media, stop: Arc<AtomicBool>) -> SystemTime {
    let mut c = RtcClient::join(http, "alice", room).await;
    let m = c.publish(&[MediaKind::Audio, MediaKind::Video]).await;
    let mut replay = Replay::new(media, m[0], m[1]);
    let started = SystemTime::now();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            c.run_replaying(&mut replay, Duration::from_millis(200))
                .await;
        }
    });
    started
}

/// Per-frame mean brightness of a segment (with its init), decoded at 8x8 in gray.
fn frame_means(http: SocketAddr, id: &str, init: &str, seg: &str) -> Vec<f64> {
    let mut bytes = fetch(http, &format!("/hls/{id}/180p/{init}")).2;
    bytes.extend(fetch(http, &format!("/hls/{id}/180p/{seg}")).2);
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &bytes).expect("write");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file.path())
        .args(["-vf", "scale=8:8,format=gray", "-f", "rawvideo", "-"])
        .output()
        .expect("ffmpeg runs");
    out.stdout
        .chunks(64)
        .map(|f| f.iter().map(|b| f64::from(*b)).sum::<f64>() / 64.0)
        .collect()
}

/// Watches the 180p playlist for `d`: the wall time at which each segment whose frames turn
/// from dark to bright was first listed.
async fn watch_edge(http: SocketAddr, id: String, d: Duration) -> Vec<f64> {
    let mut seen: Vec<String> = Vec::new();
    let mut bright = true;
    let mut flashes = Vec::new();
    let end = Instant::now() + d;
    while Instant::now() < end {
        let text = playlist(http, &format!("/hls/{id}/180p/index.m3u8"));
        let listed_at = unix_secs(SystemTime::now());
        let named = uris(&text);
        let init = named.iter().rfind(|u| u.starts_with("init-")).cloned();
        for seg in named.iter().filter(|u| u.starts_with("seg-")) {
            if seen.contains(seg) {
                continue;
            }
            seen.push(seg.clone());
            let Some(init) = &init else { continue };
            for m in frame_means(http, &id, init, seg) {
                let now_bright = m > 128.0;
                if now_bright && !bright && seen.len() > 1 {
                    flashes.push(listed_at);
                }
                bright = now_bright;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flashes
}

/// The JavaScript that records, in `window.flashes`, the wall time (ms) at which each frame
/// that turns the picture from dark to bright is presented.
const FLASH_JS: &str = "(() => { const v = window.ternWatch.video; const c = document.createElement('canvas'); \
c.width = 8; c.height = 8; const g = c.getContext('2d', { willReadFrequently: true }); \
window.flashes = []; let bright = true; \
const step = (now, meta) => { g.drawImage(v, 0, 0, 8, 8); const d = g.getImageData(0, 0, 8, 8).data; \
let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; const b = s / 64 > 128; \
if (b && !bright) window.flashes.push(performance.timeOrigin + meta.expectedDisplayTime); \
bright = b; v.requestVideoFrameCallback(step); }; \
v.requestVideoFrameCallback(step); return true; })()";

/// For each observed time, its delay after the latest flash the publisher sent before it.
fn delays(sent_from: SystemTime, observed: &[f64]) -> Vec<f64> {
    let start = unix_secs(sent_from);
    observed
        .iter()
        .filter_map(|t| {
            let k = ((t - start - FLASH_AT) / LOOP_SECS).floor();
            (k >= 0.0).then(|| t - (start + FLASH_AT + k * LOOP_SECS))
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A release tern broadcasting into temporary directories (kept while it runs).
async fn broadcasting_server() -> (tern_process::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let (spool, store) = (dir.path().join("spool"), dir.path().join("store"));
    let (spool, store) = (spool.to_string_lossy(), store.to_string_lossy());
    let args = [
        "--turn-enabled",
        "false",
        "--recording-local-dir",
        &store,
        "--broadcast-spool-dir",
        &spool,
        "--broadcast-max-concurrent",
        "64",
    ];
    (start_server_env(&args, &[]).await, dir)
}

async fn latency() {
    let flash = Media::encode_lavfi(
        LOOP_SECS,
        "color=c=black:s=640x360:r=30:d=4.7[a];color=c=white:s=640x360:r=30:d=4.7[b];[a][b]concat",
        440,
    )
    .await;
    let (server, _dir) = broadcasting_server().await;
    let http = server.http;
    let stop = Arc::new(AtomicBool::new(false));
    let sent_from = publish(http, "flash", &flash, stop.clone()).await;
    let (status, b) = start(http, "flash", "").await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("id").to_string();
    let live = wait_state(http, &id, "live", Duration::from_secs(30)).await;
    assert_eq!(live["state"], "live", "{live}");
    let mut browser = Browser::launch().await;
    let page = browser.open(&format!("http://{http}/watch/flash")).await;
    let end = Instant::now() + Duration::from_secs(30);
    while browser
        .eval(&page, "window.ternWatch && window.ternWatch.started")
        .await
        != Value::Bool(true)
    {
        assert!(Instant::now() < end, "the watch page plays");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.eval(&page, FLASH_JS).await;
    let run = Duration::from_secs(62);
    let edge = watch_edge(http, id.clone(), run).await;
    let shown: Vec<f64> = browser
        .eval(&page, "window.flashes")
        .await
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_f64())
                .map(|ms| ms / 1000.0)
                .collect()
        })
        .unwrap_or_default();
    let stalls = browser.eval(&page, "window.ternWatch.stalls").await;
    stop.store(true, Ordering::Relaxed);
    let (edge, shown) = (delays(sent_from, &edge), delays(sent_from, &shown));
    println!(
        "latency with {}-s segments: flash -> its segment in the playlist: median {:.2} s (n={}, {:?}); flash -> hls.js presents it in Chromium (glass to glass): median {:.2} s (n={}, {:?}); stalls while measuring: {stalls}",
        live["segment_secs"],
        median(&edge),
        edge.len(),
        edge.iter()
            .map(|d| (d * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        median(&shown),
        shown.len(),
        shown
            .iter()
            .map(|d| (d * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
    );
    browser.close(&page).await;
    drop(server);
}

/// Runs `n` broadcasts; returns whether each kept publishing in real time.
async fn cost(n: usize, media: &Media) -> bool {
    let (server, dir) = broadcasting_server().await;
    let http = server.http;
    let tern_pid = server.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    for r in 0..n {
        publish(http, &format!("bench{r}"), media, stop.clone()).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tern = move || vec![tern_pid];
    let (tern_base, _) = usage(&tern, Duration::from_secs(6)).await;
    let mut ids = Vec::new();
    for r in 0..n {
        let (status, b) = start(http, &format!("bench{r}"), "").await;
        assert_eq!(status, 201, "{b}");
        ids.push(b["id"].as_str().expect("id").to_string());
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    let segments = |bs: &[Value]| {
        bs.iter()
            .map(|b| b["segments"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let mut before = Vec::new();
    for id in &ids {
        before.push(
            api("GET", http, &format!("/api/v1/broadcasts/{id}"))
                .await
                .1,
        );
    }
    let window = Instant::now();
    let (tern_cores, tern_rss) = usage(&tern, Duration::from_secs(10)).await;
    let spool_dir = dir.path().join("spool");
    let ffmpeg = move || ffmpeg_in(&spool_dir, "hls");
    let (ffmpeg_cores, ffmpeg_rss) = usage(&ffmpeg, Duration::from_secs(10)).await;
    let secs = window.elapsed().as_secs_f64();
    let mut after = Vec::new();
    for id in &ids {
        after.push(
            api("GET", http, &format!("/api/v1/broadcasts/{id}"))
                .await
                .1,
        );
    }
    let made: Vec<u64> = segments(&after)
        .iter()
        .zip(segments(&before))
        .map(|(a, b)| a.saturating_sub(b))
        .collect();
    let restarts: u64 = after
        .iter()
        .map(|b| b["restarts"].as_u64().unwrap_or(0))
        .sum();
    // Real time: every broadcast published about one 2-s segment per 2 s, with no restart.
    let due = secs / 2.0;
    let realtime = restarts == 0 && made.iter().all(|m| *m as f64 >= due * 0.9);
    println!(
        "x{n}: ladder ffmpeg {:.3} cores ({:.3} per broadcast), RSS {:.1} MiB ({:.1} per broadcast); tern {:.3} cores with the broadcasts vs {:.3} without ({:.3} per broadcast), RSS {:.1} MiB; segments per broadcast in {:.0} s: {:?} (due {:.1}); restarts {restarts}; real time: {}",
        ffmpeg_cores,
        ffmpeg_cores / n as f64,
        ffmpeg_rss,
        ffmpeg_rss / n as f64,
        tern_cores,
        tern_base,
        (tern_cores - tern_base) / n as f64,
        tern_rss,
        secs,
        made,
        due,
        if realtime { "yes" } else { "NO" }
    );
    stop.store(true, Ordering::Relaxed);
    drop(server);
    realtime
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let most: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4);
    println!(
        "one publisher per room, 640x360 VP8 at about 600 kbit/s and Opus; speaker layout; ladder 720p/360p/180p; 2-core machine"
    );
    latency().await;
    let media = Media::encode(6, "testsrc2", 440).await;
    for n in 1..=most {
        if !cost(n, &media).await {
            println!(
                "x{n} fell behind real time: the machine keeps up with {} at once",
                n - 1
            );
            break;
        }
    }
}
