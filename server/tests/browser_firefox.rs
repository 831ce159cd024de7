//! Firefox joins a meeting with Chromium: each decodes the other's video and receives its audio.
//!
//! Firefox never pairs loopback ICE candidates, and gathers none without a default route. So this
//! test re-runs itself inside a network namespace of its own: a veth pair (both ends inside) with
//! 198.18.0.1 (the benchmarking range), a default route onto it, and the server advertising that
//! address. Nothing leaves the namespace. Needs root (CI runs as root).

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::firefox::Firefox;

/// Connection states and candidates of both of the demo's connections, for failure messages.
const DIAGNOSE: &str = "(async () => { const c = window.ternDemo.client; const out = {}; for (const [name, pc] of [['pub', c.pub], ['sub', c.sub]]) { if (!pc) continue; const stats = []; (await pc.getStats()).forEach((s) => { if (s.type.includes('candidate')) stats.push([s.type, s.address, s.port, s.state, s.candidateType].join(' ')); }); out[name] = [pc.iceConnectionState, pc.connectionState, stats]; } return out; })()";
const MEDIA_IP: &str = "198.18.0.1";

#[test]
fn firefox_and_chromium_see_and_hear_each_other() {
    let setup = format!(
        "ip link add tern0 type veth peer name tern1 && ip addr add {MEDIA_IP}/24 dev tern0 && ip link set tern0 up && ip link set tern1 up && ip route add default dev tern0 &&"
    );
    common::in_own_netns(
        "firefox_and_chromium_see_and_hear_each_other",
        &setup,
        false,
        || async {
            let server = common::server_with(|c| {
                c.auth.keys.clear();
                c.rtc.bind_ip = MEDIA_IP.parse().expect("ip");
            })
            .await;
            let base = format!("http://{}", server.http_addr);
            let mut chromium = Browser::launch().await;
            let mut firefox = Firefox::launch().await;
            let alice = chromium
                .open(&format!("{base}/?room=ff&name=chromium"))
                .await;
            let bob = firefox.open(&format!("{base}/?room=ff&name=firefox")).await;
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                let a = common::inbound_summary(&chromium.eval(&alice, common::INBOUND_JS).await);
                let b = common::inbound_summary(&firefox.eval(&bob, common::INBOUND_JS).await);
                let flowing = |(frames, width, energy): (u64, u64, f64)| {
                    frames > 0 && width > 0 && energy > 0.0
                };
                if flowing(a) && flowing(b) {
                    break;
                }
                if Instant::now() > deadline {
                    let diag = firefox.eval(&bob, DIAGNOSE).await;
                    panic!(
                        "media did not flow both ways within 40 s: chromium {a:?}, firefox {b:?}; firefox connections: {diag}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            simulcast_from_firefox(&mut chromium, &alice, &mut firefox, &bob).await;
            server.shutdown();
        },
    );
}

/// Bytes sent per rid of the page's outbound video.
const OUTBOUND_RIDS: &str = "(async () => { const out = {}; (await window.ternDemo.client.sendStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid || 'none'] = s.bytesSent || 0; }); return out; })()";

/// The widest video the page decodes now.
const INBOUND_WIDTH: &str = "(async () => { let w = 0; (await window.ternDemo.client.receiveStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') w = Math.max(w, s.frameWidth || 0); }); return w; })()";

/// Firefox publishes its camera as simulcast (its own rid handling: tern-client.js asks for
/// rids q, h, f in `sendEncodings`), and Chromium's tile of it gets a small layer or a large one
/// as it is resized.
async fn simulcast_from_firefox(
    chromium: &mut Browser,
    alice: &common::browser::Page,
    firefox: &mut Firefox,
    bob: &str,
) {
    // A large tile wants the full layer: dynacast keeps all three on.
    chromium
        .eval(alice, &common::browser::resize_remote_tiles(1280, 720))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rids = firefox.eval(bob, OUTBOUND_RIDS).await;
        let sending = |rid: &str| rids[rid].as_u64().unwrap_or(0) > 0;
        if sending("q") && sending("h") && sending("f") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "firefox sends rids q, h and f: {rids}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut widths = Vec::new();
    for (w, h) in [(1280, 720), (160, 90), (1280, 720)] {
        chromium
            .eval(alice, &common::browser::resize_remote_tiles(w, h))
            .await;
        let wanted = |got: u64| {
            if w > 320 {
                got > 320
            } else {
                got > 0 && got <= 320
            }
        };
        let deadline = Instant::now() + Duration::from_secs(40);
        let got = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let got = chromium
                .eval(alice, INBOUND_WIDTH)
                .await
                .as_u64()
                .unwrap_or(0);
            if wanted(got) {
                break got;
            }
            assert!(
                Instant::now() < deadline,
                "chromium's {w}x{h} tile of firefox: frameWidth {got} (so far {widths:?})"
            );
        };
        widths.push(got);
    }
    eprintln!("chromium decoded firefox at widths {widths:?} (large, small, large)");
    assert!(widths[1] < widths[0] && widths[1] < widths[2], "{widths:?}");
}
