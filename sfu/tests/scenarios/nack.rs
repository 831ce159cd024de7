use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::testkit::{Net, vp8_payload};

/// Video lost on the way from the SFU to bob is retransmitted by the SFU when bob NACKs it.
#[test]
fn video_lost_towards_a_subscriber_is_resent_on_nack() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));
    let track = net.announced_tracks(bob)[0];
    for n in 0..10u32 {
        net.send_rtp(alice, mid, n as u64 + 1, n * 3000, &vp8_payload(n == 0, n));
        net.run_for(Duration::from_millis(30));
    }
    net.clients[bob].drop_inbound_rtp = 3;
    for n in 10..40u32 {
        net.send_rtp(alice, mid, n as u64 + 1, n * 3000, &vp8_payload(false, n));
        net.run_for(Duration::from_millis(30));
    }
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        net.clients[bob].drop_inbound_rtp, 0,
        "three packets were lost on the way to bob"
    );
    let mut tags: Vec<u32> = net
        .received(bob, track)
        .iter()
        .map(|p| u32::from_be_bytes([p.payload[2], p.payload[3], p.payload[4], p.payload[5]]))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(
        tags,
        (0..40).collect::<Vec<_>>(),
        "every frame reached bob, the lost ones by retransmission"
    );
}

/// Video lost on the way from alice to the SFU is NACKed by the SFU, resent by alice, and
/// forwarded to bob.
#[test]
fn video_lost_from_the_publisher_is_nacked_and_forwarded() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));
    let track = net.announced_tracks(bob)[0];
    for n in 0..10u32 {
        net.send_rtp(alice, mid, n as u64 + 1, n * 3000, &vp8_payload(n == 0, n));
        net.run_for(Duration::from_millis(30));
    }
    net.clients[alice].drop_outbound_rtp = 2;
    for n in 10..40u32 {
        net.send_rtp(alice, mid, n as u64 + 1, n * 3000, &vp8_payload(false, n));
        net.run_for(Duration::from_millis(30));
    }
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        net.clients[alice].drop_outbound_rtp, 0,
        "two packets were lost on the way to the SFU"
    );
    let mut tags: Vec<u32> = net
        .received(bob, track)
        .iter()
        .map(|p| u32::from_be_bytes([p.payload[2], p.payload[3], p.payload[4], p.payload[5]]))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(
        tags,
        (0..40).collect::<Vec<_>>(),
        "the SFU recovered the lost packets from alice"
    );
}
