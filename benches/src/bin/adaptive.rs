//! Browser bench of adaptive media, headless Chromium on loopback with the demo page (simulcast
//! camera, 1280x720 fake device):
//! - time from a viewer's connect to its first frame of the full (1280 px) layer, its tile large;
//! - time for a resized tile to get the layer it needs (small to large, large to small);
//! - uplink saved by dynacast in a 4-person meeting where everyone shows the others in small
//!   tiles: everyone's outbound video bit rate just after the tiles shrank (all layers still
//!   sent) and once dynacast has turned the unwatched layers off.
//!
//! cargo run --release -p tern-benches --bin adaptive -- [joins, default 5]

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};
use tern_benches::summary;

/// The viewer's widest decoded video and its connect time (`performance.now()` ms).
const WIDTH: &str = "(async () => { const c = window.ternDemo?.client; if (!c) return null; let w = 0; (await c.receiveStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') w = Math.max(w, s.frameWidth || 0); }); return [w, c.marks.connectStart, performance.now()]; })()";

/// The page's outbound video bytes per rid.
const SENT: &str = "(async () => { const c = window.ternDemo?.client; const out = {}; if (!c) return out; (await c.sendStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid || '-'] = s.bytesSent || 0; }); return out; })()";

/// Waits until the page decodes video satisfying `ok`; returns (page time ms, connect mark).
async fn wait_width(browser: &mut Browser, page: &Page, ok: impl Fn(u64) -> bool) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = browser.eval(page, WIDTH).await;
        if let (Some(w), Some(start), Some(now)) = (v[0].as_u64(), v[1].as_f64(), v[2].as_f64())
            && ok(w)
        {
            return (now, start);
        }
        assert!(Instant::now() < deadline, "no such video within 60 s: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Page time (ms) now.
async fn page_now(browser: &mut Browser, page: &Page) -> f64 {
    browser
        .eval(page, "performance.now()")
        .await
        .as_f64()
        .unwrap_or(0.0)
}

/// Everyone's outbound video over `d`, in kbit/s: the total, and per rid summed over pages.
async fn sent_kbps(
    browser: &mut Browser,
    pages: &[Page],
    d: Duration,
) -> (f64, Vec<(String, f64)>) {
    let mut before = Vec::new();
    for p in pages {
        before.push(browser.eval(p, SENT).await);
    }
    tokio::time::sleep(d).await;
    let mut per_rid: Vec<(String, f64)> = Vec::new();
    for (p, b) in pages.iter().zip(before) {
        let after = browser.eval(p, SENT).await;
        for (rid, bytes) in after.as_object().into_iter().flatten() {
            let grew = bytes.as_f64().unwrap_or(0.0) - b[rid].as_f64().unwrap_or(0.0);
            let kbps = grew * 8.0 / d.as_secs_f64() / 1000.0;
            match per_rid.iter_mut().find(|(r, _)| r == rid) {
                Some((_, k)) => *k += kbps,
                None => per_rid.push((rid.clone(), kbps)),
            }
        }
    }
    per_rid.sort_by(|a, b| a.0.cmp(&b.0));
    (per_rid.iter().map(|(_, k)| k).sum(), per_rid)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let joins: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let server = common::server_with(|c| c.auth.keys.clear()).await;
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let publisher = browser
        .open(&format!("{base}/?room=ad&name=publisher"))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let (mut to_full, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..joins {
        let viewer = browser
            .open(&format!("{base}/?room=ad&name=viewer{i}"))
            .await;
        // As soon as the tile exists, it is large.
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser
            .eval(&viewer, &common::browser::resize_remote_tiles(1280, 720))
            .await
            .as_u64()
            < Some(2)
        {
            let status = browser
                .eval(&viewer, "JSON.stringify([document.getElementById('status').textContent, [...document.querySelectorAll('.tile')].map(t => t.dataset.participant), [...window.ternDemo.client.participants.keys()]])")
                .await;
            assert!(Instant::now() < deadline, "viewer {i}: no tile ({status})");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (at, start) = wait_width(&mut browser, &viewer, |w| w >= 1280).await;
        to_full.push(at - start);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = page_now(&mut browser, &viewer).await;
        browser
            .eval(&viewer, &common::browser::resize_remote_tiles(240, 135))
            .await;
        down.push(
            wait_width(&mut browser, &viewer, |w| w > 0 && w <= 320)
                .await
                .0
                - t,
        );
        // Longer than dynacast's 3 s: the full layer is off and must come back.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = page_now(&mut browser, &viewer).await;
        browser
            .eval(&viewer, &common::browser::resize_remote_tiles(1280, 720))
            .await;
        up.push(wait_width(&mut browser, &viewer, |w| w >= 1280).await.0 - t);
        browser.close(&viewer).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    summary("connect to the full layer, large tile", to_full);
    summary("resize large to small, to the quarter layer", down);
    summary(
        "resize small to large after dynacast turned f off, to the full layer",
        up,
    );

    // A 4-person meeting, everyone showing the others small.
    let mut pages = vec![publisher];
    for i in 0..3 {
        pages.push(browser.open(&format!("{base}/?room=ad&name=p{i}")).await);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Large tiles first, so every layer is wanted and sent; then everyone shrinks the others.
    for p in &pages {
        browser
            .eval(p, &common::browser::resize_remote_tiles(1280, 720))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    for p in &pages {
        browser
            .eval(p, &common::browser::resize_remote_tiles(240, 135))
            .await;
    }
    let (all_layers, all_rids) = sent_kbps(&mut browser, &pages, Duration::from_millis(2500)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (dynacast, dyn_rids) = sent_kbps(&mut browser, &pages, Duration::from_secs(5)).await;
    println!(
        "4-person meeting, small tiles: uplink video {all_layers:.0} kbit/s with every layer \
         ({all_rids:.0?}), {dynacast:.0} kbit/s with dynacast ({dyn_rids:.0?}): {:.0} % saved",
        100.0 * (1.0 - dynacast / all_layers)
    );
    server.shutdown();
}
