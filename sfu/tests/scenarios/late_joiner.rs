use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::FIRST_SEQ;

use tern_sfu::testkit::{Net, vp8_payload};

/// The publisher's sequence numbers have wrapped past 65535 before bob joins. Bob's stream must
/// start at a small sequence number with consecutive numbers, or SRTP would fail for him.
#[test]
fn a_late_joiner_gets_its_own_continuous_sequence_numbers() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let early = net.join("demo", "early");
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));

    let first_seq = 65_000u64;
    let send = |net: &mut Net, n: u32, key: bool| {
        net.send_rtp(
            alice,
            mid,
            first_seq + n as u64,
            n * 3000,
            &vp8_payload(key, n),
        );
        net.run_for(Duration::from_millis(4));
    };
    for n in 0..700 {
        send(&mut net, n, n % 100 == 0);
    }
    assert!(
        first_seq + 700 > 65_536,
        "the publisher's numbering has rolled over"
    );

    let bob = net.join("demo", "bob");
    net.run_for(Duration::from_secs(2));
    for n in 700..800 {
        send(&mut net, n, n == 750);
    }
    net.run_for(Duration::from_millis(500));

    let track = net.announced_tracks(early)[0];
    assert_eq!(
        net.received(early, track).len(),
        800,
        "the early subscriber got every packet"
    );
    let got = net.received(bob, track);
    assert_eq!(
        got.len(),
        50,
        "bob starts at the first keyframe after he joined (750..800)"
    );
    assert_eq!(&*got[0].payload, vp8_payload(true, 750).as_slice());
    for (k, p) in got.iter().enumerate() {
        assert_eq!(
            *p.seq_no,
            FIRST_SEQ + k as u64,
            "bob's numbering is his own and has no gap"
        );
    }
}
