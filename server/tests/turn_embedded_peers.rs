//! The embedded relay serves participants and only them, and only towards the SFU: a
//! participant's own TURN credentials, used from a real UDP socket, cannot bind a channel to
//! another UDP service on the SFU's IP or to the relay's own listener, Send indications to such
//! a port never arrive, and a participant that leaves loses its allocation and its credentials.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tern_turn::server::auth::rest_credential;
use tern_turn::testkit::{Outcome, Sign, TestClient};
use tern_turn::{Message, attr};
use tokio::net::UdpSocket;

const SECRET: &str = "turn-secret-for-the-embedded-peer-test";

/// Sends `request` to the relay and returns its answer.
async fn ask(sock: &UdpSocket, relay: SocketAddr, request: &[u8]) -> Outcome {
    sock.send_to(request, relay).await.expect("send");
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("the relay answers")
        .expect("recv");
    Outcome::Reply(buf[..n].to_vec())
}

/// The 401 round trip, then a signed Allocate; returns the answer to the second.
async fn allocate(sock: &UdpSocket, relay: SocketAddr, c: &mut TestClient) -> Outcome {
    let challenge = ask(sock, relay, &c.allocate_request(Sign::None)).await;
    assert_eq!(challenge.code(), 401, "an unsigned Allocate is challenged");
    c.learn(&challenge);
    ask(sock, relay, &c.allocate_request(Sign::Sha1)).await
}

/// True when something arrives on `sock` within `d`.
async fn receives_within(sock: &UdpSocket, d: Duration) -> bool {
    let mut buf = [0u8; 2048];
    tokio::time::timeout(d, sock.recv_from(&mut buf))
        .await
        .is_ok()
}

/// A server with one worker whose embedded relay uses [`SECRET`].
async fn server() -> tern_server::Running {
    common::server_with(|c| {
        c.rtc.workers = 1;
        c.turn.secret = Some(SECRET.into());
    })
    .await
}

#[tokio::test]
async fn a_participants_credentials_reach_the_sfu_media_port_and_nothing_else_on_its_host() {
    let server = server().await;
    let turn = server.state().turn.as_ref().expect("embedded relay");
    let listener = turn.relay().udp_addrs[0];
    let sfu = server.media_addrs[0];
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let username = format!("{expiry}:PA_9");
    let mut c = TestClient::udp(
        "127.0.0.1:1",
        &username,
        &rest_credential(SECRET, &username),
    );

    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let allocated = allocate(&sock, listener, &mut c).await;
    assert_eq!(
        allocated.code(),
        0,
        "Allocate with the participant's credentials"
    );
    let relayed = Message::parse(allocated.bytes())
        .expect("parses")
        .xor_address(attr::XOR_RELAYED_ADDRESS)
        .expect("relayed address");

    assert_eq!(
        ask(&sock, listener, &c.create_permission(&[sfu]))
            .await
            .code(),
        0
    );
    assert_eq!(
        ask(&sock, listener, &c.channel_bind(0x4001, sfu))
            .await
            .code(),
        0
    );

    // Another UDP service on the SFU's address, and the relay's own listener.
    let other = UdpSocket::bind(SocketAddr::new(sfu.ip(), 0))
        .await
        .expect("bind");
    let other_addr = other.local_addr().expect("addr");
    for refused in [other_addr, listener] {
        let reply = ask(&sock, listener, &c.channel_bind(0x4002, refused)).await;
        assert_eq!(reply.code(), 403, "ChannelBind to {refused}");
    }
    sock.send_to(&c.send_indication(other_addr, b"probe"), listener)
        .await
        .expect("send");
    assert!(
        !receives_within(&other, Duration::from_millis(500)).await,
        "a Send indication to another port of the SFU's host arrived"
    );
    // Nor does the other service reach the participant through the relay.
    other.send_to(b"spoof", relayed).await.expect("send");
    assert!(!receives_within(&sock, Duration::from_millis(500)).await);

    // Two ChannelBinds, the Send indication and the spoofed datagram. An ephemeral port may
    // fall in the relay's own port range, so either reason may be counted. Workers publish
    // their counters once a second.
    let refused = |r: &tern_turn::net::Relay| -> u64 {
        let stats = r.stats();
        ["port_not_allowed", "own_address"]
            .iter()
            .filter_map(|reason| stats.refused_peers.get(reason))
            .sum()
    };
    let counted =
        common::poll_until(turn.relay(), Duration::from_secs(3), |r| refused(r) == 4).await;
    let stats = turn.relay().stats();
    assert!(counted, "{stats:?}");
    assert_eq!(stats.to_peer_packets, 0, "{stats:?}");
    server.shutdown();
}

#[tokio::test]
async fn a_participant_that_leaves_loses_its_relay_allocation_and_credentials() {
    let server = server().await;
    let turn = server.state().turn.as_ref().expect("embedded relay");
    let listener = turn.relay().udp_addrs[0];
    let (mut ws, joined) = common::join(server.http_addr, "leaver", "room").await;
    let ice = &joined["ice_servers"][0];
    let (user, pass) = (
        ice["username"].as_str().expect("username"),
        ice["credential"].as_str().expect("credential"),
    );
    let mut c = TestClient::udp("127.0.0.1:1", user, pass);
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let allocated = allocate(&sock, listener, &mut c).await;
    assert_eq!(
        allocated.code(),
        0,
        "the participant's credentials allocate"
    );
    assert_eq!(turn.relay().allocations(), 1);

    ws.send(serde_json::json!({"type": "leave"})).await;
    assert!(ws.closes_within(Duration::from_secs(5)).await);
    assert!(
        common::poll_until(turn.relay(), Duration::from_secs(3), |r| r.allocations()
            == 0)
        .await,
        "the allocation ends when its participant leaves"
    );
    let mut again = TestClient::udp("127.0.0.1:1", user, pass);
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let refused = allocate(&sock, listener, &mut again).await;
    assert_eq!(refused.code(), 401, "its credentials are revoked");
    server.shutdown();
}
