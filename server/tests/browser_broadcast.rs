//! Browser end to end: headless Chromium opens the watch page of a broadcast room. hls.js plays
//! for 10 s without a stall, the quality menu lists every rung, forcing the lowest rung switches
//! without a stall, seeking back into the DVR window plays, and playback goes on across a
//! `kill -9` of the ladder sidecar. In the meeting page, the live indicator shows and the Go live
//! button ends and starts broadcasts.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::broadcast::{ladder_sidecars, local_server_with_publisher, start, wait_state};
use common::browser::{Browser, Page};
use common::media::Media;

/// Reads `window.ternWatch`: current time, stalls, level, video height, errors.
async fn watched(browser: &mut Browser, page: &Page) -> Value {
    let js = "(() => { const w = window.ternWatch; return w ? { t: w.video.currentTime, \
              stalls: w.stalls, level: w.level, height: w.video.videoHeight, \
              paused: w.video.paused, errors: w.errors } : null; })()";
    browser.eval(page, js).await
}

/// Waits up to `limit` for `check` on the page's state; panics with `what` and the state.
async fn wait_for(
    browser: &mut Browser,
    page: &Page,
    limit: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let end = Instant::now() + limit;
    loop {
        let w = watched(browser, page).await;
        if check(&w) {
            return w;
        }
        assert!(Instant::now() < end, "{what}: {w}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits up to 20 s until `js` evaluates to `want` on `page`; panics with `what`.
async fn wait_shown(browser: &mut Browser, page: &Page, js: &str, want: bool, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v = browser.eval(page, js).await;
        if v == Value::Bool(want) {
            return;
        }
        if Instant::now() >= end {
            let debug = browser.eval(page, "JSON.stringify({s: document.getElementById('status').textContent, b: window.ternDemo && window.ternDemo.client ? [...window.ternDemo.client.broadcasts.entries()] : null, h: document.getElementById('onair').outerHTML})").await;
            panic!("{what}: {v} {debug}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn time(w: &Value) -> f64 {
    w["t"].as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_plays_the_ladder_switches_rungs_and_survives_a_sidecar_crash() {
    let media = Media::encode(6, "testsrc2", 440).await;
    let (server, spool, _store, mut alice, mut replay) =
        local_server_with_publisher("tv", &media).await;
    let http = server.http_addr;
    let (status, b) = start(http, "tv", "").await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().expect("id").to_string();
    let publishing = tokio::spawn(async move {
        alice
            .run_replaying(&mut replay, Duration::from_secs(90))
            .await;
    });
    let live = wait_state(http, &id, "live", Duration::from_secs(20)).await;
    assert_eq!(live["state"], "live", "{live}");

    let mut browser = Browser::launch().await;
    let page = browser.open(&format!("http://{http}/watch/tv")).await;
    let menu = "Array.from(document.getElementById('quality').options).map(o => o.textContent)";
    let end = Instant::now() + Duration::from_secs(20);
    let options = loop {
        let o = browser.eval(&page, menu).await;
        if o.as_array().is_some_and(|a| a.len() == 4) {
            break o;
        }
        assert!(Instant::now() < end, "the quality menu fills: {o}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // hls.js orders the levels by bandwidth: the lowest rung is level 0.
    for (i, rung) in ["Auto", "180p", "360p", "720p"].iter().enumerate() {
        assert!(
            options[i].as_str().is_some_and(|o| o.starts_with(rung)),
            "{options}"
        );
    }
    let badge = browser
        .eval(&page, "document.getElementById('live').textContent")
        .await;
    assert_eq!(badge, "LIVE");

    // It plays: currentTime advances for 10 s, with no stall.
    let w0 = wait_for(
        &mut browser,
        &page,
        Duration::from_secs(20),
        "playback starts",
        |w| time(w) > 0.5,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let w1 = watched(&mut browser, &page).await;
    assert!(
        time(&w1) - time(&w0) >= 8.5,
        "10 s of playback: {w0} then {w1}"
    );
    assert_eq!(w1["stalls"], w0["stalls"], "no stall: {w1}");

    // Forcing the lowest rung switches to it without a stall.
    browser
        .eval(
            &page,
            "(() => { const q = document.getElementById('quality'); q.value = '0'; \
             q.dispatchEvent(new Event('change')); return true; })()",
        )
        .await;
    // What is buffered plays out first: up to a live latency's worth of 720p.
    let w2 = wait_for(
        &mut browser,
        &page,
        Duration::from_secs(25),
        "180p plays",
        |w| w["level"] == 0 && w["height"] == 180,
    )
    .await;
    assert_eq!(w2["stalls"], w0["stalls"], "the switch did not stall: {w2}");
    assert!(w2["paused"] == false, "{w2}");

    // DVR: seeking back to the start of the window plays from there.
    let seek = "(() => { const v = window.ternWatch.video; v.currentTime = v.seekable.start(0) + 1; \
                return v.currentTime; })()";
    let target = browser.eval(&page, seek).await.as_f64().unwrap_or(f64::NAN);
    assert!(target < time(&w2) - 8.0, "seeking back {target} from {w2}");
    let back = wait_for(
        &mut browser,
        &page,
        Duration::from_secs(15),
        "plays after seeking back",
        |w| time(w) > target + 3.0,
    )
    .await;
    assert!(time(&back) < time(&w2), "it plays from the past: {back}");
    browser
        .eval(&page, "document.getElementById('golive').click(), true")
        .await;

    // kill -9 of the ladder: a discontinuity, and hls.js plays on.
    let pids = ladder_sidecars(spool.path());
    assert_eq!(pids.len(), 1, "{pids:?}");
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .expect("kill");
    let before = watched(&mut browser, &page).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = watched(&mut browser, &page).await;
    assert!(
        time(&after) - time(&before) >= 10.0,
        "it plays on across the crash: {before} then {after}"
    );
    assert!(after["paused"] == false, "{after}");
    let fatal = after["errors"].as_array().is_some_and(|e| {
        e.iter()
            .any(|e| e.as_str().is_some_and(|e| e.ends_with("(fatal)")))
    });
    assert!(!fatal, "no fatal player error: {after}");
    let b = wait_state(http, &id, "live", Duration::from_secs(1)).await;
    assert!(b["restarts"].as_u64() >= Some(1), "a new sidecar run: {b}");

    // In the meeting, everyone sees the live indicator; a participant with the `broadcast`
    // grant ends the broadcast and goes live again with the demo's button.
    let mut claims = common::claims("bob", "tv");
    claims.grants.broadcast = true;
    let token = tern_server::auth::mint_with_secret(common::SECRET, &claims);
    let demo = browser
        .open(&format!("http://{http}/?room=tv&name=bob&token={token}"))
        .await;
    let shown = "window.ternDemo ? window.ternDemo.liveShown() : null";
    wait_shown(&mut browser, &demo, shown, true, "the live indicator shows").await;
    let click = "document.getElementById('golive').click(), true";
    browser.eval(&demo, click).await;
    wait_shown(
        &mut browser,
        &demo,
        shown,
        false,
        "ending the broadcast hides it",
    )
    .await;
    let ended = wait_state(http, &id, "ended", Duration::from_secs(30)).await;
    assert_eq!(ended["state"], "ended", "{ended}");
    browser.eval(&demo, click).await;
    wait_shown(
        &mut browser,
        &demo,
        shown,
        true,
        "going live again shows it",
    )
    .await;
    let (_, list) = common::recording::api("GET", http, "/api/v1/rooms/tv/broadcasts").await;
    let running = list["broadcasts"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|b| b["state"] != "ended").count());
    assert_eq!(running, 1, "a new broadcast: {list}");

    browser.close(&demo).await;
    browser.close(&page).await;
    publishing.abort();
    server.shutdown();
}
