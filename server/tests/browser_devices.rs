//! Browser end to end: the demo's pre-join screen and device switching, in headless Chromium
//! with fake cameras (the second of Chromium's fake cameras gives 16-bit depth frames, which no
//! encoder takes: the test uses the first and the third). Before joining, the preview plays, the microphone meter moves and the
//! camera can be changed; joining with the microphone off shows it muted to the others; in the
//! call, switching camera keeps the same track id for the others and their video keeps decoding.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::browser::Browser;

/// The device id the page's camera track (published or previewed) comes from.
const SENT_CAMERA: &str = "[...window.ternDemo.client.local.values()].find((l) => l.source === 'camera')?.track.getSettings().deviceId";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prejoin_previews_and_switching_camera_keeps_the_track_for_the_others() {
    let server = common::server_with(|c| c.auth.keys.clear()).await; // development mode
    let base = format!("http://{}", server.http_addr);
    let mut browser =
        Browser::launch_with(&["--use-fake-device-for-media-stream=device-count=3"], None).await;
    let alice = browser.open(&format!("{base}/?room=devices")).await;

    // The pre-join screen: a live preview, a moving level meter, two cameras to choose from.
    browser
        .wait_for(
            &alice,
            "document.getElementById('preview').videoWidth > 0",
            Duration::from_secs(20),
            "the preview plays",
        )
        .await;
    browser
        .wait_for(
            &alice,
            "Number(document.querySelector('#level span').dataset.level || 0) > 0.05",
            Duration::from_secs(10),
            "the microphone meter moves",
        )
        .await;
    let listed = browser
        .eval(
            &alice,
            "[...document.getElementById('camera-select').options].map((o) => [o.textContent, o.value])",
        )
        .await;
    let listed: Vec<(String, String)> = serde_json::from_value(listed).expect("cameras");
    let camera = |label: &str| {
        listed
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, id)| id.clone())
            .unwrap_or_else(|| panic!("no {label} in {listed:?}"))
    };
    // cameras[1] is chosen before joining (not the default), cameras[0] switched to after.
    let cameras = [camera("fake_device_0"), camera("fake_device_2")];
    browser
        .eval(
            &alice,
            &format!(
                "(() => {{ const s = document.getElementById('camera-select'); s.value = '{}'; \
                 s.dispatchEvent(new Event('change')); }})()",
                cameras[1]
            ),
        )
        .await;
    browser.wait_for(&alice,
        &format!(
            "document.getElementById('preview').srcObject?.getVideoTracks()[0]?.getSettings().deviceId === '{}'",
            cameras[1]
        ),
        Duration::from_secs(10),
        "the preview shows the chosen camera",
    )
    .await;

    // Join with the microphone off.
    browser
        .eval(
            &alice,
            "document.getElementById('name').value = 'alice'; \
             document.getElementById('mic-on').checked = false; \
             document.getElementById('join-form').requestSubmit()",
        )
        .await;
    let sent = browser
        .wait_for(
            &alice,
            SENT_CAMERA,
            Duration::from_secs(20),
            "alice publishes",
        )
        .await;
    assert_eq!(sent, cameras[1].as_str(), "the chosen camera is sent");

    let bob = browser
        .open(&format!("{base}/?room=devices&name=bob"))
        .await;
    let camera_track = browser
        .wait_for(
            &bob,
            "(async () => { const c = window.ternDemo.client; \
           const cam = [...(c?.tracks.values() ?? [])].find((t) => t.source === 'camera'); \
           const v = (await window.ternDemo.inbound()).video.find((s) => s.track === cam?.id); \
           return v && v.framesDecoded > 0 ? cam.id : null; })()",
            Duration::from_secs(30),
            "bob decodes alice's camera",
        )
        .await;
    let camera_track = camera_track.as_str().expect("track id").to_string();
    browser.wait_for(&bob,
        "[...window.ternDemo.client.tracks.values()].some((t) => t.kind === 'audio' && t.muted)",
        Duration::from_secs(10),
        "alice's microphone shows muted to bob",
    )
    .await;
    browser
        .eval(
            &bob,
            "window.__unpublished = []; window.ternDemo.client.addEventListener('track-unpublished', \
             (e) => window.__unpublished.push(e.detail.track))",
        )
        .await;

    // Alice switches to the other camera during the call.
    browser
        .eval(
            &alice,
            &format!(
                "(() => {{ const s = document.getElementById('cam-switch'); s.value = '{}'; \
                 s.dispatchEvent(new Event('change')); }})()",
                cameras[0]
            ),
        )
        .await;
    browser
        .wait_for(
            &alice,
            &format!("({SENT_CAMERA}) === '{}'", cameras[0]),
            Duration::from_secs(10),
            "alice sends the other camera",
        )
        .await;
    let frames = |v: &Value| v.as_u64().unwrap_or(0);
    let decoded = format!(
        "(async () => (await window.ternDemo.inbound()).video.find((s) => s.track === '{camera_track}')?.framesDecoded ?? 0)()"
    );
    let before = frames(&browser.eval(&bob, &decoded).await);
    browser
        .wait_for(
            &bob,
            &format!("({decoded}).then((n) => n > {before} + 30)"),
            Duration::from_secs(10),
            "bob keeps decoding the same track",
        )
        .await;
    let unpublished = browser.eval(&bob, "window.__unpublished").await;
    assert_eq!(
        unpublished,
        serde_json::json!([]),
        "nothing was unpublished"
    );
    let still = browser
        .eval(
            &bob,
            &format!("window.ternDemo.client.tracks.has('{camera_track}')"),
        )
        .await;
    assert_eq!(still, Value::Bool(true), "the same track id");
    server.shutdown();
}
