//! Browser end to end through the embedded TURN relay: a Chromium participant that may only use
//! relay candidates (`iceTransportPolicy: 'relay'`) meets one that connects directly; media flows
//! both ways and the relay participant's selected candidate pairs are relay pairs.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Page};

async fn inbound(browser: &mut Browser, page: &Page) -> (u64, u64, f64) {
    common::inbound_summary(&browser.eval(page, common::INBOUND_JS).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_browser_meets_through_the_embedded_turn() {
    let server = common::server_with(|c| c.auth.keys.clear()).await;
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let relayed = browser
        .open(&format!("{base}/?room=turn&name=carol&relay=1"))
        .await;
    let direct = browser.open(&format!("{base}/?room=turn&name=dave")).await;

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = inbound(&mut browser, &relayed).await;
        let d = inbound(&mut browser, &direct).await;
        let flowing =
            |(frames, width, energy): (u64, u64, f64)| frames > 0 && width > 0 && energy > 0.0;
        if flowing(r) && flowing(d) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "media did not flow both ways within 40 s: relayed {r:?}, direct {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let types = browser
        .eval(&relayed, "window.ternDemo.candidateTypes()")
        .await;
    assert_eq!(types["publisher"], "relay", "{types}");
    assert_eq!(types["subscriber"], "relay", "{types}");
    let direct_types = browser
        .eval(&direct, "window.ternDemo.candidateTypes()")
        .await;
    assert_eq!(direct_types["publisher"], "host", "{direct_types}");

    // The relay publishes its counters once a second.
    let relay = server
        .state()
        .turn
        .as_ref()
        .expect("embedded relay")
        .relay();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = relay.stats();
        let relayed = stats.to_peer_packets > 100 && stats.to_client_packets > 100;
        if stats.allocations >= 2 && relayed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one allocation per connection, media relayed: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let metrics = common::metrics_text(server.http_addr).await;
    assert!(
        common::metric_sum(&metrics, "tern_turn_allocations") >= 2.0,
        "{metrics}"
    );
    assert!(
        common::metric_sum(&metrics, "tern_turn_relayed_packets_total") > 200.0,
        "{metrics}"
    );
    assert!(
        common::metric_sum(&metrics, "tern_turn_channels") >= 1.0,
        "{metrics}"
    );
    server.shutdown();
}
