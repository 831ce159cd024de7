//! Resuming a session on a new signaling socket, with Rust (str0m) clients on loopback: a
//! dropped socket is resumed as the same participant and nobody sees it leave; media goes on,
//! through ICE restarts on both connections; a session resumed while its old socket is still
//! open is taken over; past the grace period the participant leaves (`connection_lost`) and a
//! resume is an ordinary join; a resume token is no use to another identity.

mod common;

use std::time::Duration;

use serde_json::Value;
use str0m::media::{MediaKind, Mid};

use common::rtc_client::RtcClient;
use tern_sfu::testkit::opus_payload;

/// One publishing client's audio: its mid, its track, and the next sequence number.
struct Mic {
    mid: Mid,
    track: String,
    seq: u32,
}

async fn publish_mic(c: &mut RtcClient) -> Mic {
    let mid = c.publish(&[MediaKind::Audio]).await[0];
    let known = c
        .run_until(Duration::from_secs(5), |c| {
            c.own_tracks.contains_key(&mid.to_string())
        })
        .await;
    assert!(known, "tern names the track");
    let track = c.own_tracks[&mid.to_string()].clone();
    Mic { mid, track, seq: 0 }
}

/// `from` sends audio until `to` has `more` new packets of it (false after 10 s).
async fn stream(from: &mut RtcClient, mic: &mut Mic, to: &mut RtcClient, more: usize) -> bool {
    let have = |c: &RtcClient| c.received.get(&mic.track).map_or(0, Vec::len);
    let goal = have(to) + more;
    for _ in 0..500 {
        mic.seq += 1;
        from.send_rtp(
            mic.mid,
            u64::from(mic.seq),
            mic.seq * 960,
            &opus_payload(mic.seq),
        );
        tokio::join!(
            from.run_for(Duration::from_millis(20)),
            to.run_for(Duration::from_millis(20))
        );
        if have(to) >= goal {
            return true;
        }
    }
    false
}

fn left(c: &RtcClient) -> Vec<Value> {
    c.messages
        .iter()
        .filter(|m| m["type"] == "participant_left")
        .cloned()
        .collect()
}

/// A `join` on a new socket as `identity`, presenting a resume token; its `joined`.
async fn join_with_resume(
    http: std::net::SocketAddr,
    identity: &str,
    room: &str,
    resume: &str,
) -> Value {
    let mut ws = common::Ws::connect(http).await;
    ws.send(
        serde_json::json!({"type": "join", "v": 1, "token": common::token(identity, room),
        "room": room, "resume": resume}),
    )
    .await;
    ws.expect("joined").await
}

fn ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_is_resumed_as_the_same_participant_and_nobody_sees_it_leave() {
    let server = common::server().await;
    let http = server.http_addr;
    let mut alice = RtcClient::join(http, "alice", "resume").await;
    let mut bob = RtcClient::join(http, "bob", "resume").await;
    let mut alice_mic = publish_mic(&mut alice).await;
    let mut bob_mic = publish_mic(&mut bob).await;
    assert!(
        stream(&mut alice, &mut alice_mic, &mut bob, 5).await,
        "alice reaches bob"
    );
    assert!(
        stream(&mut bob, &mut bob_mic, &mut alice, 5).await,
        "bob reaches alice"
    );
    let id = alice.joined["participant"]["id"].clone();
    let token = alice.joined["resume_token"]
        .as_str()
        .expect("resume_token")
        .to_string();
    assert_eq!(alice.joined["resume_grace_secs"], 15);
    assert_eq!(alice.joined["resumed"], false);

    // Alice's signaling socket dies. Her media goes on meanwhile; bob sees nothing.
    alice.drop_socket(http).await;
    assert!(
        stream(&mut alice, &mut alice_mic, &mut bob, 50).await,
        "media without signaling"
    );
    assert!(
        left(&bob).is_empty(),
        "bob never sees alice leave: {:?}",
        left(&bob)
    );
    // Carol joins while alice is away.
    let carol = RtcClient::join(http, "carol", "resume").await;
    let carol_id = carol.joined["participant"]["id"].clone();
    alice.messages.clear();

    let joined = alice.send_join(Some(&token)).await;
    assert_eq!(joined["resumed"], true, "{joined}");
    assert_eq!(joined["participant"]["id"], id, "the same participant");
    assert_ne!(
        joined["resume_token"],
        token.as_str(),
        "a fresh resume token"
    );
    let others: Vec<&Value> = joined["participants"]
        .as_array()
        .expect("list")
        .iter()
        .collect();
    assert_eq!(others.len(), 2, "bob and carol are there: {joined}");
    assert_eq!(
        joined["local_tracks"],
        serde_json::json!([{"mid": alice_mic.mid.to_string(), "track": {"id": alice_mic.track,
            "participant": id, "kind": "audio", "source": "microphone", "muted": false}}]),
        "alice's own track, with its mid"
    );
    // What alice missed comes after `joined`: carol's arrival.
    let told = alice
        .run_until(Duration::from_secs(3), |c| {
            c.messages
                .iter()
                .any(|m| m["type"] == "participant_joined" && m["participant"]["id"] == carol_id)
        })
        .await;
    assert!(
        told,
        "the missed participant_joined is replayed: {:?}",
        alice.messages
    );
    let tracks: Vec<&Value> = joined["tracks"].as_array().expect("list").iter().collect();
    assert!(
        tracks.iter().all(|t| t["participant"] != id),
        "the tracks are the others': {joined}"
    );

    // ICE restarts on both of alice's connections: new credentials, media goes on both ways.
    let offers_before = alice.offers.len();
    let before = alice.offers.last().cloned().unwrap_or_default();
    alice
        .ws
        .send(serde_json::json!({"type": "restart_ice", "req": 7}))
        .await;
    let restarted = alice
        .run_until(Duration::from_secs(5), |c| c.offers.len() > offers_before)
        .await;
    assert!(
        restarted,
        "tern offers the subscriber connection anew: {:?} {:?}",
        alice.messages,
        alice.offers.len()
    );
    let after = alice.offers.last().cloned().unwrap_or_default();
    assert_ne!(ufrag(&after), ufrag(&before), "with new ICE credentials");
    assert!(
        alice
            .messages
            .iter()
            .any(|m| m["type"] == "ok" && m["req"] == 7),
        "restart_ice is answered ok"
    );
    alice.restart_publisher_ice().await;
    assert!(
        stream(&mut alice, &mut alice_mic, &mut bob, 20).await,
        "alice's media after the restart"
    );
    assert!(
        stream(&mut bob, &mut bob_mic, &mut alice, 20).await,
        "bob's media reaches alice after it"
    );
    assert!(left(&bob).is_empty(), "bob never saw alice leave");

    // The token was used: presenting it again is an ordinary join (which replaces alice).
    let joined = join_with_resume(http, "alice", "resume", &token).await;
    assert_eq!(joined["resumed"], false);
    assert_ne!(joined["participant"]["id"], id);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumed_while_its_old_socket_is_open_is_taken_over() {
    let server = common::server().await;
    let http = server.http_addr;
    let mut alice = RtcClient::join(http, "alice", "takeover").await;
    let mut bob = RtcClient::join(http, "bob", "takeover").await;
    let mut mic = publish_mic(&mut alice).await;
    assert!(stream(&mut alice, &mut mic, &mut bob, 5).await);
    let id = alice.joined["participant"]["id"].clone();
    let token = alice.joined["resume_token"]
        .as_str()
        .expect("token")
        .to_string();

    let (mut old, joined) = alice.take_over(http, &token).await;
    assert_eq!(joined["resumed"], true);
    assert_eq!(joined["participant"]["id"], id);
    assert!(
        old.closes_within(Duration::from_secs(3)).await,
        "tern closes the old socket"
    );
    assert!(stream(&mut alice, &mut mic, &mut bob, 20).await);
    assert!(
        left(&bob).is_empty(),
        "nobody saw alice leave: {:?}",
        left(&bob)
    );

    // Another identity cannot use alice's token: an ordinary join, alice untouched.
    let token = alice.joined["resume_token"]
        .as_str()
        .expect("token")
        .to_string();
    let joined = join_with_resume(http, "carol", "takeover", &token).await;
    assert_eq!(joined["resumed"], false);
    assert_ne!(joined["participant"]["id"], id);
    assert!(
        stream(&mut alice, &mut mic, &mut bob, 5).await,
        "alice still publishes"
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_period_the_participant_leaves_and_a_resume_joins_anew() {
    let server = common::server_with(|c| c.signaling.resume_grace_secs = 1).await;
    let http = server.http_addr;
    let mut alice = RtcClient::join(http, "alice", "grace").await;
    let mut bob = RtcClient::join(http, "bob", "grace").await;
    let id = alice.joined["participant"]["id"].clone();
    let token = alice.joined["resume_token"]
        .as_str()
        .expect("token")
        .to_string();

    alice.drop_socket(http).await;
    let started = std::time::Instant::now();
    let gone = bob
        .run_until(Duration::from_secs(8), |c| !left(c).is_empty())
        .await;
    assert!(gone, "bob is told once the grace period is over");
    let told = left(&bob);
    assert_eq!(told[0]["participant"], id);
    assert_eq!(told[0]["reason"], "connection_lost");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the grace period"
    );

    let joined = alice.send_join(Some(&token)).await;
    assert_eq!(joined["resumed"], false, "{joined}");
    assert_ne!(joined["participant"]["id"], id, "a new participant");
    server.shutdown();
}
