//! Redundant audio (RFC 2198): RED passes through to subscribers that negotiated it, is
//! unwrapped for those that did not, and plain audio is wrapped for those that did, so a
//! subscriber recovers from 5 % loss.

use std::time::Duration;

use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::{RedDecoder, RtpPacket};
use tern_sfu::testkit::{Net, NetemConfig, Probability, RandomLoss, opus_payload};

/// Client `i`'s payload types for Opus and its RED.
fn pts(net: &Net, i: usize) -> (u8, Option<u8>) {
    let opus = *net.clients[i]
        .subscriber
        .codec_config()
        .find(|p| p.spec().codec == Codec::Opus)
        .expect("opus");
    (*opus.pt(), opus.red().map(|p| *p))
}

/// The Opus frames a packet carries: its primary, and its redundancy if RED.
fn frames(p: &RtpPacket, red_pt: Option<u8>) -> Vec<Vec<u8>> {
    if Some(*p.header.payload_type) != red_pt {
        return vec![p.payload.to_vec()];
    }
    let blocks = RedDecoder::decode(&p.payload).expect("valid RED");
    blocks.iter().map(|b| b.payload.to_vec()).collect()
}

#[test]
fn red_passes_through_to_red_subscribers_and_is_unwrapped_for_the_others() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let carol = net.join("demo", "carol");
    net.use_red(alice);
    net.use_red(bob);
    let mid = net.publish(alice, &[MediaKind::Audio])[0];
    net.run_for(Duration::from_secs(2));
    for n in 0..50 {
        net.send_red(alice, mid, n);
        net.run_for(Duration::from_millis(20));
    }
    let track = net.announced_tracks(bob)[0];
    let (_, bob_red) = pts(&net, bob);
    let got = net.received(bob, track);
    assert_eq!(got.len(), 50);
    for (n, p) in got.iter().enumerate() {
        assert_eq!(Some(*p.header.payload_type), bob_red, "RED to bob");
        let f = frames(p, bob_red);
        assert_eq!(f.last(), Some(&opus_payload(n as u32)), "primary {n}");
        if n > 0 {
            assert_eq!(
                f.first(),
                Some(&opus_payload(n as u32 - 1)),
                "redundancy {n}"
            );
        }
    }
    let (carol_opus, carol_red) = pts(&net, carol);
    assert_eq!(carol_red, None, "carol did not negotiate RED");
    let got = net.received(carol, track);
    assert_eq!(got.len(), 50);
    for (n, p) in got.iter().enumerate() {
        assert_eq!(*p.header.payload_type, carol_opus, "plain Opus to carol");
        assert_eq!(&*p.payload, opus_payload(n as u32).as_slice());
    }
}

#[test]
fn plain_audio_is_wrapped_for_a_red_subscriber_who_recovers_from_5_percent_loss() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    net.use_red(bob);
    let mid = net.publish(alice, &[MediaKind::Audio])[0];
    net.run_for(Duration::from_secs(2));
    let lossy = NetemConfig::new()
        .loss(RandomLoss::new(Probability::new(0.05)))
        .seed(11);
    net.set_downlink(bob, Some(lossy));
    let sent = 1000;
    for n in 0..sent {
        net.send_rtp(alice, mid, u64::from(n) + 1, n * 960, &opus_payload(n));
        net.run_for(Duration::from_millis(20));
    }
    net.run_for(Duration::from_millis(200));
    let track = net.announced_tracks(bob)[0];
    let (_, bob_red) = pts(&net, bob);
    let got = net.received(bob, track);
    let mut heard = vec![false; sent as usize];
    for p in got {
        assert_eq!(Some(*p.header.payload_type), bob_red, "RED to bob");
        for f in frames(p, bob_red) {
            let n = u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize;
            heard[n] = true;
        }
    }
    let packets = got.len();
    let recovered = heard.iter().filter(|h| **h).count();
    assert!(
        (900..=985).contains(&packets),
        "the link lost about 5 %: {packets} of {sent} packets arrived"
    );
    assert!(
        recovered >= 997,
        "RED recovers all but double losses: {recovered} of {sent} frames"
    );
}
