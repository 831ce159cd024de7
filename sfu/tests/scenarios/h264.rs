use std::time::Duration;

use str0m::format::Codec;
use str0m::media::MediaKind;
use tern_sfu::testkit::Net;

/// An H.264 payload: an IDR slice (keyframe) or a non-IDR slice, tagged with `n`.
fn h264(idr: bool, n: u32) -> Vec<u8> {
    let mut p = vec![if idr { 0x65 } else { 0x41 }];
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&[0x77; 200]);
    p
}

/// A camera that sends H.264 only: H.264 is forwarded as is, subscribers are offered H.264
/// alone, and one that joins mid-stream starts at an IDR.
#[test]
fn h264_is_forwarded_and_late_joiners_start_at_an_idr() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let early = net.join("demo", "early");
    net.publish_video_codec_only(alice, Codec::H264);
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));
    for n in 0..10u32 {
        net.send_rtp_as(
            alice,
            mid,
            Codec::H264,
            n as u64 + 1,
            n * 3000,
            &h264(n == 0, n),
        );
        net.run_for(Duration::from_millis(30));
    }
    let late = net.join("demo", "late");
    net.run_for(Duration::from_secs(1));
    for n in 10..20u32 {
        net.send_rtp_as(
            alice,
            mid,
            Codec::H264,
            n as u64 + 1,
            n * 3000,
            &h264(n == 15, n),
        );
        net.run_for(Duration::from_millis(30));
    }
    let track = net.announced_tracks(early)[0];
    let got = net.received(early, track);
    assert_eq!(got.len(), 20);
    for (n, p) in got.iter().enumerate() {
        assert_eq!(&*p.payload, h264(n == 0 || n == 15, n as u32).as_slice());
    }
    let late_got = net.received(late, track);
    assert_eq!(
        late_got.len(),
        5,
        "the late joiner starts at the IDR (15..20)"
    );
    assert_eq!(&*late_got[0].payload, h264(true, 15).as_slice());
}
