//! Browser end to end: screen share in the demo, in headless Chromium (a fake screen, picked
//! without asking). Alice shares: bob receives it as a `screen` track at the screen's own
//! resolution, on the stage (the largest tile). When the browser ends the capture (its "stop
//! sharing" bar), it is unpublished and leaves bob's page. A token whose `publish_sources`
//! leaves out `screen` cannot share.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::browser::Browser;

/// Flags that let a page capture a (fake) screen without a picker.
const SCREEN_FLAGS: &[&str] = &["--auto-select-desktop-capture-source=Entire screen"];

/// The decoded size of the screen track on `page` once frames arrive: (track, width, height).
const SCREEN_INBOUND: &str = "(async () => { \
    const c = window.ternDemo.client; \
    const screen = [...c.tracks.values()].find((t) => t.source === 'screen'); \
    if (!screen) return null; \
    const s = (await window.ternDemo.inbound()).video.find((v) => v.track === screen.id); \
    return s && s.framesDecoded > 0 ? [screen.id, s.frameWidth, s.frameHeight] : null; })()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_reaches_the_others_at_its_resolution_and_stops_with_the_capture() {
    let server = common::server_with(|c| c.auth.keys.clear()).await; // development mode
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch_with(SCREEN_FLAGS, None).await;
    let alice = browser
        .open(&format!("{base}/?room=share&name=alice"))
        .await;
    let bob = browser.open(&format!("{base}/?room=share&name=bob")).await;
    browser
        .wait_for(
            &bob,
            "window.ternDemo.tiles().filter((t) => t.track).length >= 1",
            Duration::from_secs(30),
            "bob sees alice's camera",
        )
        .await;

    // Alice presses "Share screen".
    browser
        .eval(&alice, "document.getElementById('share').click()")
        .await;
    let captured = browser.wait_for(&alice,
        "(() => { const s = [...window.ternDemo.client.local.values()].find((l) => l.source === 'screen'); \
         return s ? [s.track.getSettings().width, s.track.getSettings().height] : null; })()",
        Duration::from_secs(15),
        "alice captures a screen",
    )
    .await;
    let got = browser
        .wait_for(
            &bob,
            SCREEN_INBOUND,
            Duration::from_secs(20),
            "bob decodes alice's screen",
        )
        .await;
    eprintln!("captured {captured}, bob decodes {got}");
    assert_eq!(
        (&got[1], &got[2]),
        (&captured[0], &captured[1]),
        "the screen arrives at its own resolution"
    );
    let screen_track = got[0].as_str().expect("track id").to_string();

    // On bob's page it is the largest tile, marked as a screen.
    let tiles = browser.eval(&bob, "window.ternDemo.tiles()").await;
    let tiles = tiles.as_array().expect("tiles");
    let area = |t: &Value| t["width"].as_f64().unwrap_or(0.0) * t["height"].as_f64().unwrap_or(0.0);
    let screen = tiles
        .iter()
        .find(|t| t["screen"] == true)
        .expect("a screen tile");
    assert_eq!(screen["track"], screen_track.as_str());
    assert!(
        tiles
            .iter()
            .filter(|t| t["screen"] != true)
            .all(|t| area(t) * 2.0 < area(screen)),
        "the screen is on the stage: {tiles:?}"
    );

    // The browser ends the capture (what its "stop sharing" bar does): unpublished everywhere.
    browser
        .eval(
            &alice,
            "[...window.ternDemo.client.local.values()].filter((l) => l.source === 'screen') \
             .forEach((l) => l.track.dispatchEvent(new Event('ended')))",
        )
        .await;
    browser
        .wait_for(
            &bob,
            &format!(
                "!window.ternDemo.client.tracks.has('{screen_track}') && \
             window.ternDemo.tiles().every((t) => !t.screen)"
            ),
            Duration::from_secs(10),
            "the screen leaves bob's page",
        )
        .await;
    let sharing = browser
        .eval(&alice, "window.ternDemo.client.sharingScreen")
        .await;
    assert_eq!(sharing, Value::Bool(false));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_screen_source_cannot_share() {
    use tern_server::auth::SourceGrant;
    let server = common::server().await;
    let base = format!("http://{}", server.http_addr);
    let token = common::token_with("carol", "noshare", |g| {
        g.publish_sources = Some(vec![SourceGrant::Camera, SourceGrant::Microphone]);
    });
    let mut browser = Browser::launch_with(SCREEN_FLAGS, None).await;
    let carol = browser
        .open(&format!("{base}/?room=noshare&name=carol&token={token}"))
        .await;
    browser
        .wait_for(
            &carol,
            "window.ternDemo.client?.local.size >= 2",
            Duration::from_secs(30),
            "carol publishes her camera and microphone",
        )
        .await;
    let refused = browser
        .eval(
            &carol,
            "window.ternDemo.client.shareScreen().then(() => 'shared', (e) => e.code)",
        )
        .await;
    assert_eq!(refused, "permission_denied");
    // The refused offer was rolled back: the connection negotiates on as before.
    let after = browser
        .eval(
            &carol,
            "(() => { const c = window.ternDemo.client; \
             const mic = [...c.local.values()].find((l) => l.source === 'microphone'); \
             return c.unpublish(mic.track).then(() => [c.pub.signalingState, c.local.size], (e) => e.code); })()",
        )
        .await;
    assert_eq!(
        after,
        serde_json::json!(["stable", 1]),
        "a later offer works"
    );
    server.shutdown();
}
