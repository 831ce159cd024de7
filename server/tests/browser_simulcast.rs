//! Browser end to end with simulcast: alice's demo page sends her 1280x720 fake camera as three
//! layers; bob's demo page receives the layer his tile of alice needs, and resizing the tile
//! switches layers without a freeze.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};
use serde_json::Value;

/// One of these tests at a time: each runs two pages encoding and decoding 720p in three
/// layers, and two such browsers at once starve each other of this machine's two cores (a
/// frame held back by a starved decoder counts as a freeze that tern did not cause).
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bob's inbound video from alice: (frameWidth, framesDecoded, freezeCount).
const INBOUND_VIDEO: &str = r#"(async () => {
  const c = window.ternDemo && window.ternDemo.client;
  if (!c) return null;
  let out = null;
  (await c.receiveStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded || 0) > 0)
      out = [s.frameWidth || 0, s.framesDecoded || 0, s.freezeCount || 0];
  });
  return out;
})()"#;

/// Alice's outbound video: bytes sent per rid.
const OUTBOUND_RIDS: &str = r#"(async () => {
  const c = window.ternDemo && window.ternDemo.client;
  if (!c) return {};
  const out = {};
  (await c.sendStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid || 'none'] = s.bytesSent || 0;
  });
  return out;
})()"#;

async fn inbound(browser: &mut Browser, page: &Page) -> Option<(u64, u64, u64)> {
    let v = browser.eval(page, INBOUND_VIDEO).await;
    let n = |i: usize| v.get(i).and_then(Value::as_u64).unwrap_or(0);
    v.is_array().then(|| (n(0), n(1), n(2)))
}

/// Waits until bob's decoded width satisfies `ok` and frames keep decoding; returns the last
/// reading.
async fn wait_for_width(
    browser: &mut Browser,
    bob: &Page,
    within: Duration,
    what: &str,
    ok: impl Fn(u64) -> bool,
) -> (u64, u64, u64) {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some(now) = inbound(browser, bob).await {
            let decoding = last.is_some_and(|(_, frames, _): (u64, u64, u64)| now.1 > frames);
            if ok(now.0) && decoding {
                return now;
            }
            last = Some(now);
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}: last (frameWidth, framesDecoded, freezeCount) = {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tile_gets_the_layer_its_size_needs_and_resizing_causes_no_freeze() {
    let _one = ONE_BROWSER.lock().await;
    let server = common::server_with(|c| c.auth.keys.clear()).await; // development mode
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let alice = browser.open(&format!("{base}/?room=sim&name=alice")).await;
    let bob = browser.open(&format!("{base}/?room=sim&name=bob")).await;

    // Bob shows alice large: alice's browser sends all three layers.
    wait_for_width(
        &mut browser,
        &bob,
        Duration::from_secs(30),
        "bob sees alice",
        |w| w > 0,
    )
    .await;
    browser
        .eval(&bob, &common::browser::resize_remote_tiles(1280, 720))
        .await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let rids = browser.eval(&alice, OUTBOUND_RIDS).await;
        let sending = |rid: &str| rids[rid].as_u64().unwrap_or(0) > 0;
        if sending("q") && sending("h") && sending("f") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice sends rids q, h and f: {rids}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A small tile: at most the quarter layer's 320 px.
    browser
        .eval(&bob, &common::browser::resize_remote_tiles(240, 135))
        .await;
    let small = wait_for_width(
        &mut browser,
        &bob,
        Duration::from_secs(30),
        "a small tile",
        |w| w > 0 && w <= 320,
    )
    .await;
    // Hold it a while: it stays small.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = inbound(&mut browser, &bob).await.expect("video");
    assert!(
        held.0 <= 320,
        "the small tile stays on the quarter layer: {held:?}"
    );

    // A large tile: the full layer (allowing for the publisher's bandwidth ramp).
    browser
        .eval(&bob, &common::browser::resize_remote_tiles(1280, 720))
        .await;
    let large = wait_for_width(
        &mut browser,
        &bob,
        Duration::from_secs(40),
        "a large tile",
        |w| w >= 1280,
    )
    .await;
    // And back to small.
    browser
        .eval(&bob, &common::browser::resize_remote_tiles(240, 135))
        .await;
    let back = wait_for_width(
        &mut browser,
        &bob,
        Duration::from_secs(20),
        "small again",
        |w| w > 0 && w <= 320,
    )
    .await;
    assert_eq!(
        back.2, small.2,
        "no freeze across the switches: freezeCount small {small:?}, large {large:?}, back {back:?}"
    );

    // On demand, the tile shows what it receives: the layer, its size and bitrate, the estimate.
    browser
        .eval(&bob, "document.getElementById('stats').click(); true")
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let overlay = browser
        .eval(
            &bob,
            "[...document.querySelectorAll('.tile .stats')].map((s) => s.textContent).join(' / ')",
        )
        .await;
    let text = overlay.as_str().unwrap_or_default();
    assert!(
        text.contains("layer q")
            && text.contains("320x180")
            && text.contains("kbit/s")
            && text.contains("estimate"),
        "the stats overlay shows layer, size, bitrate and estimate: {text:?}"
    );
}

/// Alice's bytes sent on rid `rid`.
async fn sent(browser: &mut Browser, alice: &Page, rid: &str) -> u64 {
    browser.eval(alice, OUTBOUND_RIDS).await[rid]
        .as_u64()
        .unwrap_or(0)
}

/// How much alice sends on `rid` over `d`.
async fn sent_during(browser: &mut Browser, alice: &Page, rid: &str, d: Duration) -> u64 {
    let before = sent(browser, alice, rid).await;
    tokio::time::sleep(d).await;
    sent(browser, alice, rid).await.saturating_sub(before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynacast_stops_the_full_layer_nobody_watches_and_resumes_it_for_a_large_tile() {
    let _one = ONE_BROWSER.lock().await;
    let server = common::server_with(|c| c.auth.keys.clear()).await; // development mode
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let alice = browser.open(&format!("{base}/?room=dyn&name=alice")).await;
    let bob = browser.open(&format!("{base}/?room=dyn&name=bob")).await;
    wait_for_width(
        &mut browser,
        &bob,
        Duration::from_secs(30),
        "bob sees alice",
        |w| w > 0,
    )
    .await;
    browser
        .eval(&bob, &common::browser::resize_remote_tiles(240, 135))
        .await;
    wait_for_width(
        &mut browser,
        &bob,
        Duration::from_secs(30),
        "a small tile",
        |w| w > 0 && w <= 320,
    )
    .await;

    // Only a small tile watches alice: within a few seconds her `f` encoding stops.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let grew = sent_during(&mut browser, &alice, "f", Duration::from_secs(1)).await;
        if grew == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice still sends rid f ({grew} bytes a second) with nobody watching it"
        );
    }
    let quiet = sent_during(&mut browser, &alice, "f", Duration::from_secs(2)).await;
    assert_eq!(quiet, 0, "rid f stays off");
    assert!(
        sent_during(&mut browser, &alice, "q", Duration::from_secs(1)).await > 0,
        "the quarter layer bob watches keeps going"
    );

    // A large tile: `f` comes back, and bob gets it.
    browser
        .eval(&bob, &common::browser::resize_remote_tiles(1280, 720))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if sent_during(&mut browser, &alice, "f", Duration::from_millis(500)).await > 10_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice's rid f did not resume for a large tile"
        );
    }
    wait_for_width(
        &mut browser,
        &bob,
        Duration::from_secs(40),
        "the large tile",
        |w| w >= 1280,
    )
    .await;
}
