//! Interop with an independent WebRTC implementation: webrtc-rs participants join the real
//! server on loopback through the signaling protocol, next to str0m participants, and media
//! flows both ways and to a late joiner.

mod common;
// Only this test links webrtc-rs: the client stays out of `common`, which the benches share.
#[path = "common/webrtc_client.rs"]
mod webrtc_client;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::media::MediaKind;
use tokio::task::JoinHandle;

use common::rtc_client::RtcClient;
use tern_sfu::testkit::{opus_payload, vp8_payload};
use tern_sfu::{VideoCodec, is_keyframe};
use webrtc_client::{KEYFRAME_EVERY, Received, WebrtcRsClient};

/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(20);
/// Audio packets (20 ms each) and video packets (one per frame at 25 fps) that must arrive: two
/// seconds of each.
const AUDIO_PACKETS: usize = 100;
const VIDEO_PACKETS: usize = 50;

/// A str0m participant (the existing test client) that publishes Opus and VP8 from a task of
/// its own, answering keyframe requests, and counts what it receives.
struct Str0mPeer {
    participant: String,
    audio: String,
    video: String,
    stop: Arc<AtomicBool>,
    /// Packets received per tern track id, refreshed every step.
    counts: Arc<Mutex<HashMap<String, usize>>>,
    task: JoinHandle<RtcClient>,
}

impl Str0mPeer {
    async fn start(http: SocketAddr, identity: &str, room: &str) -> Str0mPeer {
        let mut c = RtcClient::join(http, identity, room).await;
        let participant = c.joined["participant"]["id"]
            .as_str()
            .expect("participant id")
            .to_string();
        let mids = c.publish(&[MediaKind::Audio, MediaKind::Video]).await;
        assert!(
            c.run_until(LIMIT, |c| c.publisher_connected()
                && c.own_tracks.len() == 2)
                .await,
            "{identity} (str0m): publisher connects and both tracks are published"
        );
        let audio = c.own_tracks[&mids[0].to_string()].clone();
        let video = c.own_tracks[&mids[1].to_string()].clone();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn({
            let stop = stop.clone();
            let counts = counts.clone();
            async move {
                let mut requests_seen = 0;
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    c.send_rtp(mids[0], 1000 + n as u64, n * 960, &opus_payload(n));
                    if n.is_multiple_of(2) {
                        let frame = n / 2;
                        let key = frame.is_multiple_of(KEYFRAME_EVERY)
                            || c.keyframe_requests > requests_seen;
                        requests_seen = c.keyframe_requests;
                        c.send_rtp(
                            mids[1],
                            1000 + frame as u64,
                            frame * 3600,
                            &vp8_payload(key, frame),
                        );
                    }
                    c.run_for(Duration::from_millis(20)).await;
                    *counts.lock().expect("counts") = c
                        .received
                        .iter()
                        .map(|(k, v)| (k.clone(), v.len()))
                        .collect();
                    n += 1;
                }
                c
            }
        });
        Str0mPeer {
            participant,
            audio,
            video,
            stop,
            counts,
            task,
        }
    }

    /// Packets received so far per tern track id.
    fn counts(&self) -> HashMap<String, usize> {
        self.counts.lock().expect("counts").clone()
    }

    fn count(&self, track: &str) -> usize {
        self.counts
            .lock()
            .expect("counts")
            .get(track)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `done` holds; false after `limit`.
    async fn wait_until(&self, limit: Duration, done: impl FnMut(&Self) -> bool) -> bool {
        common::poll_until(self, limit, done).await
    }

    /// Stops the task and hands back the client with everything it received.
    async fn stop(self) -> RtcClient {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("str0m peer task")
    }
}

/// Every payload is one the sender wrote (tagged Opus or VP8 from the testkit), and received
/// video starts at a keyframe.
fn assert_payloads_intact(who: &str, kind: MediaKind, payloads: &[Vec<u8>]) {
    assert!(!payloads.is_empty(), "{who}: no payloads");
    for (i, p) in payloads.iter().enumerate() {
        let expected = match kind {
            MediaKind::Audio => {
                let tag = p.get(1..5).expect("an Opus payload has a tag");
                opus_payload(u32::from_be_bytes(tag.try_into().expect("4 bytes")))
            }
            MediaKind::Video => {
                let tag = p.get(2..6).expect("a VP8 payload has a tag");
                vp8_payload(
                    p.get(1) == Some(&0),
                    u32::from_be_bytes(tag.try_into().expect("4 bytes")),
                )
            }
        };
        assert_eq!(
            p, &expected,
            "{who}: payload {i} differs from what was sent"
        );
    }
    if kind == MediaKind::Video {
        assert!(
            is_keyframe(VideoCodec::Vp8, &payloads[0]),
            "{who}: the first video packet is not a keyframe: {:02x?}",
            &payloads[0][..payloads[0].len().min(8)]
        );
    }
}

/// Checks one track a webrtc-rs client received: count, msid mapping, payloads.
fn assert_received(
    who: &str,
    r: &Received,
    publisher: &str,
    track: &str,
    kind: MediaKind,
    at_least: usize,
) {
    assert!(
        r.packets >= at_least,
        "{who}: {} packets of {track}, expected at least {at_least}",
        r.packets
    );
    assert_eq!(
        r.remote_ids,
        (publisher.to_string(), track.to_string()),
        "{who}: webrtc-rs reads the msid of {track} as <participant> <track>"
    );
    assert_payloads_intact(&format!("{who} receiving {track}"), kind, &r.payloads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_rs_client_and_a_str0m_client_exchange_audio_and_video_through_tern() {
    let server = common::server().await;
    let http = server.http_addr;
    let mut alice = WebrtcRsClient::join(http, "alice", "interop").await;
    let (alice_audio, alice_video) = alice.publish_audio_and_video().await;
    let bob = Str0mPeer::start(http, "bob", "interop").await;
    let started = Instant::now();

    let alice_got_bob = alice
        .wait_until(LIMIT, |a| {
            a.received(&bob.audio).packets >= AUDIO_PACKETS
                && a.received(&bob.video).packets >= VIDEO_PACKETS
        })
        .await;
    let bob_got_alice = bob
        .wait_until(LIMIT, |b| {
            b.count(&alice_audio) >= AUDIO_PACKETS && b.count(&alice_video) >= VIDEO_PACKETS
        })
        .await;
    eprintln!(
        "after {:?}: alice {}; bob received {:?}",
        started.elapsed(),
        alice.diagnostics(),
        bob.counts()
    );
    assert!(
        alice_got_bob,
        "the webrtc-rs client receives the str0m client's audio and video: {}",
        alice.diagnostics()
    );
    assert!(
        bob_got_alice,
        "the str0m client receives the webrtc-rs client's audio and video: {:?}; {}",
        bob.counts(),
        alice.diagnostics()
    );
    assert!(alice.problems().is_empty(), "{:?}", alice.problems());

    let bob_participant = bob.participant.clone();
    let (bob_audio, bob_video) = (bob.audio.clone(), bob.video.clone());
    let bob = bob.stop().await;
    let r = alice.received(&bob_audio);
    assert_received(
        "alice",
        &r,
        &bob_participant,
        &bob_audio,
        MediaKind::Audio,
        AUDIO_PACKETS,
    );
    let r = alice.received(&bob_video);
    assert_received(
        "alice",
        &r,
        &bob_participant,
        &bob_video,
        MediaKind::Video,
        VIDEO_PACKETS,
    );
    for (track, kind) in [
        (&alice_audio, MediaKind::Audio),
        (&alice_video, MediaKind::Video),
    ] {
        let payloads: Vec<Vec<u8>> = bob.received[track]
            .iter()
            .map(|p| p.payload.to_vec())
            .collect();
        assert_payloads_intact(&format!("bob receiving {track}"), kind, &payloads);
    }
    alice.close().await;
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_webrtc_rs_joiner_receives_audio_and_video_from_a_webrtc_rs_and_a_str0m_publisher() {
    let server = common::server().await;
    let http = server.http_addr;
    let mut alice = WebrtcRsClient::join(http, "alice", "late").await;
    let (alice_audio, alice_video) = alice.publish_audio_and_video().await;
    let bob = Str0mPeer::start(http, "bob", "late").await;
    assert!(
        bob.wait_until(LIMIT, |b| b.count(&alice_video) > 0).await
            && alice
                .wait_until(LIMIT, |a| a.received(&bob.video).packets > 0)
                .await,
        "alice and bob receive each other's video before carol joins: bob {:?}; {}",
        bob.counts(),
        alice.diagnostics()
    );
    // Both have been sending for a while, so carol joins mid-GOP.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let joined_at = Instant::now();
    let carol = WebrtcRsClient::join(http, "carol", "late").await;
    let tracks = [
        (&alice.participant, &alice_audio, MediaKind::Audio),
        (&alice.participant, &alice_video, MediaKind::Video),
        (&bob.participant, &bob.audio, MediaKind::Audio),
        (&bob.participant, &bob.video, MediaKind::Video),
    ];
    let wanted = |kind| {
        if kind == MediaKind::Audio {
            AUDIO_PACKETS
        } else {
            VIDEO_PACKETS
        }
    };
    let all_arrived = carol
        .wait_until(LIMIT, |c| {
            tracks
                .iter()
                .all(|(_, t, k)| c.received(t).packets >= wanted(*k))
        })
        .await;
    for (_, t, k) in &tracks {
        let r = carol.received(t);
        eprintln!(
            "carol, {k:?} {t}: on_track after {:?}, first packet after {:?}, {} packets",
            r.track_at.map(|a| a - joined_at),
            r.first_packet_at.map(|a| a - joined_at),
            r.packets
        );
    }
    eprintln!("{}", carol.diagnostics());
    assert!(
        all_arrived,
        "the late webrtc-rs joiner receives both participants' audio and video within {LIMIT:?}: \
         {}; alice: {}",
        carol.diagnostics(),
        alice.diagnostics()
    );
    assert!(carol.problems().is_empty(), "{:?}", carol.problems());
    assert!(alice.problems().is_empty(), "{:?}", alice.problems());
    for (publisher, track, kind) in &tracks {
        assert_received(
            "carol",
            &carol.received(track),
            publisher,
            track,
            *kind,
            wanted(*kind),
        );
    }

    drop(bob.stop().await);
    carol.close().await;
    alice.close().await;
    server.shutdown();
}
