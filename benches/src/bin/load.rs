//! Load bench: a real `tern` process, N participants that each publish audio and video and
//! receive everyone else. Reports server RSS (idle and loaded) and server CPU per forwarded packet.
//!
//! cargo build --release -p tern-server && cargo run --release -p tern-benches --bin load -- 2 10
//! (`--simulcast`: each camera is sent as three layers, of which subscribers get the top one)

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;
#[path = "shared/tern_process.rs"]
#[allow(dead_code)] // each bench uses a different part
mod tern_process;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::rtc_client::RtcClient;
use str0m::media::MediaKind;
use tern_process::{proc_usage, start_server};
use tern_sfu::testkit::{opus_payload, vp8_payload};

const WARMUP: Duration = Duration::from_secs(4);
const WINDOW: Duration = Duration::from_secs(10);

async fn forwarded(http: SocketAddr) -> f64 {
    common::metric_sum(
        &common::metrics_text(http).await,
        "tern_rtp_forwarded_total",
    )
}

/// One participant: publishes 50 audio packets/s (100 B) and 90 video packets/s (1,100 B,
/// ~0.8 Mbit/s) until `end`, receiving everything the others send. With `simulcast`, the video
/// is the top layer `f` of three, beside `h` (30 packets/s of 1,100 B) and `q` (30 of 400 B):
/// subscribers, who say nothing of their tiles, get `f`.
async fn participant(mut c: RtcClient, start: Instant, end: Instant, simulcast: bool) -> RtcClient {
    if simulcast {
        return simulcast_participant(c, start, end).await;
    }
    let mids = c.publish(&[MediaKind::Audio, MediaKind::Video]).await;
    let (mut a, mut v) = (0u32, 0u32);
    let video: Vec<u8> = vp8_payload(true, 0)
        .into_iter()
        .cycle()
        .take(1100)
        .collect();
    while Instant::now() < end {
        let t = start.elapsed().as_millis() as u32;
        while a * 20 < t {
            c.send_rtp(mids[0], a as u64 + 1, a * 960, &opus_payload(a));
            a += 1;
        }
        while v * 11 < t {
            c.send_rtp(mids[1], v as u64 + 1, (v / 3) * 3000, &video);
            v += 1;
        }
        c.run_for(Duration::from_millis(5)).await;
    }
    c
}

async fn simulcast_participant(mut c: RtcClient, start: Instant, end: Instant) -> RtcClient {
    let audio = c.publish(&[MediaKind::Audio]).await[0];
    let video = c.publish_simulcast(&["q", "h", "f"]).await;
    let (mut a, mut frame) = (0u32, 0u32);
    let mut seq = [1u64, 20_000, 40_000];
    let packet =
        |len: usize| -> Vec<u8> { vp8_payload(true, 0).into_iter().cycle().take(len).collect() };
    let (small, large) = (packet(400), packet(1100));
    while Instant::now() < end {
        let t = start.elapsed().as_millis() as u32;
        while a * 20 < t {
            c.send_rtp(audio, a as u64 + 1, a * 960, &opus_payload(a));
            a += 1;
        }
        while frame * 33 < t {
            let ts = frame * 3000;
            for (layer, (rid, packets)) in [("q", 1), ("h", 1), ("f", 3)].into_iter().enumerate() {
                for _ in 0..packets {
                    let payload = if layer == 0 { &small } else { &large };
                    c.send_layer(video, rid, seq[layer], ts, payload);
                    seq[layer] += 1;
                }
            }
            frame += 1;
        }
        c.run_for(Duration::from_millis(5)).await;
    }
    c
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let simulcast = std::env::args().any(|a| a == "--simulcast");
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![2, 10]
    } else {
        counts
    };
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    println!(
        "| participants | server RSS idle | server RSS loaded | forwarded packets/s | server CPU per forwarded packet |"
    );
    println!("|---|---|---|---|---|");
    for n in counts {
        let server = start_server(&[]).await;
        let pid = server.child.id();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (idle_rss, _) = proc_usage(pid);
        let mut clients = Vec::new();
        for i in 0..n {
            clients.push(RtcClient::join(server.http, &format!("p{i}"), "load").await);
        }
        let start = Instant::now();
        let end = start + WARMUP + WINDOW;
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|c| tokio::spawn(participant(c, start, end, simulcast)))
            .collect();
        tokio::time::sleep(WARMUP).await;
        let (_, cpu0) = proc_usage(pid);
        let fwd0 = forwarded(server.http).await;
        let t0 = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let (rss, cpu1) = proc_usage(pid);
        let fwd1 = forwarded(server.http).await;
        let secs = t0.elapsed().as_secs_f64();
        for t in tasks {
            let _ = t.await;
        }
        let packets = fwd1 - fwd0;
        let cpu_us = (cpu1 - cpu0) as f64 / ticks_per_sec * 1e6;
        println!(
            "| {n} | {:.1} MB | {:.1} MB | {:.0} | {:.2} µs |",
            idle_rss as f64 / 1024.0,
            rss as f64 / 1024.0,
            packets / secs,
            if packets > 0.0 {
                cpu_us / packets
            } else {
                f64::NAN
            }
        );
    }
}
