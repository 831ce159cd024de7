//! The workers' ICE-TCP listeners take no more than they should: a connection no participant
//! owns is closed at its first frame, the connection limit refuses the next one, and a silent
//! connection is closed after the idle timeout. The server goes on serving meanwhile.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn tcp_addr(server: &tern_server::Running) -> SocketAddr {
    server.state().workers[0]
        .tcp_addr
        .expect("ICE-TCP is on by default")
}

/// True when the server closes `s` within `d` (a read returns end of stream or an error).
async fn closed_within(s: &mut TcpStream, d: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(d, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_connection_whose_first_frame_names_no_participant_is_closed() {
    let server = common::server().await;
    let mut s = TcpStream::connect(tcp_addr(&server))
        .await
        .expect("connects");
    // A framed STUN-looking datagram with no USERNAME: no participant owns it.
    let mut frame = vec![0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    frame.extend_from_slice(&[7; 12]);
    s.write_all(&frame).await.expect("writes");
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    assert!(common::wait_healthy(server.http_addr, Duration::from_secs(3)).await);
    server.shutdown();
}

#[tokio::test]
async fn the_connection_limit_refuses_the_next_connection_and_keeps_the_others() {
    let server = common::server_with(|c| {
        c.rtc.workers = 1;
        c.rtc.tcp_max_connections = 2;
    })
    .await;
    let addr = tcp_addr(&server);
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(TcpStream::connect(addr).await.expect("connects"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr)
        .await
        .expect("the kernel accepts it");
    assert!(closed_within(&mut third, Duration::from_secs(3)).await);
    for s in &mut kept {
        assert!(!closed_within(s, Duration::from_millis(300)).await);
    }
    server.shutdown();
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let server = common::server_with(|c| c.rtc.tcp_idle_timeout_secs = 1).await;
    let mut s = TcpStream::connect(tcp_addr(&server))
        .await
        .expect("connects");
    // Half a frame header, then nothing.
    s.write_all(&[0x00]).await.expect("writes");
    assert!(!closed_within(&mut s, Duration::from_millis(500)).await);
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    server.shutdown();
}

#[tokio::test]
async fn a_connection_that_never_sends_a_frame_is_closed_within_seconds() {
    let server = common::server().await;
    let mut s = TcpStream::connect(tcp_addr(&server))
        .await
        .expect("connects");
    // The idle timeout is 30 s, but a first frame is due within 5 s.
    assert!(!closed_within(&mut s, Duration::from_secs(3)).await);
    assert!(closed_within(&mut s, Duration::from_secs(4)).await);
    server.shutdown();
}
