//! The HTTP listener bounds connections in time and number: slow or partial headers, idle
//! kept-alive connections and a one-byte-at-a-time sender are closed at the header timeout, and
//! the per-address and total caps refuse the next connection with a clear status. WebSocket
//! sessions count until they close. The server keeps answering meanwhile.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::Ws;

/// Reads until the server closes the connection or `limit` passes; returns what came and
/// whether it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connects")
}

#[tokio::test]
async fn slow_partial_idle_and_trickling_connections_are_closed_at_the_header_timeout() {
    let server = common::server_with(|c| c.http.header_read_timeout_secs = 1).await;
    let addr = server.http_addr;

    let mut partial = connect(addr).await;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let mut idle = connect(addr).await;
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    idle.write_all(req.as_bytes()).await.expect("write");
    let mut trickle = connect(addr).await;
    let started = Instant::now();
    let trickler = tokio::spawn(async move {
        // One byte every 200 ms: the deadline does not move.
        for b in b"GET /healthz HTTP/1.1\r\nHost: tern\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, closed) = read_until_closed(&mut trickle, Duration::from_secs(5)).await;
        (closed, started.elapsed())
    });

    let (_, closed) = read_until_closed(&mut partial, Duration::from_secs(4)).await;
    assert!(closed, "half-sent headers");
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(4)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive connection");
    let (closed, after) = trickler.await.expect("task");
    assert!(
        closed && after < Duration::from_secs(4),
        "trickling: {after:?}"
    );
    assert!(common::wait_healthy(addr, Duration::from_secs(2)).await);
    server.shutdown();
}

#[tokio::test]
async fn the_per_address_cap_refuses_the_next_connection_with_429_and_counts_websockets() {
    let server = common::server_with(|c| c.http.max_connections_per_ip = 3).await;
    let addr = server.http_addr;
    let mut ws = Vec::new();
    for _ in 0..2 {
        ws.push(Ws::connect(addr).await);
    }
    let _held = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect(addr).await;
    let (answer, closed) = read_until_closed(&mut fourth, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("too_many_connections_from_address") && closed);
    // A WebSocket that closes gives its place back.
    drop(ws.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(common::wait_healthy(addr, Duration::from_secs(2)).await);
    server.shutdown();
}

#[tokio::test]
async fn the_total_cap_refuses_the_next_connection_with_503() {
    let server = common::server_with(|c| c.http.max_connections = 2).await;
    let addr = server.http_addr;
    let _a = connect(addr).await;
    let _b = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect(addr).await;
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(closed);
    server.shutdown();
}
