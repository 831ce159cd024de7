//! Browser bench of reconnection: how long after a 5 s network outage a participant decodes
//! video again. Bob's headless Chromium runs in a network namespace of its own across a veth
//! pair from the server and alice's Chromium (the demo page, fake camera); the bench takes the
//! link down for 5 s, brings it up, and measures from then until bob's page has decoded new
//! frames (and alice's, from bob). Ten outages; the median, min and max. Needs root: it re-runs
//! itself in network and mount namespaces of its own.
//!
//! cargo run --release -p tern-benches --bin reconnect

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};
use common::netns::{PEER_IP, PeerNetns, SERVER_LINK, sh};
use tern_benches::summary;

/// The name the namespaced re-run is started with (see `common::in_own_netns`).
const NAME: &str = "reconnect";
const OUTAGES: usize = 10;

fn main() {
    common::browser::relay_devtools_if_asked();
    common::in_own_netns(NAME, "", true, bench);
}

/// Waits until the page decodes 3 frames beyond what it had; how long that took.
async fn video_back(browser: &mut Browser, page: &Page) -> Duration {
    let start = Instant::now();
    let from = browser.frames_decoded(page).await;
    while browser.frames_decoded(page).await < from + 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no video within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn bench() {
    let bob_netns = PeerNetns::create();
    let (server, base, secure) = common::netns::dev_server(|_| {}).await;
    let mut alice_browser = Browser::launch_with(&[&secure], None).await;
    let mut bob_browser = Browser::launch_in_netns(&bob_netns.0, PEER_IP, NAME, &[&secure]).await;
    let alice = alice_browser
        .open(&format!("{base}/?room=bench&name=alice"))
        .await;
    let bob = bob_browser
        .open(&format!("{base}/?room=bench&name=bob"))
        .await;
    video_back(&mut bob_browser, &bob).await;
    video_back(&mut alice_browser, &alice).await;
    let bob_id = bob_browser
        .eval(&bob, "window.ternDemo.client.self.id")
        .await;
    let (mut to_bob, mut to_alice) = (Vec::new(), Vec::new());
    for n in 0..OUTAGES {
        sh(&format!("ip link set {SERVER_LINK} down"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        sh(&format!("ip link set {SERVER_LINK} up"));
        let up = Instant::now();
        video_back(&mut bob_browser, &bob).await;
        to_bob.push(up.elapsed().as_secs_f64() * 1000.0);
        video_back(&mut alice_browser, &alice).await;
        to_alice.push(up.elapsed().as_secs_f64() * 1000.0);
        let id = bob_browser
            .eval(&bob, "window.ternDemo.client.self.id")
            .await;
        assert_eq!(id, bob_id, "bob kept his participant id");
        eprintln!(
            "outage {n}: bob {:.0} ms, alice {:.0} ms",
            to_bob[n], to_alice[n]
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    summary("link up to bob decoding alice's video", to_bob);
    summary("link up to alice decoding bob's video", to_alice);
    server.shutdown();
    drop(bob_netns);
}
