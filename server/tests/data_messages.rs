//! Data messages through tern over WebRTC data channels, with Rust (str0m) clients on loopback:
//! to everyone and to named participants, reliable and lossy, text and binary, the sender
//! stamped by the server, the size limit, the rate limit, the `publish_data` grant, and the
//! REST API's messages. Also the `publish_sources` grant.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use str0m::media::MediaKind;

use common::rtc_client::RtcClient;

/// A client with the `publish_data` grant (or without), its data channels open.
async fn data_client(
    server: &tern_server::Running,
    identity: &str,
    publish_data: bool,
) -> RtcClient {
    let token = common::token_with(identity, "data", |g| g.publish_data = publish_data);
    let mut c = RtcClient::join_with_token(server.http_addr, &token, "data").await;
    c.open_data().await;
    c
}

fn id_of(c: &RtcClient) -> String {
    c.joined["participant"]["id"]
        .as_str()
        .expect("participant id")
        .to_string()
}

/// Runs two or three clients for `d`, all at once.
async fn run_all(clients: &mut [&mut RtcClient], d: Duration) {
    match clients {
        [a, b] => {
            tokio::join!(a.run_for(d), b.run_for(d));
        }
        [a, b, c] => {
            tokio::join!(a.run_for(d), b.run_for(d), c.run_for(d));
        }
        _ => panic!("two or three clients"),
    }
}

/// The text messages `c` received since `from`, as JSON.
fn since(c: &RtcClient, from: usize) -> Vec<Value> {
    c.data_json().into_iter().skip(from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_everyone_or_only_the_named_with_the_sender_stamped_by_tern() {
    let server = common::server().await;
    let mut alice = data_client(&server, "alice", true).await;
    let mut bob = data_client(&server, "bob", true).await;
    let mut carol = data_client(&server, "carol", true).await;
    let (alice_id, bob_id) = (id_of(&alice), id_of(&bob));

    // To everyone, with a forged sender: tern writes the real one.
    let forged = json!({"type": "data", "topic": "chat", "payload": "hello all",
        "from": "PA_999", "identity": "mallory", "id": 1});
    alice.send_data("tern-reliable", false, forged.to_string().as_bytes());
    run_all(
        &mut [&mut alice, &mut bob, &mut carol],
        Duration::from_millis(500),
    )
    .await;
    for c in [&bob, &carol] {
        let got = c.data_json();
        assert_eq!(got.len(), 1, "one message: {got:?}");
        assert_eq!(got[0]["from"], alice_id.as_str(), "the real sender");
        assert_eq!(got[0]["identity"], "alice");
        assert_eq!(got[0]["topic"], "chat");
        assert_eq!(got[0]["payload"], "hello all");
        assert_eq!(got[0]["reliable"], true);
        assert!(got[0].get("to").is_none(), "to everyone names nobody");
    }
    assert!(alice.data.is_empty(), "no echo to the sender");

    // To bob only.
    let private = json!({"type": "data", "to": [bob_id], "payload": "just you"});
    alice.send_data("tern-reliable", false, private.to_string().as_bytes());
    // Lossy, to everyone.
    let lossy = json!({"type": "data", "topic": "cursor", "payload": "12,34"});
    alice.send_data("tern-lossy", false, lossy.to_string().as_bytes());
    // Binary: header, NUL, bytes.
    let mut binary = json!({"type": "data", "topic": "file", "from": "PA_1"})
        .to_string()
        .into_bytes();
    binary.push(0);
    binary.extend_from_slice(&[0, 1, 2, 254, 255]);
    alice.send_data("tern-reliable", true, &binary);
    run_all(
        &mut [&mut alice, &mut bob, &mut carol],
        Duration::from_millis(500),
    )
    .await;

    let bob_new = since(&bob, 1);
    assert!(
        bob_new
            .iter()
            .any(|m| m["payload"] == "just you" && m["to"] == json!([bob_id])),
        "bob gets the private message, addressed to him: {bob_new:?}"
    );
    let carol_new = since(&carol, 1);
    assert!(
        carol_new.iter().all(|m| m["payload"] != "just you"),
        "carol does not: {carol_new:?}"
    );
    for c in [&bob, &carol] {
        let lossy = c
            .data
            .iter()
            .find(|(label, _, bytes)| {
                label == "tern-lossy" && bytes.windows(5).any(|w| w == b"12,34")
            })
            .expect("the lossy message came on the lossy channel");
        let v: Value = serde_json::from_slice(&lossy.2).expect("json");
        assert_eq!(v["reliable"], false);
        let (_, _, bytes) = c
            .data
            .iter()
            .find(|(_, binary, _)| *binary)
            .expect("the binary message arrived as binary");
        let nul = bytes
            .iter()
            .position(|b| *b == 0)
            .expect("header, NUL, payload");
        let header: Value = serde_json::from_slice(&bytes[..nul]).expect("header");
        assert_eq!(header["from"], alice_id.as_str());
        assert_eq!(header["topic"], "file");
        assert_eq!(&bytes[nul + 1..], &[0, 1, 2, 254, 255], "bytes intact");
    }

    // A burst arrives in order, every message.
    let before = bob.data_json().len();
    for n in 0..60 {
        let m = json!({"type": "data", "topic": "chat", "payload": format!("m{n}")});
        alice.send_data("tern-reliable", false, m.to_string().as_bytes());
    }
    let all = |c: &RtcClient| c.data_json().len() >= before + 60;
    let (_, _, done) = tokio::join!(
        alice.run_for(Duration::from_secs(2)),
        carol.run_for(Duration::from_secs(2)),
        bob.run_until(Duration::from_secs(2), all)
    );
    assert!(done, "all 60 arrived");
    let payloads: Vec<String> = since(&bob, before)
        .iter()
        .map(|m| m["payload"].as_str().unwrap_or_default().to_string())
        .collect();
    let expected: Vec<String> = (0..60).map(|n| format!("m{n}")).collect();
    assert_eq!(payloads, expected, "in the order sent");

    // A recipient who is not in the room: the sender is told.
    let nobody = json!({"type": "data", "to": ["PA_999999"], "payload": "?", "id": 9});
    alice.send_data("tern-reliable", false, nobody.to_string().as_bytes());
    alice.run_for(Duration::from_millis(300)).await;
    let err = alice.data_json();
    assert!(
        err.iter()
            .any(|m| m["type"] == "error" && m["code"] == "participant_not_found" && m["id"] == 9),
        "{err:?}"
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_unauthorised_malformed_and_too_many_messages_are_refused_with_a_code() {
    let server = common::server_with(|c| {
        c.sfu.data_max_message_bytes = 2000;
        c.sfu.data_messages_per_sec = 20;
    })
    .await;
    let mut alice = data_client(&server, "alice", true).await;
    let mut viewer = data_client(&server, "viewer", false).await;
    let mut bob = data_client(&server, "bob", true).await;

    let big = json!({"type": "data", "payload": "x".repeat(3000), "id": 1});
    alice.send_data("tern-reliable", false, big.to_string().as_bytes());
    let not_granted = json!({"type": "data", "payload": "let me in", "id": 2});
    viewer.send_data("tern-reliable", false, not_granted.to_string().as_bytes());
    alice.send_data("tern-reliable", false, b"{not json");
    run_all(
        &mut [&mut alice, &mut viewer, &mut bob],
        Duration::from_millis(500),
    )
    .await;

    let codes = |c: &RtcClient| -> Vec<(String, Value)> {
        c.data_json()
            .iter()
            .filter(|m| m["type"] == "error")
            .map(|m| {
                (
                    m["code"].as_str().unwrap_or_default().to_string(),
                    m["id"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        codes(&alice),
        vec![
            ("data_too_large".to_string(), json!(1)),
            ("bad_message".to_string(), Value::Null)
        ]
    );
    assert_eq!(
        codes(&viewer),
        vec![("permission_denied".to_string(), json!(2))]
    );
    assert!(bob.data.is_empty(), "nothing refused reached bob");

    // Receiving needs no grant: the viewer gets alice's messages.
    let hello = json!({"type": "data", "payload": "hi viewer"});
    alice.send_data("tern-reliable", false, hello.to_string().as_bytes());
    run_all(
        &mut [&mut alice, &mut viewer, &mut bob],
        Duration::from_millis(300),
    )
    .await;
    assert!(
        viewer
            .data_json()
            .iter()
            .any(|m| m["payload"] == "hi viewer")
    );

    // 20 a second, bursts of 40: of 100 at once, about 60 are refused.
    let before = bob.data_json().len();
    for n in 0..100 {
        let m = json!({"type": "data", "payload": format!("{n}")});
        alice.send_data("tern-reliable", false, m.to_string().as_bytes());
    }
    run_all(
        &mut [&mut alice, &mut viewer, &mut bob],
        Duration::from_millis(800),
    )
    .await;
    let limited = codes(&alice)
        .iter()
        .filter(|(c, _)| c == "rate_limited")
        .count();
    let delivered = bob.data_json().len() - before;
    assert_eq!(
        limited + delivered,
        100,
        "each message delivered or refused"
    );
    assert!(
        (30..=45).contains(&delivered),
        "the burst and a little: {delivered}"
    );

    let metrics = common::metrics_text(server.http_addr).await;
    assert!(common::metric_sum(&metrics, "tern_data_messages_refused_total") >= 60.0);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_sends_into_a_room_as_the_server() {
    let server = common::server().await;
    let mut bob = data_client(&server, "bob", false).await;
    let mut carol = data_client(&server, "carol", false).await;
    let admin = common::admin_token();
    let auth = format!("Bearer {admin}");
    let post = |body: String, room: &'static str| {
        let auth = auth.clone();
        let http = server.http_addr;
        async move {
            common::http_request(
                "POST",
                http,
                &format!("/api/v1/rooms/{room}/data"),
                Some(&auth),
                Some(&body),
            )
            .await
        }
    };

    let (status, body) = post(
        json!({"payload": "maintenance at 5", "topic": "notice"}).to_string(),
        "data",
    )
    .await;
    assert_eq!((status, body), (200, json!({"recipients": 2})));
    let to_bob = json!({"payload_base64": "AAEC/w==", "to": [id_of(&bob)], "reliable": false});
    let (status, body) = post(to_bob.to_string(), "data").await;
    assert_eq!((status, body), (200, json!({"recipients": 1})));
    run_all(&mut [&mut bob, &mut carol], Duration::from_millis(500)).await;

    for c in [&bob, &carol] {
        let got = c.data_json();
        assert_eq!(got[0]["payload"], "maintenance at 5");
        assert_eq!(got[0]["from"], Value::Null, "from the server");
        assert_eq!(got[0]["identity"], Value::Null);
    }
    let binary: Vec<_> = bob.data.iter().filter(|(_, b, _)| *b).collect();
    assert_eq!(binary.len(), 1, "bob got the bytes");
    assert_eq!(binary[0].0, "tern-lossy");
    assert!(
        binary[0].2.ends_with(&[0, 0, 1, 2, 255]),
        "NUL, then the bytes"
    );
    assert!(carol.data.iter().all(|(_, b, _)| !b), "carol did not");

    let (status, body) = post(json!({"payload": "x"}).to_string(), "nowhere").await;
    assert_eq!(
        (status, body["code"].clone()),
        (404, json!("room_not_found"))
    );
    let (status, body) = post(
        json!({"payload": "x", "payload_base64": "AA=="}).to_string(),
        "data",
    )
    .await;
    assert_eq!((status, body["code"].clone()), (400, json!("bad_request")));
    let (status, body) = post(json!({"payload": "x".repeat(20_000)}).to_string(), "data").await;
    assert_eq!(
        (status, body["code"].clone()),
        (413, json!("data_too_large"))
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_sources_restricts_what_may_be_published() {
    use tern_server::auth::SourceGrant;
    let server = common::server().await;
    let token = |identity: &str| {
        common::token_with(identity, "src", |g| {
            g.publish_sources = Some(vec![SourceGrant::Microphone, SourceGrant::Screen]);
        })
    };
    let mut c = RtcClient::join_with_token(server.http_addr, &token("speaker"), "src").await;
    c.try_publish(&[
        (MediaKind::Audio, "microphone"),
        (MediaKind::Video, "screen"),
    ])
    .await
    .expect("allowed sources publish");
    let refused = [
        (MediaKind::Video, "camera"),
        (MediaKind::Video, "microphone"),
        (MediaKind::Audio, "unknown"),
    ];
    for (n, (kind, source)) in refused.into_iter().enumerate() {
        let identity = format!("other-{n}");
        let mut c = RtcClient::join_with_token(server.http_addr, &token(&identity), "src").await;
        let e = c.try_publish(&[(kind, source)]).await.expect_err("refused");
        assert_eq!(e["code"], "permission_denied", "{kind:?} as {source}: {e}");
    }
    server.shutdown();
}
