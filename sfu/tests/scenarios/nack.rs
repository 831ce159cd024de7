use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::SfuConfig;
use tern_sfu::testkit::{Net, vp8_payload};

/// Alice sends 40 VP8 frames to bob; `lose` arranges for some to be lost after the 10th.
/// Returns the frame tags bob got, deduplicated and sorted, and the drops still pending.
fn send_with_loss(lose: impl FnOnce(&mut Net, usize, usize)) -> (Vec<u32>, usize) {
    send_with_loss_through(SfuConfig::default(), lose)
}

fn send_with_loss_through(
    config: SfuConfig,
    lose: impl FnOnce(&mut Net, usize, usize),
) -> (Vec<u32>, usize) {
    let mut net = Net::with_config(config);
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));
    let track = net.announced_tracks(bob)[0];
    let send = |net: &mut Net, frames: std::ops::Range<u32>| {
        for n in frames {
            net.send_rtp(alice, mid, n as u64 + 1, n * 3000, &vp8_payload(n == 0, n));
            net.run_for(Duration::from_millis(30));
        }
    };
    send(&mut net, 0..10);
    lose(&mut net, alice, bob);
    send(&mut net, 10..40);
    net.run_for(Duration::from_secs(1));
    let pending = net.clients[alice].drop_outbound_rtp + net.clients[bob].drop_inbound_rtp;
    let mut tags: Vec<u32> = net
        .received(bob, track)
        .iter()
        .map(|p| u32::from_be_bytes([p.payload[2], p.payload[3], p.payload[4], p.payload[5]]))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    (tags, pending)
}

/// Video lost on the way from the SFU to bob is retransmitted by the SFU when bob NACKs it.
#[test]
fn video_lost_towards_a_subscriber_is_resent_on_nack() {
    let (tags, pending) = send_with_loss(|net, _, bob| net.clients[bob].drop_inbound_rtp = 3);
    assert_eq!(pending, 0, "three packets were lost on the way to bob");
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
    let (tags, pending) = send_with_loss(|net, alice, _| net.clients[alice].drop_outbound_rtp = 2);
    assert_eq!(pending, 0, "two packets were lost on the way to the SFU");
    assert_eq!(
        tags,
        (0..40).collect::<Vec<_>>(),
        "the SFU recovered the lost packets from alice"
    );
}

/// The retransmission buffer is the configured one: kept for 1 ms, a packet lost on the way
/// to bob is gone by the time bob's NACK arrives (with the next frame, 30 ms later).
#[test]
fn a_subscription_keeps_only_its_configured_retransmission_buffer() {
    let config = SfuConfig {
        rtx_buffer_ms: 1,
        ..SfuConfig::default()
    };
    let (tags, _) = send_with_loss_through(config, |net, _, bob| {
        net.clients[bob].drop_inbound_rtp = 3;
    });
    let missing: Vec<u32> = (0..40).filter(|t| !tags.contains(t)).collect();
    assert_eq!(missing.len(), 3, "the lost frames stay lost: {missing:?}");
}
