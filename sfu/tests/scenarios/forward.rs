use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::FIRST_SEQ;

use tern_sfu::testkit::{Net, opus_payload, vp8_payload};

#[test]
fn audio_and_video_reach_the_subscriber_intact() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mids = net.publish(alice, &[MediaKind::Audio, MediaKind::Video]);
    net.run_for(Duration::from_secs(2));
    let tracks = net.announced_tracks(bob);
    assert_eq!(tracks.len(), 2, "bob was told of both tracks");

    for n in 0..50u32 {
        net.send_rtp(alice, mids[0], 100 + n as u64, n * 960, &opus_payload(n));
        net.send_rtp(
            alice,
            mids[1],
            5000 + n as u64,
            n * 3000,
            &vp8_payload(n == 0, n),
        );
        net.run_for(Duration::from_millis(20));
    }
    net.run_for(Duration::from_millis(500));

    let audio = net.received(bob, tracks[0]);
    let video = net.received(bob, tracks[1]);
    assert_eq!(audio.len(), 50, "every audio packet arrived");
    assert_eq!(video.len(), 50, "every video packet arrived");
    for (n, p) in audio.iter().enumerate() {
        assert_eq!(
            &*p.payload,
            opus_payload(n as u32).as_slice(),
            "audio payload {n} intact"
        );
        assert_eq!(
            *p.seq_no,
            FIRST_SEQ + n as u64,
            "audio numbered from the subscriber's own start"
        );
    }
    for (n, p) in video.iter().enumerate() {
        assert_eq!(
            &*p.payload,
            vp8_payload(n == 0, n as u32).as_slice(),
            "video payload {n} intact"
        );
    }
    assert!(net.sfu.stats().rtp_forwarded >= 100);
}

#[test]
fn the_publisher_does_not_receive_its_own_tracks() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let _bob = net.join("demo", "bob");
    let mids = net.publish(alice, &[MediaKind::Audio]);
    net.run_for(Duration::from_secs(2));
    for n in 0..10u32 {
        net.send_rtp(alice, mids[0], n as u64 + 1, n * 960, &opus_payload(n));
        net.run_for(Duration::from_millis(20));
    }
    assert!(net.clients[alice].received.is_empty());
    assert!(
        net.clients[alice].track_mids.is_empty(),
        "alice was never offered her own track"
    );
}
