//! The real server on loopback: Rust WebRTC clients join through the WebSocket, one publishes
//! synthetic Opus and VP8, the other receives it intact.

mod common;

use std::time::Duration;

use str0m::media::{MediaKind, Mid};

use common::rtc_client::RtcClient;
use tern_sfu::testkit::{opus_payload, vp8_payload};

/// Alice publishes audio and video on a server without congestion control; bob has
/// subscribed. Returns the server, both clients and alice's mids.
async fn alice_publishes_to_bob() -> (tern_server::Running, RtcClient, RtcClient, Vec<Mid>) {
    // This is about the media path, not congestion control: on a loaded machine the
    // subscriber's timing jitter reads as congestion, and a paused video drops packets.
    let server = common::server_with(|c| c.sfu.congestion_control = false).await;
    let mut alice = RtcClient::join(server.http_addr, "alice", "loop").await;
    let mut bob = RtcClient::join(server.http_addr, "bob", "loop").await;
    let mids = alice.publish(&[MediaKind::Audio, MediaKind::Video]).await;
    assert!(
        alice
            .run_until(Duration::from_secs(10), |c| c.publisher_connected())
            .await,
        "alice's media connects"
    );
    // Bob learns of the tracks and answers the server's offer while alice connects.
    tokio::join!(
        alice.run_for(Duration::from_secs(2)),
        bob.run_for(Duration::from_secs(2))
    );
    (server, alice, bob, mids)
}

/// Alice sends `count` Opus and `count` VP8 packets, 10 ms apart.
async fn send_media(alice: &mut RtcClient, bob: &mut RtcClient, mids: &[Mid], count: u32) {
    for n in 0..count {
        alice.send_rtp(mids[0], 1000 + n as u64, n * 960, &opus_payload(n));
        alice.send_rtp(
            mids[1],
            2000 + n as u64,
            n * 3000,
            &vp8_payload(n % 50 == 0, n),
        );
        tokio::join!(
            alice.run_for(Duration::from_millis(10)),
            bob.run_for(Duration::from_millis(10))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forwarded_packet_is_counted_in_the_forwarding_latency_histogram() {
    let (server, mut alice, mut bob, mids) = alice_publishes_to_bob().await;
    let before = common::metrics_text(server.http_addr).await;
    let count0 = common::metric_sum(&before, "tern_forward_latency_seconds_count");
    let forwarded0 = common::metric_sum(&before, "tern_rtp_forwarded_total");
    send_media(&mut alice, &mut bob, &mids, 20).await;
    // Workers record their metrics once a second.
    let mut text = String::new();
    for _ in 0..30 {
        tokio::join!(
            alice.run_for(Duration::from_millis(100)),
            bob.run_for(Duration::from_millis(100))
        );
        text = common::metrics_text(server.http_addr).await;
        if common::metric_sum(&text, "tern_forward_latency_seconds_count") - count0 >= 40.0 {
            break;
        }
    }
    let count = common::metric_sum(&text, "tern_forward_latency_seconds_count") - count0;
    let forwarded = common::metric_sum(&text, "tern_rtp_forwarded_total") - forwarded0;
    // One subscriber: each received packet forwarded once, each counted once.
    assert_eq!(
        count, forwarded,
        "one latency per forwarded packet:\n{text}"
    );
    assert!(count >= 40.0, "40 packets sent, {count} counted");
    let inf = text
        .lines()
        .filter(|l| {
            l.starts_with("tern_forward_latency_seconds_bucket{") && l.contains("le=\"+Inf\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(inf, count + count0, "the +Inf bucket holds every latency");
    let sum = common::metric_sum(&text, "tern_forward_latency_seconds_sum");
    assert!(
        sum > 0.0 && sum / inf < 0.5,
        "a mean latency under 0.5 s: {sum} s over {inf}"
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_and_vp8_from_one_client_arrive_intact_at_another() {
    let (server, mut alice, mut bob, mids) = alice_publishes_to_bob().await;
    send_media(&mut alice, &mut bob, &mids, 100).await;
    let audio_track = alice.own_tracks[&mids[0].to_string()].clone();
    let video_track = alice.own_tracks[&mids[1].to_string()].clone();
    // Alice keeps running too: her pacer may still hold the last video packets.
    let all_in = |c: &RtcClient| {
        [&audio_track, &video_track]
            .iter()
            .all(|t| c.received.get(*t).is_some_and(|v| v.len() >= 100))
    };
    tokio::join!(
        alice.run_for(Duration::from_secs(2)),
        bob.run_until(Duration::from_secs(2), all_in)
    );

    let (audio_track, video_track) = (&audio_track, &video_track);
    let audio = bob
        .received
        .get(audio_track)
        .map_or(&[][..], |v| v.as_slice());
    let video = bob
        .received
        .get(video_track)
        .map_or(&[][..], |v| v.as_slice());
    let tags = |packets: &[str0m::rtp::RtpPacket]| -> Vec<u32> {
        packets
            .iter()
            .filter_map(|p| Some(u32::from_be_bytes(p.payload.get(2..6)?.try_into().ok()?)))
            .collect()
    };
    assert_eq!(audio.len(), 100, "every Opus packet arrived at bob");
    assert_eq!(
        video.len(),
        100,
        "every VP8 packet arrived at bob; tags received: {:?}",
        tags(video)
    );
    for (n, p) in audio.iter().enumerate() {
        assert_eq!(&*p.payload, opus_payload(n as u32).as_slice());
    }
    for (n, p) in video.iter().enumerate() {
        assert_eq!(&*p.payload, vp8_payload(n % 50 == 0, n as u32).as_slice());
    }
    server.shutdown();
}
