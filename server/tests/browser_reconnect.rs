//! Browser end to end: a participant whose network drops for a few seconds comes back into the
//! same session. Bob's Chromium runs in a network namespace of its own, across a veth pair from
//! the server (and alice's Chromium); the test takes the link down for 5 s and up again. Bob
//! keeps his participant id and his video decodes again on both sides, and alice never hears
//! that he left. A longer outage than the resume grace period removes him (`connection_lost`),
//! and his page comes back as a new participant by itself.
//!
//! The test re-runs itself in a network namespace of its own (root; CI runs as root).

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};
use common::netns::{PEER_IP, PeerNetns, SERVER_LINK, sh};
use serde_json::Value;

const TEST: &str =
    "after_a_5_s_outage_the_same_participant_comes_back_and_after_a_long_one_a_new_one";

/// The resume grace period here: longer than the short outage, shorter than the long one.
const GRACE_SECS: u64 = 8;

#[test]
fn after_a_5_s_outage_the_same_participant_comes_back_and_after_a_long_one_a_new_one() {
    common::browser::relay_devtools_if_asked();
    common::in_own_netns(TEST, "", true, in_namespace);
}

/// Waits until the page decodes `more` frames beyond what it had; returns how long it took.
async fn frames_grow(
    browser: &mut Browser,
    page: &Page,
    more: u64,
    within: Duration,
    what: &str,
) -> Duration {
    let start = Instant::now();
    let from = browser.frames_decoded(page).await;
    loop {
        let now = browser.frames_decoded(page).await;
        if now >= from + more {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: {from} -> {now} frames in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eval_str(browser: &mut Browser, page: &Page, expression: &str) -> String {
    match browser.eval(page, expression).await {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

async fn in_namespace() {
    let bob_netns = PeerNetns::create();
    {
        let (server, base, secure) = common::netns::dev_server(|c| {
            c.signaling.resume_grace_secs = GRACE_SECS;
            // Notice a dead socket within 3 s (the default takes 30).
            c.signaling.ping_interval_secs = 1;
            c.signaling.idle_timeout_secs = 3;
            c.sfu.disconnect_timeout_ms = GRACE_SECS * 1000;
        })
        .await;
        let mut alice_browser = Browser::launch_with(&[&secure], None).await;
        let mut bob_browser =
            Browser::launch_in_netns(&bob_netns.0, PEER_IP, TEST, &[&secure]).await;
        let alice = alice_browser
            .open(&format!("{base}/?room=hiccup&name=alice"))
            .await;
        let bob = bob_browser
            .open(&format!("{base}/?room=hiccup&name=bob"))
            .await;
        frames_grow(
            &mut alice_browser,
            &alice,
            10,
            Duration::from_secs(40),
            "alice sees bob",
        )
        .await;
        frames_grow(
            &mut bob_browser,
            &bob,
            10,
            Duration::from_secs(40),
            "bob sees alice",
        )
        .await;
        let bob_id = eval_str(&mut bob_browser, &bob, "window.ternDemo.client.self.id").await;
        alice_browser
            .eval(
                &alice,
                "window.__left = []; window.ternDemo.client.addEventListener('participant-left', \
                 (e) => window.__left.push(e.detail.participant))",
            )
            .await;

        // A 5 s outage.
        sh(&format!("ip link set {SERVER_LINK} down"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        sh(&format!("ip link set {SERVER_LINK} up"));
        let took = frames_grow(
            &mut bob_browser,
            &bob,
            10,
            Duration::from_secs(20),
            "bob's video comes back",
        )
        .await;
        eprintln!("after a 5 s outage, bob decodes video again {took:?} after the link is up");
        let marks = bob_browser
            .eval(
                &bob,
                "JSON.stringify([Math.round(performance.now()), window.ternDemo.marks()])",
            )
            .await;
        eprintln!("bob's client marks (ms): {marks}");
        frames_grow(
            &mut alice_browser,
            &alice,
            10,
            Duration::from_secs(10),
            "alice sees bob again",
        )
        .await;
        let same = eval_str(&mut bob_browser, &bob, "window.ternDemo.client.self.id").await;
        assert_eq!(same, bob_id, "bob is the same participant");
        let left = alice_browser.eval(&alice, "window.__left").await;
        assert_eq!(left, serde_json::json!([]), "alice never heard bob leave");
        let listed = alice_browser
            .eval(
                &alice,
                &format!("window.ternDemo.client.participants.has('{bob_id}')"),
            )
            .await;
        assert_eq!(listed, Value::Bool(true));

        // An outage longer than the grace period: bob is removed, then comes back as new.
        sh(&format!("ip link set {SERVER_LINK} down"));
        let cut = Instant::now();
        let deadline = cut + Duration::from_secs(GRACE_SECS + 10);
        loop {
            let left = alice_browser.eval(&alice, "window.__left").await;
            if left
                .as_array()
                .is_some_and(|l| l.iter().any(|p| p == bob_id.as_str()))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "alice was not told bob left: {left}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let removed_after = cut.elapsed();
        assert!(
            removed_after >= Duration::from_secs(GRACE_SECS - 1),
            "only past the grace period: {removed_after:?}"
        );
        sh(&format!("ip link set {SERVER_LINK} up"));
        frames_grow(
            &mut alice_browser,
            &alice,
            10,
            Duration::from_secs(40),
            "bob's page rejoins as a new participant and alice sees him",
        )
        .await;
        let new_id = eval_str(&mut bob_browser, &bob, "window.ternDemo.client.self.id").await;
        assert_ne!(new_id, bob_id, "a new participant");
        server.shutdown();
    }
    drop(bob_netns);
}
