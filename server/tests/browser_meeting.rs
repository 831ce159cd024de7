//! Browser end to end: two headless Chromium pages open the demo's meeting link for the same room
//! and each decodes the other's video and hears the other's audio.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};

/// What a page receives: (max framesDecoded, max frameWidth, max totalAudioEnergy).
async fn inbound(browser: &mut Browser, page: &Page) -> (u64, u64, f64) {
    common::inbound_summary(&browser.eval(page, common::INBOUND_JS).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_see_and_hear_each_other() {
    let server = common::server_with(|c| c.auth.keys.clear()).await; // development mode: /dev/token
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let alice = browser.open(&format!("{base}/?room=e2e&name=alice")).await;
    let bob = browser.open(&format!("{base}/?room=e2e&name=bob")).await;

    let deadline = Instant::now() + Duration::from_secs(40);
    let last = loop {
        let a = inbound(&mut browser, &alice).await;
        let b = inbound(&mut browser, &bob).await;
        let flowing =
            |(frames, width, energy): (u64, u64, f64)| frames > 0 && width > 0 && energy > 0.0;
        if flowing(a) && flowing(b) {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "media did not flow both ways within 40 s: alice {a:?}, bob {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Decoding goes on: framesDecoded grows on both pages.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = inbound(&mut browser, &alice).await;
    let b = inbound(&mut browser, &bob).await;
    assert!(
        a.0 > last.0.0 && b.0 > last.1.0,
        "frames keep decoding: before {last:?}, after alice {a:?} bob {b:?}"
    );
    let names = browser
        .eval(
            &alice,
            "[...document.querySelectorAll('.tile .name')].map(e => e.textContent)",
        )
        .await;
    assert!(
        names.to_string().contains("bob"),
        "alice's grid shows bob's name: {names}"
    );
    let form = browser
        .eval(
            &alice,
            "getComputedStyle(document.getElementById('prejoin')).display",
        )
        .await;
    assert_eq!(
        form, "none",
        "the meeting link joined without showing the pre-join screen"
    );
    if let Some(path) = std::env::var_os("TERN_SCREENSHOT") {
        std::fs::write(path, browser.screenshot(&alice).await).expect("screenshot written");
    }
    server.shutdown();
}
