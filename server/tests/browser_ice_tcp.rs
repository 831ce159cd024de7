//! ICE over TCP end to end: a Chromium that may not use UDP (its `webrtc.ip_handling_policy` is
//! `disable_non_proxied_udp`, as enterprise policies set it) meets one that uses UDP. With no TURN server configured, its only way to the SFU is the
//! worker's passive TCP candidate; media flows both ways and its selected pairs are TCP.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};

async fn inbound(browser: &mut Browser, page: &Page) -> (u64, u64, f64) {
    common::inbound_summary(&browser.eval(page, common::INBOUND_JS).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_udp_meets_over_ice_tcp() {
    let server = common::server_with(|c| {
        c.auth.keys.clear();
        c.turn.enabled = false;
    })
    .await;
    let base = format!("http://{}", server.http_addr);
    let no_udp = r#"{"webrtc":{"ip_handling_policy":"disable_non_proxied_udp"}}"#;
    let mut tcp_only = Browser::launch_with(&[], Some(no_udp)).await;
    let mut udp = Browser::launch().await;
    let carol = tcp_only.open(&format!("{base}/?room=tcp&name=carol")).await;
    let dave = udp.open(&format!("{base}/?room=tcp&name=dave")).await;

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let c = inbound(&mut tcp_only, &carol).await;
        let d = inbound(&mut udp, &dave).await;
        let flowing =
            |(frames, width, energy): (u64, u64, f64)| frames > 0 && width > 0 && energy > 0.0;
        if flowing(c) && flowing(d) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "media did not flow both ways within 40 s: over TCP {c:?}, over UDP {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let tcp = tcp_only
        .eval(&carol, "window.ternDemo.candidateProtocols()")
        .await;
    assert_eq!(tcp["publisher"], "tcp", "{tcp}");
    assert_eq!(tcp["subscriber"], "tcp", "{tcp}");
    let other = udp
        .eval(&dave, "window.ternDemo.candidateProtocols()")
        .await;
    assert_eq!(other["publisher"], "udp", "{other}");

    // The workers count the connections they accepted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let metrics = common::metrics_text(server.http_addr).await;
    assert!(
        common::metric_sum(&metrics, "tern_ice_tcp_accepted_total") >= 2.0,
        "{metrics}"
    );
    server.shutdown();
}
