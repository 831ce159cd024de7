//! tern serves HTTPS and WSS itself: the key exchange prefers the hybrid post-quantum
//! X25519MLKEM768 and still accepts X25519 alone, signaling works over WSS, and a renewed
//! certificate is served without a restart.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
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

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Writes a fresh self-signed certificate for localhost; returns its DER.
fn write_certificate(dir: &Path) -> CertificateDer<'static> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let der = generated.cert.der().clone();
    // Write to temporary names, then rename: the server never reads a half-written file.
    std::fs::write(dir.join("cert.tmp"), pem("CERTIFICATE", &der)).expect("write");
    std::fs::write(
        dir.join("key.tmp"),
        pem("PRIVATE KEY", &generated.signing_key.serialize_der()),
    )
    .expect("write");
    std::fs::rename(dir.join("key.tmp"), dir.join("key.pem")).expect("rename");
    std::fs::rename(dir.join("cert.tmp"), dir.join("cert.pem")).expect("rename");
    der
}

fn presented(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().expect("certificates")[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let first = write_certificate(dir.path());
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
    let second = write_certificate(dir.path());
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
    let cert = write_certificate(dir.path());
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
