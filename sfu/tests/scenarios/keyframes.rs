use std::time::Duration;

use str0m::media::MediaKind;

use tern_sfu::testkit::{Net, vp8_payload};

/// Five subscribers each ask for a keyframe every 50 ms for three seconds: the publisher sees
/// about one request per second, not a hundred.
#[test]
fn keyframe_requests_are_coalesced_to_one_per_second() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let subs: Vec<usize> = (0..5).map(|i| net.join("demo", &format!("s{i}"))).collect();
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));
    let track = net.announced_tracks(subs[0])[0];
    net.send_rtp(alice, mid, 1, 0, &vp8_payload(true, 0));
    net.run_for(Duration::from_millis(100));
    let before = net.clients[alice].keyframe_requests;

    for n in 0..60u32 {
        for &s in &subs {
            let m = net.sub_mid(s, track);
            net.request_keyframe(s, m);
        }
        net.send_rtp(alice, mid, 2 + n as u64, n * 3000, &vp8_payload(false, n));
        net.run_for(Duration::from_millis(50));
    }
    let requests = net.clients[alice].keyframe_requests - before;
    assert!(
        (2..=4).contains(&requests),
        "3 s of requests from 5 subscribers became {requests} PLIs"
    );
    assert!(net.sfu.stats().keyframe_requests_coalesced > 100);
}

/// A subscriber that joins mid-stream gets nothing until a keyframe, and the SFU asks for one.
#[test]
fn a_new_subscriber_waits_for_a_keyframe_and_one_is_requested() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(1));
    for n in 0..10u32 {
        net.send_rtp(alice, mid, n as u64 + 1, n * 3000, &vp8_payload(n == 0, n));
        net.run_for(Duration::from_millis(30));
    }
    let before = net.clients[alice].keyframe_requests;
    let bob = net.join("demo", "bob");
    net.run_for(Duration::from_secs(2));
    for n in 10..20u32 {
        net.send_rtp(alice, mid, n as u64 + 1, n * 3000, &vp8_payload(false, n));
        net.run_for(Duration::from_millis(30));
    }
    let track = net.announced_tracks(bob)[0];
    assert!(
        net.received(bob, track).is_empty(),
        "interframes alone are not forwarded to bob"
    );
    assert!(
        net.clients[alice].keyframe_requests > before,
        "the SFU asked alice for a keyframe"
    );
    net.send_rtp(alice, mid, 21, 21 * 3000, &vp8_payload(true, 21));
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        net.received(bob, track).len(),
        1,
        "the keyframe is forwarded"
    );
}
