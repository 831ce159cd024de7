//! tern serves HTTPS and WSS itself: the key exchange prefers the hybrid post-quantum
//! X25519MLKEM768 and still accepts X25519 alone, signaling works over WSS, and a renewed
//! certificate is served without a restart.

#[path = "common/certs.rs"]
mod certs;
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::NamedGroup;
use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// A client that trusts `cert` and offers only `groups`.
fn connector(
    cert: &CertificateDer<'static>,
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("trust the certificate");
    let mut provider = default_provider();
    provider.kx_groups = groups;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn handshake(c: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let name = ServerName::try_from("localhost").expect("name");
    c.connect(name, tcp).await.expect("TLS handshake")
}

/// The status line of `GET /healthz` over `s`.
async fn healthz(s: &mut TlsStream<TcpStream>) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn https_and_wss_prefer_post_quantum_key_exchange_and_accept_x25519() {
    let server = common::server_with(|c| c.http.tls_self_signed = true).await;
    let tls = server.state().tls.as_ref().expect("TLS is on");
    let cert = tls.self_signed.clone().expect("a self-signed certificate");

    let pq = connector(&cert, vec![kx_group::X25519MLKEM768]);
    let mut s = handshake(&pq, server.http_addr).await;
    assert_eq!(
        s.get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name()),
        Some(NamedGroup::X25519MLKEM768)
    );
    assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");

    let classic = connector(&cert, vec![kx_group::X25519]);
    let mut s = handshake(&classic, server.http_addr).await;
    assert_eq!(
        s.get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name()),
        Some(NamedGroup::X25519)
    );
    assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");

    // A client offering both, hybrid first as Chromium and Firefox do, gets the hybrid.
    let both = connector(&cert, vec![kx_group::X25519MLKEM768, kx_group::X25519]);
    let s = handshake(&both, server.http_addr).await;
    assert_eq!(
        s.get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name()),
        Some(NamedGroup::X25519MLKEM768)
    );

    // Signaling over WSS.
    let stream = handshake(&pq, server.http_addr).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/rtc", stream)
        .await
        .expect("WebSocket over TLS");
    let join =
        json!({"type": "join", "v": 1, "token": common::token("alice", "tls"), "room": "tls"});
    ws.send(Message::text(join.to_string()))
        .await
        .expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer")
        .expect("a message")
        .expect("ok");
    let reply: serde_json::Value =
        serde_json::from_str(reply.to_text().expect("text")).expect("json");
    assert_eq!(reply["type"], "joined", "{reply}");
    server.shutdown();
}

fn presented(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().expect("certificates")[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let first = certs::write_certificate(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let server = common::server_with(|c| {
        c.http.tls_cert = Some(cert.clone());
        c.http.tls_key = Some(key.clone());
    })
    .await;
    let s = handshake(
        &connector(&first, vec![kx_group::X25519MLKEM768]),
        server.http_addr,
    )
    .await;
    assert_eq!(presented(&s), first);

    // Modification times have a resolution: make sure the renewal looks newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = certs::write_certificate(dir.path());
    let renewed = connector(&second, vec![kx_group::X25519MLKEM768]);
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let tcp = TcpStream::connect(server.http_addr).await.expect("tcp");
        let name = ServerName::try_from("localhost").expect("name");
        if let Ok(s) = renewed.connect(name, tcp).await {
            assert_eq!(presented(&s), second);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.shutdown();
}

/// TURN over TLS (the embedded relay's `turns:` listener) prefers the hybrid too.
#[tokio::test]
async fn turn_over_tls_prefers_post_quantum_key_exchange() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = certs::write_certificate(dir.path());
    let server = common::server_with(|c| {
        c.turn.tls_cert = Some(dir.path().join("cert.pem"));
        c.turn.tls_key = Some(dir.path().join("key.pem"));
    })
    .await;
    let relay = server.state().turn.as_ref().expect("relay").relay();
    let turns = relay.tls_addrs[0];
    for (groups, expected) in [
        (
            vec![kx_group::X25519MLKEM768, kx_group::X25519],
            NamedGroup::X25519MLKEM768,
        ),
        (vec![kx_group::X25519], NamedGroup::X25519),
    ] {
        let s = handshake(&connector(&cert, groups), turns).await;
        assert_eq!(
            s.get_ref()
                .1
                .negotiated_key_exchange_group()
                .map(|g| g.name()),
            Some(expected)
        );
    }
    server.shutdown();
}

/// SIGHUP reloads the certificate at once, even when the files look unchanged to the watcher
/// (their modification times are put back), and the process goes on serving.
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = certs::write_certificate(dir.path());
    let stamp = std::time::SystemTime::now() - Duration::from_secs(3600);
    let restamp = || {
        for f in [&cert, &key] {
            let file = std::fs::File::options().write(true).open(f).expect("open");
            file.set_modified(stamp).expect("mtime");
        }
    };
    restamp();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["--http-listen", &addr.to_string(), "--rtc-udp-port", "0"])
        .args(["--turn-enabled", "false", "--api-key", common::KEY])
        .arg("--http-tls-cert")
        .arg(&cert)
        .arg("--http-tls-key")
        .arg(&key)
        .env("TERN_API_SECRET", common::SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tern starts");
    let serves = |expected: CertificateDer<'static>, limit: Duration| async move {
        let c = connector(&expected, vec![kx_group::X25519MLKEM768]);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(tcp) = TcpStream::connect(addr).await {
                let name = ServerName::try_from("localhost").expect("name");
                if let Ok(s) = c.connect(name, tcp).await {
                    return presented(&s) == expected;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        serves(first, Duration::from_secs(20)).await,
        "tern serves the first certificate"
    );
    let second = certs::write_certificate(dir.path());
    restamp();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(hup.success());
    let reloaded = serves(second, Duration::from_secs(3)).await;
    let alive = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "SIGHUP ended tern");
    assert!(
        reloaded,
        "the renewed certificate was not served after SIGHUP"
    );
}
