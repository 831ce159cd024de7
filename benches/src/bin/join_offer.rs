//! Signaling latency: a Rust client joins a room where one participant publishes audio and
//! video, and measures WebSocket connect, `joined` and the subscriber `offer` (which tern sends
//! right after `joined`), from the start of the connect. Ten joins, one after another.
//!
//! cargo run --release -p tern-benches --bin join_offer

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;

use std::time::{Duration, Instant};

use common::rtc_client::RtcClient;
use serde_json::json;
use str0m::media::MediaKind;
use tern_benches::summary;
use tern_sfu::testkit::vp8_payload;

#[tokio::main]
async fn main() {
    let server = common::server().await;
    let mut publisher = RtcClient::join(server.http_addr, "publisher", "bench").await;
    let mids = publisher
        .publish(&[MediaKind::Audio, MediaKind::Video])
        .await;
    for i in 0..50u32 {
        publisher.send_rtp(mids[1], u64::from(i) + 1, i * 3000, &vp8_payload(i == 0, i));
        publisher.run_for(Duration::from_millis(20)).await;
    }
    let (mut joined, mut offered) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let start = Instant::now();
        let mut ws = common::Ws::connect(server.http_addr).await;
        let token = common::token(&format!("viewer{i}"), "bench");
        ws.send(json!({"type": "join", "v": 1, "token": token, "room": "bench", "req": 0}))
            .await;
        ws.expect("joined").await;
        joined.push(start.elapsed().as_secs_f64() * 1e3);
        ws.expect("offer").await;
        offered.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let gaps = offered.iter().zip(&joined).map(|(o, j)| o - j).collect();
    summary("connect to joined", joined);
    summary("connect to offer", offered);
    summary("joined to offer", gaps);
}
