//! Browser end to end under congestion: bob's downlink is capped at about 300 kbit/s while he
//! watches alice's simulcast camera in a large tile. His audio from alice keeps playing with
//! under 1 % loss while the video steps down, and the video climbs back when the cap lifts.
//!
//! The test re-runs itself in a network namespace of its own (root; CI runs as root). There,
//! the server and alice's Chromium use 198.18.0.1; bob's Chromium runs in a second namespace,
//! 198.18.0.2, across a veth pair whose server-side end gets a `tbf` rate cap (TESTING.md: `tc
//! netem` is not in this kernel). Nothing leaves the namespaces.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};
use common::netns::{PEER_IP as BOB_IP, PeerNetns, sh};
use serde_json::Value;

const TEST: &str =
    "under_a_300_kbit_downlink_audio_keeps_playing_while_video_steps_down_and_recovers";

#[test]
fn under_a_300_kbit_downlink_audio_keeps_playing_while_video_steps_down_and_recovers() {
    common::browser::relay_devtools_if_asked();
    common::in_own_netns(TEST, "", true, in_namespace);
}

/// Bob's inbound: (audio packetsReceived, audio packetsLost, audio totalAudioEnergy, video
/// frameWidth, video bytesReceived, the layer tern forwards him (-1: none), whether tern says his
/// bandwidth holds the video back).
const INBOUND: &str = r#"(async () => {
  const c = window.ternDemo && window.ternDemo.client;
  if (!c) return null;
  const q = (c.quality && c.quality.tracks[0]) || {};
  const out = [0, 0, 0, 0, 0, q.layer ?? -1, q.bandwidth_limited ? 1 : 0];
  (await c.receiveStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'audio') { out[0] += s.packetsReceived || 0; out[1] += s.packetsLost || 0; out[2] += s.totalAudioEnergy || 0; }
    else { out[3] = Math.max(out[3], s.frameWidth || 0); out[4] += s.bytesReceived || 0; }
  });
  return out;
})()"#;

#[derive(Debug, Clone, Copy)]
struct Inbound {
    audio_received: u64,
    audio_lost: i64,
    audio_energy: f64,
    width: u64,
    video_bytes: u64,
    layer: i64,
    bandwidth_limited: bool,
}

async fn inbound(browser: &mut Browser, bob: &Page) -> Option<Inbound> {
    let v = browser.eval(bob, INBOUND).await;
    let n = |i: usize| v.get(i).and_then(Value::as_f64).unwrap_or(0.0);
    v.is_array().then(|| Inbound {
        audio_received: n(0) as u64,
        audio_lost: n(1) as i64,
        audio_energy: n(2),
        width: n(3) as u64,
        video_bytes: n(4) as u64,
        layer: n(5) as i64,
        bandwidth_limited: n(6) > 0.0,
    })
}

/// Waits until bob's video is at least `width` wide.
async fn wait_width(browser: &mut Browser, bob: &Page, width: u64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let now = inbound(browser, bob).await;
        if now.is_some_and(|i| i.width >= width) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "bob's video did not reach {width} px within {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn in_namespace() {
    let bob_netns = PeerNetns::create();
    {
        let (server, base, secure) = common::netns::dev_server(|_| {}).await;
        let mut alice_browser = Browser::launch_with(&[&secure], None).await;
        let mut bob_browser =
            Browser::launch_in_netns(&bob_netns.0, BOB_IP, TEST, &[&secure]).await;
        let _alice = alice_browser
            .open(&format!("{base}/?room=cap&name=alice"))
            .await;
        let bob = bob_browser
            .open(&format!("{base}/?room=cap&name=bob"))
            .await;
        let large = common::browser::resize_remote_tiles(1280, 720);
        wait_width(&mut bob_browser, &bob, 1, Duration::from_secs(40)).await;
        bob_browser.eval(&bob, &large).await;
        let full = wait_width(&mut bob_browser, &bob, 1280, Duration::from_secs(60)).await;
        eprintln!("uncapped: bob reached 1280 px {full:?} after his tile grew");

        // Cap bob's downlink.
        sh("tc qdisc add dev srv0 root tbf rate 300kbit burst 4kb latency 100ms");
        // Let the estimate and the allocator settle, then measure for 10 s.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let before = inbound(&mut bob_browser, &bob).await.expect("stats");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = inbound(&mut bob_browser, &bob).await.expect("stats");
        let received = after.audio_received - before.audio_received;
        let lost = (after.audio_lost - before.audio_lost).max(0) as u64;
        let video_kbps = (after.video_bytes - before.video_bytes) * 8 / 10 / 1000;
        eprintln!(
            "capped at 300 kbit/s, 10 s: audio {received} packets, {lost} lost; video {video_kbps} kbit/s, layer {} (-1: paused)",
            after.layer
        );
        assert!(
            received > 400,
            "audio keeps arriving: {received} packets in 10 s"
        );
        assert!(
            lost * 100 < received + lost,
            "audio loss under 1 %: {lost} of {}",
            received + lost
        );
        assert!(
            after.audio_energy > before.audio_energy,
            "bob's audio keeps playing"
        );
        assert!(
            after.layer < 2,
            "the video stepped down (or paused): {after:?}"
        );
        assert!(after.bandwidth_limited, "bob is told why: {after:?}");
        assert!(
            video_kbps < 300,
            "the video fits the cap: {video_kbps} kbit/s"
        );

        // Lift the cap: the video climbs back.
        sh("tc qdisc del dev srv0 root");
        let lifted = Instant::now();
        let recovered = loop {
            let now = inbound(&mut bob_browser, &bob).await;
            if now.is_some_and(|i| i.layer == 2 && i.width >= 1280 && !i.bandwidth_limited) {
                break lifted.elapsed();
            }
            assert!(
                lifted.elapsed() < Duration::from_secs(60),
                "the full layer did not come back within 60 s: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        eprintln!("cap lifted: bob back at 1280 px after {recovered:?}");
        server.shutdown();
    }
    drop(bob_netns);
}
