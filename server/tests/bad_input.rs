//! Malformed and hostile input over the real server: clear errors or counted drops, never a
//! panic, and the other participants are unaffected.

mod common;

use std::time::Duration;

use serde_json::json;
use str0m::media::MediaKind;
use tokio_tungstenite::tungstenite::Message;

use common::Ws;
use common::rtc_client::RtcClient;
use tern_sfu::testkit::opus_payload;

#[tokio::test]
async fn malformed_messages_get_error_codes_and_the_session_survives() {
    let server = common::server().await;
    let (mut ws, _) = common::join(server.http_addr, "alice", "demo").await;
    let cases = [
        ("{not json", "bad_message"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"no_type":1}"#, "bad_message"),
        (r#"{"type":"subscribe","tracks":"TR_1"}"#, "bad_message"),
        (
            r#"{"type":"subscribe","tracks":["TR_404"],"req":1}"#,
            "track_not_found",
        ),
        (
            r#"{"type":"mute","track":"TR_404","muted":true,"req":2}"#,
            "track_not_found",
        ),
        (
            r#"{"type":"track_settings","track":"TR_404","width":320,"height":180,"req":6}"#,
            "track_not_found",
        ),
        (
            r#"{"type":"track_settings","track":"TR_1","width":320,"req":7}"#,
            "bad_message",
        ),
        (
            r#"{"type":"track_settings","track":"TR_1","width":0,"height":180,"req":8}"#,
            "bad_message",
        ),
        (
            r#"{"type":"track_settings","track":"TR_1","width":99999,"height":180,"req":9}"#,
            "bad_message",
        ),
        (r#"{"type":"answer","sdp":"v=0\r\n","req":3}"#, "bad_sdp"),
        (
            r#"{"type":"offer","sdp":"garbage","tracks":[],"req":4}"#,
            "bad_sdp",
        ),
        (
            r#"{"type":"candidate","target":"publisher","candidate":"candidate:junk","req":5}"#,
            "bad_candidate",
        ),
        (
            r#"{"type":"candidate","target":"sideways","candidate":""}"#,
            "bad_message",
        ),
        (
            r#"{"type":"join","v":1,"token":"x","room":"demo"}"#,
            "already_joined",
        ),
    ];
    for (text, code) in cases {
        ws.send_raw(Message::text(text)).await;
        let reply = ws.expect("error").await;
        assert_eq!(reply["code"], code, "{text} gave {reply}");
    }
    ws.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(ws.expect("error").await["code"], "bad_message");
    ws.send(json!({"type": "ping"})).await;
    ws.expect("pong").await;
    server.shutdown();
}

#[tokio::test]
async fn messages_before_join_and_bad_versions_are_refused() {
    let server = common::server().await;
    let mut ws = Ws::connect(server.http_addr).await;
    ws.send(json!({"type": "subscribe", "tracks": [], "req": 1}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "not_joined");
    ws.send(json!({"type": "join", "v": 99, "token": common::token("a", "r"), "room": "r"}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "unsupported_version");
    ws.send(json!({"type": "join", "v": 1, "token": common::token("a", ""), "room": ""}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "bad_room");
    server.shutdown();
}

#[tokio::test]
async fn an_oversized_message_closes_only_that_socket_with_1009() {
    let server = common::server_with(|c| c.signaling.max_message_bytes = 4096).await;
    let (mut bob, _) = common::join(server.http_addr, "bob", "demo").await;
    let (mut mallory, _) = common::join(server.http_addr, "mallory", "demo").await;
    let huge = format!(r#"{{"type":"answer","sdp":"{}"}}"#, "a".repeat(10_000));
    mallory.send_raw(Message::text(huge.clone())).await;
    assert_eq!(
        mallory.close_code_within(Duration::from_secs(5)).await,
        Some(1009),
        "the oversized sender is told why (RFC 6455 7.4.1) and disconnected"
    );
    // Before joining, too.
    let mut stranger = Ws::connect(server.http_addr).await;
    stranger.send_raw(Message::text(huge)).await;
    assert_eq!(
        stranger.close_code_within(Duration::from_secs(5)).await,
        Some(1009)
    );
    let left = bob.expect("participant_left").await;
    assert_eq!(left["reason"], "left");
    bob.send(json!({"type": "ping"})).await;
    bob.expect("pong").await;
    server.shutdown();
}

#[tokio::test]
async fn a_silent_socket_is_closed_at_the_join_timeout() {
    let server = common::server_with(|c| c.signaling.join_timeout_secs = 1).await;
    let mut ws = Ws::connect(server.http_addr).await;
    assert_eq!(ws.expect("error").await["code"], "join_timeout");
    assert!(ws.closes_within(Duration::from_secs(3)).await);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_are_dropped_and_counted_while_media_flows() {
    let server = common::server_with(|c| c.rtc.workers = 1).await;
    let media = server.media_addrs[0];
    let mut alice = RtcClient::join(server.http_addr, "alice", "g").await;
    let mut bob = RtcClient::join(server.http_addr, "bob", "g").await;
    let mid = alice.publish(&[MediaKind::Audio]).await[0];
    tokio::join!(
        alice.run_for(Duration::from_secs(2)),
        bob.run_for(Duration::from_secs(2))
    );
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let junk: [&[u8]; 6] = [
        &[],
        &[0xFF; 64],
        &[0x00, 0x01, 0x00, 0x50],
        &[0x80; 12],
        &[0x16; 300],
        &[0x41; 1200],
    ];
    for n in 0..50u32 {
        for j in junk {
            let _ = attacker.send_to(j, media).await;
        }
        alice.send_rtp(mid, n as u64 + 1, n * 960, &opus_payload(n));
        tokio::join!(
            alice.run_for(Duration::from_millis(10)),
            bob.run_for(Duration::from_millis(10))
        );
    }
    bob.run_for(Duration::from_millis(300)).await;
    let track = &alice.own_tracks[&mid.to_string()];
    assert_eq!(
        bob.received.get(track).map_or(0, |v| v.len()),
        50,
        "bob's audio was not disturbed"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // workers publish counters once a second
    let metrics = common::metrics_text(server.http_addr).await;
    let dropped = common::metric_sum(&metrics, "tern_dropped_unrouted_total")
        + common::metric_sum(&metrics, "tern_dropped_malformed_total");
    assert!(dropped >= 250.0, "junk was counted: {dropped}");
    server.shutdown();
}
