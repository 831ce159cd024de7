//! Browser bench: time from WebSocket connect to the first decoded (presented) video frame in
//! headless Chromium on loopback, joining a room where one participant has been publishing for
//! five seconds. Viewers join one after another, each leaving before the next comes.
//!
//! cargo run --release -p tern-benches --bin first_frame -- [runs, default 10]

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;

/// The steps of a join that `tern-client.js` marks, in order.
const STEPS: [&str; 6] = [
    "wsOpen",
    "joined",
    "offerArrived",
    "subscriberOffer",
    "subscriberAnswer",
    "subscriberConnected",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let server = common::server_with(|c| c.auth.keys.clear()).await;
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let publisher = browser
        .open(&format!("{base}/?room=ff&name=publisher"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser
        .eval(&publisher, "window.ternDemo?.client?.ownTracks?.size ?? 0")
        .await
        .as_u64()
        != Some(2)
    {
        assert!(Instant::now() < deadline, "the publisher did not publish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The publisher has been sending for a while when the viewers come, as in a meeting.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut times = Vec::new();
    // When each step of a join happened, from connect (ms).
    let mut steps: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
    for i in 0..runs {
        let viewer = browser
            .open(&format!("{base}/?room=ff&name=viewer{i}"))
            .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let ms = loop {
            let m = browser.eval(&viewer, "window.ternDemo?.marks?.()").await;
            if let (Some(first), Some(start)) =
                (m["firstFrame"].as_f64(), m["connectStart"].as_f64())
            {
                for (i, step) in STEPS.iter().enumerate() {
                    if let Some(t) = m[step].as_f64() {
                        steps[i].push(t - start);
                    }
                }
                break first - start;
            }
            assert!(Instant::now() < deadline, "viewer {i} saw no frame: {m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        times.push(ms);
        browser.close(&viewer).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (step, mut v) in STEPS.iter().zip(steps) {
        v.sort_by(f64::total_cmp);
        if let Some(median) = v.get(v.len() / 2) {
            println!("{step}: median {median:.0} ms after connect");
        }
    }
    times.sort_by(f64::total_cmp);
    println!("connect-to-first-frame over {runs} joins (ms): {times:.0?}");
    println!(
        "median {:.0} ms, min {:.0} ms, max {:.0} ms",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    server.shutdown();
}
