//! Slow-connection bench: a real `tern` process faces N connections that never finish a request
//! (half of them send part of a request's headers, half complete a WebSocket upgrade and never
//! join). Meanwhile it measures `/healthz` latency and a join with media between two
//! participants, and reports the server's RSS and open file descriptors before, during and after.
//! The caps are raised so that all N get in: this measures the timeouts and the file limit, as
//! if the connections came from many addresses.
//!
//! cargo build --release -p tern-server && cargo run --release -p tern-benches --bin slow_conns -- 10000

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;
#[path = "shared/tern_process.rs"]
#[allow(dead_code)] // each bench uses a different part
mod tern_process;

use std::time::{Duration, Instant};

use str0m::media::MediaKind;
use tern_process::{proc_usage, start_server};
use tern_sfu::testkit::{opus_payload, vp8_payload};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use common::rtc_client::RtcClient;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Median and max of `/healthz` round trips, over 20 requests.
async fn healthz_latency(http: std::net::SocketAddr) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        assert!(
            common::wait_healthy(http, Duration::from_secs(10)).await,
            "healthz"
        );
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// Two participants join; one sends 100 audio and 100 video packets; how many arrive.
async fn join_and_media(http: std::net::SocketAddr) -> (usize, Duration) {
    let t = Instant::now();
    let mut a = RtcClient::join(http, "bench-a", "slow").await;
    let mut b = RtcClient::join(http, "bench-b", "slow").await;
    let mids = a.publish(&[MediaKind::Audio, MediaKind::Video]).await;
    assert!(
        a.run_until(Duration::from_secs(10), |c| c.publisher_connected())
            .await
    );
    tokio::join!(
        a.run_for(Duration::from_secs(1)),
        b.run_for(Duration::from_secs(1))
    );
    let joined = t.elapsed();
    for n in 0..100u32 {
        a.send_rtp(mids[0], 1 + n as u64, n * 960, &opus_payload(n));
        a.send_rtp(
            mids[1],
            1 + n as u64,
            n * 3000,
            &vp8_payload(n % 25 == 0, n),
        );
        tokio::join!(
            a.run_for(Duration::from_millis(10)),
            b.run_for(Duration::from_millis(10))
        );
    }
    b.run_for(Duration::from_millis(500)).await;
    (b.received.values().map(Vec::len).sum(), joined)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let cap = (2 * n).to_string();
    let server = start_server(&[
        "--http-max-connections",
        &cap,
        "--http-max-connections-per-ip",
        &cap,
    ])
    .await;
    let (pid, http) = (server.child.id(), server.http);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = proc_usage(pid);
    println!("idle: RSS {idle_rss} KiB, {} fds", open_fds(pid));

    let opened = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut websockets = Vec::with_capacity(n / 2);
    for i in 0..n {
        if i % 2 == 0 {
            let mut s = TcpStream::connect(http).await.expect("connect");
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
                .await;
            held.push(s);
        } else {
            websockets.push(common::Ws::connect(http).await);
        }
    }
    println!("{n} connections open after {:?}", opened.elapsed());
    let (rss, _) = proc_usage(pid);
    let (median, max) = healthz_latency(http).await;
    let (received, joined) = join_and_media(http).await;
    println!(
        "during: RSS {rss} KiB ({:.1} KiB per connection), {} fds; /healthz median {median:?}, \
         max {max:?}; join + connect {joined:?}, {received} of 200 packets arrived",
        (rss.saturating_sub(idle_rss)) as f64 / n as f64,
        open_fds(pid)
    );
    // The header deadline and the join timeout (both 10 s by default) close them all.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (after_rss, _) = proc_usage(pid);
    println!(
        "15 s later: RSS {after_rss} KiB, {} fds (connections closed by the server)",
        open_fds(pid)
    );
    drop(held);
    drop(websockets);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (gone_rss, _) = proc_usage(pid);
    println!(
        "after the clients let go: RSS {gone_rss} KiB, {} fds",
        open_fds(pid)
    );
}
