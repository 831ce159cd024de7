//! Browser end to end: the demo's meeting view in headless Chromium, three people in a room.
//! The tiles fill the window without scrolling, on a desktop window and on a phone-sized one;
//! the people list names everyone; every tile shows a connection-quality level; the invite
//! link is the room's address.

mod common;

use std::time::Duration;

use serde_json::json;

use common::browser::{Browser, Page};

/// The page's tiles (key, width, height, quality) and its grid's size and scroll extent.
const LAYOUT: &str = "(() => { const g = document.getElementById('grid').getBoundingClientRect(); \
    const grid = document.getElementById('grid'); \
    return { tiles: window.ternDemo.tiles(), width: g.width, height: g.height, \
             scrollWidth: grid.scrollWidth, scrollHeight: grid.scrollHeight, \
             clientWidth: grid.clientWidth, clientHeight: grid.clientHeight, \
             pageScroll: document.documentElement.scrollHeight > window.innerHeight }; })()";

/// Checks that the tiles fill the grid: nothing scrolls, each tile is inside it, and together
/// they cover at least `share` of it.
async fn assert_fills(browser: &mut Browser, page: &Page, share: f64, what: &str) {
    let v = browser.eval(page, LAYOUT).await;
    let n = |k: &str| v[k].as_f64().unwrap_or(0.0);
    assert!(
        n("scrollHeight") <= n("clientHeight") + 1.0,
        "{what}: the grid scrolls: {v}"
    );
    assert!(
        n("scrollWidth") <= n("clientWidth") + 1.0,
        "{what}: the grid scrolls sideways: {v}"
    );
    assert_eq!(v["pageScroll"], false, "{what}: the page scrolls: {v}");
    let tiles = v["tiles"].as_array().cloned().unwrap_or_default();
    assert_eq!(tiles.len(), 3, "{what}: three tiles: {v}");
    let area: f64 = tiles
        .iter()
        .map(|t| t["width"].as_f64().unwrap_or(0.0) * t["height"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        area >= share * n("width") * n("height"),
        "{what}: the tiles cover {:.0} % of the grid: {v}",
        100.0 * area / (n("width") * n("height"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meeting_fills_the_window_on_a_desktop_and_a_phone_and_lists_everyone_with_quality() {
    let server = common::server_with(|c| c.auth.keys.clear()).await; // development mode
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let alice = browser
        .open(&format!("{base}/?room=layout&name=alice"))
        .await;
    let _bob = browser.open(&format!("{base}/?room=layout&name=bob")).await;
    let _carol = browser
        .open(&format!("{base}/?room=layout&name=carol"))
        .await;
    browser
        .wait_for(
            &alice,
            "window.ternDemo.tiles().filter((t) => t.track).length === 2",
            Duration::from_secs(30),
            "alice sees bob's and carol's video",
        )
        .await;

    // A desktop window.
    browser
        .call(
            Some(alice.session()),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_fills(&mut browser, &alice, 0.5, "1280x800").await;

    // A phone.
    browser
        .call(
            Some(alice.session()),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": true}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_fills(&mut browser, &alice, 0.3, "390x844").await;

    // The people list, and each tile's connection quality (loopback: good).
    let people = browser.eval(&alice, "window.ternDemo.people()").await;
    let text = people.to_string();
    assert!(
        ["alice (you)", "bob", "carol"]
            .iter()
            .all(|n| text.contains(n)),
        "the people list names everyone: {people}"
    );
    let quality = browser
        .wait_for(
            &alice,
            "(() => { const q = window.ternDemo.tiles().map((t) => t.quality); \
             return q.every((l) => l === 'good') ? q : null; })()",
            Duration::from_secs(10),
            "every tile shows good quality",
        )
        .await;
    assert_eq!(quality, json!(["good", "good", "good"]));

    // The invite link is the room's address (copied, or shown where there is no clipboard).
    browser
        .eval(&alice, "document.getElementById('invite').click()")
        .await;
    let status = browser
        .wait_for(
            &alice,
            "(() => { const s = document.getElementById('status').textContent; \
             return s.includes('invite link') ? s : null; })()",
            Duration::from_secs(5),
            "the invite link is given",
        )
        .await;
    assert!(
        status
            .as_str()
            .is_some_and(|s| s.ends_with(&format!("{base}/?room=layout"))),
        "{status}"
    );
    server.shutdown();
}
