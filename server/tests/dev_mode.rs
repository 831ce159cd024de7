//! Development mode (no API key) is for one's own machine: it refuses a non-loopback listener
//! unless told otherwise, answers only requests addressed to an IP or localhost (no DNS
//! rebinding), and never prints its secret.

mod common;

use std::net::SocketAddr;

use tern_server::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn dev_config(listen: &str) -> Config {
    let mut c = Config::default();
    c.http.listen = listen.parse().expect("addr");
    c.rtc.udp_port = 0;
    c.rtc.workers = 1;
    c.turn.enabled = false;
    c
}

/// The status of `GET path` sent with this `Host` header.
async fn status_with_host(addr: SocketAddr, path: &str, host: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("tcp");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status")
}

#[tokio::test]
async fn development_mode_refuses_a_non_loopback_listener_unless_allowed() {
    let err = tern_server::start(dev_config("0.0.0.0:0"))
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("--dev-allow-remote"), "{err:#}");
    let mut allowed = dev_config("0.0.0.0:0");
    allowed.auth.dev_allow_remote = true;
    let server = tern_server::start(allowed)
        .await
        .expect("starts when allowed");
    server.shutdown();
}

#[tokio::test]
async fn development_mode_answers_only_requests_addressed_to_an_ip_or_localhost() {
    let server = tern_server::start(dev_config("127.0.0.1:0"))
        .await
        .expect("starts");
    let addr = server.http_addr;
    let token = "/dev/token?room=r&name=n";
    for host in [
        addr.to_string(),
        "localhost".into(),
        format!("localhost:{}", addr.port()),
        "[::1]:80".into(),
    ] {
        assert_eq!(status_with_host(addr, token, &host).await, 200, "{host}");
    }
    for host in [
        "rebind.example",
        "rebind.example:7880",
        "127.0.0.1.nip.example",
        "",
    ] {
        assert_eq!(status_with_host(addr, token, host).await, 403, "{host:?}");
        assert_eq!(status_with_host(addr, "/", host).await, 403, "{host:?}");
    }
    server.shutdown();
}
