//! The drivers of the tern/Janus comparison bench (`sfu_compare`) keep working: one publisher
//! and two receive-only subscribers for a few seconds through tern and through Janus, and the
//! subscribers get the publisher's audio and video payloads intact. The bench's figures are
//! never asserted here.

#[path = "../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;

use std::time::Duration;

use tern_benches::sfu_compare::janus::Janus;
use tern_benches::sfu_compare::janus_api::JanusTarget;
use tern_benches::sfu_compare::netns;
use tern_benches::sfu_compare::probe::Stream;
use tern_benches::sfu_compare::run::{Outcome, Plan, Target, run};
use tern_benches::sfu_compare::tern::TernTarget;

fn plan() -> Plan {
    Plan {
        publishers: 1,
        publishers_subscribe: false,
        viewers: 2,
        rids: Vec::new(),
        warmup: Duration::from_millis(500),
        window: Duration::from_secs(3),
        setup_concurrency: 4,
    }
}

/// Each subscriber received the publisher's audio and video in the window, nearly all of
/// what was sent, every payload as it was sent.
fn assert_delivered(server: &str, outcome: &Outcome) {
    let publisher = &outcome.reports[0];
    let sent = |slot: usize| publisher.sent_in_window[slot];
    assert!(
        sent(0) > 100 && sent(1) > 200,
        "{server}: the publisher sent {:?}",
        publisher.sent_in_window
    );
    for (i, r) in outcome.reports.iter().enumerate().skip(1) {
        for (stream, slot) in [(Stream::Audio, 0), (Stream::Video(0), 1)] {
            let seen = r.seen.streams.get(&(0, stream));
            let seen = seen.unwrap_or_else(|| panic!("{server}: subscriber {i} got no {stream:?}"));
            assert_eq!(
                seen.corrupt, 0,
                "{server}: subscriber {i}, {stream:?}: corrupt payloads"
            );
            assert!(
                seen.in_window * 100 >= sent(slot) * 95 && seen.lost() * 100 <= seen.in_window,
                "{server}: subscriber {i}, {stream:?}: {} received and {} lost of {} sent",
                seen.in_window,
                seen.lost(),
                sent(slot)
            );
        }
        assert_eq!(r.seen.foreign, 0, "{server}: packets without a probe");
    }
    assert_eq!(
        outcome.ready, 2,
        "{server}: both subscribers got everything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_driver_delivers_intact_payloads() {
    let server = common::server_with(|c| c.sfu.congestion_control = false).await;
    let target = Target::Tern(TernTarget {
        http: server.http_addr,
        key: common::KEY.into(),
        secret: common::SECRET.into(),
        room: "drivers".into(),
    });
    // The server runs in this process: its CPU figures mean nothing here, and none is checked.
    let outcome = run(&target, std::process::id(), &plan())
        .await
        .expect("the run completes");
    assert_delivered("tern", &outcome);
    assert!(
        outcome.tern_latency_us.is_some(),
        "tern's forwarding latency histogram counted the window's packets"
    );
}

#[test]
fn janus_driver_delivers_intact_payloads() {
    if !Janus::installed() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{} is missing; CI installs it (scripts/test.sh: apt-get install janus)",
            tern_benches::sfu_compare::janus::BINARY
        );
        eprintln!("skipped: Janus is not installed (apt-get install janus)");
        return;
    }
    // Janus offers no loopback candidate: run in a namespace with an address for it.
    common::in_own_netns(
        "janus_driver_delivers_intact_payloads",
        netns::SETUP,
        false,
        || async {
            let janus = Janus::start(2, netns::CANDIDATE_IP)
                .await
                .expect("Janus starts");
            let target = Target::Janus(JanusTarget {
                ws_url: janus.ws_url.clone(),
                room: 1234,
            });
            match run(&target, janus.pid(), &plan()).await {
                Ok(outcome) => assert_delivered("Janus", &outcome),
                Err(e) => panic!("the run failed: {e}\nJanus log:\n{}", janus.log_tail()),
            }
        },
    );
}
