//! Browser end to end: in the demo, a participant whose token carries the `record` grant clicks
//! Record; everyone's page shows the recording indicator; Stop ends it, the indicator goes, and
//! the composite of the two Chromium cameras is in storage, playable.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};
use common::recording::{codecs, decode_errors, probe};
use serde_json::Value;
use tern_server::auth::{Claims, Grants, mint_with_secret, unix_seconds};

async fn shown(browser: &mut Browser, page: &Page) -> bool {
    browser.eval(page, "window.ternDemo.recordingShown()").await == Value::Bool(true)
}

/// Waits until `check` holds on both pages; panics after `limit` naming `what`.
async fn both(browser: &mut Browser, pages: [&Page; 2], want: bool, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let a = shown(browser, pages[0]).await;
        let b = shown(browser, pages[1]).await;
        if a == want && b == want {
            return;
        }
        assert!(Instant::now() < end, "{what}: alice {a}, bob {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_button_records_and_everyone_sees_the_indicator() {
    let store = tempfile::tempdir().expect("store");
    let spool = tempfile::tempdir().expect("spool");
    // Development mode: the demo's tokens carry the record grant.
    let server = common::server_with(|c| {
        c.auth.keys.clear();
        c.recording.spool_dir = spool.path().into();
        c.recording.storage.local_dir = store.path().into();
    })
    .await;
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let alice = browser.open(&format!("{base}/?room=rec&name=alice")).await;
    let bob = browser.open(&format!("{base}/?room=rec&name=bob")).await;
    let frames = "window.ternDemo.inbound().then(s => s.video.length)";
    let end = Instant::now() + Duration::from_secs(30);
    while browser.eval(&alice, frames).await.as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < end, "alice receives bob's video");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !shown(&mut browser, &alice).await,
        "no indicator before recording"
    );
    let button = "getComputedStyle(document.getElementById('record')).display";
    assert_ne!(
        browser.eval(&alice, button).await,
        "none",
        "a Record button"
    );

    for (on, what) in [
        (true, "everyone sees the indicator"),
        (false, "the indicator goes when it stops"),
    ] {
        browser
            .eval(&alice, "document.getElementById('record').click()")
            .await;
        both(&mut browser, [&alice, &bob], on, what).await;
        if on {
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
    }

    // The composite of both cameras is in the local store.
    let (key, secret) = server.dev_credentials.clone().expect("development mode");
    let admin = mint_with_secret(
        &secret,
        &Claims {
            iss: key,
            sub: "admin".into(),
            name: None,
            room: None,
            grants: Grants {
                admin: true,
                ..Default::default()
            },
            exp: unix_seconds(std::time::SystemTime::now()) + 600,
            nbf: None,
            iat: None,
        },
    );
    let end = Instant::now() + Duration::from_secs(60);
    let rec = loop {
        let (_, list) = common::http(
            "GET",
            server.http_addr,
            "/api/v1/rooms/rec/recordings",
            Some(&admin),
        )
        .await;
        let rec = list["recordings"][0].clone();
        if rec["state"] == "complete" || Instant::now() > end {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(rec["state"], "complete", "{rec}");
    let file = store
        .path()
        .join(rec["files"][0]["key"].as_str().expect("key"));
    let probed = probe(&file);
    let codecs = codecs(&probed);
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );
    let errors = decode_errors(&file);
    assert!(errors.is_empty(), "decodes cleanly: {errors}");
    server.shutdown();
}
