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

/// Two subscribers ask 50 ms apart and one keyframe answers both: the publisher gets one PLI,
/// not a stale second one a second later.
#[test]
fn a_keyframe_answers_every_request_made_before_it() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let subs: Vec<usize> = (0..2).map(|i| net.join("demo", &format!("s{i}"))).collect();
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));
    net.send_rtp(alice, mid, 1, 0, &vp8_payload(true, 0));
    net.run_for(Duration::from_millis(100));
    let track = net.announced_tracks(subs[0])[0];
    let before = net.clients[alice].keyframe_requests;
    for &s in &subs {
        let m = net.sub_mid(s, track);
        net.request_keyframe(s, m);
        net.run_for(Duration::from_millis(50));
    }
    net.send_rtp(alice, mid, 2, 3000, &vp8_payload(true, 1));
    for n in 2..70u32 {
        net.run_for(Duration::from_millis(30));
        net.send_rtp(alice, mid, 1 + n as u64, n * 3000, &vp8_payload(false, n));
    }
    assert_eq!(net.clients[alice].keyframe_requests - before, 1);
}

/// Alice answers every PLI with a keyframe. Bob joined a moment ago and got his; Carol joins
/// 200 ms after him and sees her first frame about as soon as her media connects, not a
/// second later.
#[test]
fn a_late_joiner_gets_a_keyframe_at_once_after_an_earlier_one_was_answered() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(1));
    let mut n = 0u32;
    let mut answered = net.clients[alice].keyframe_requests;
    let mut run = |net: &mut Net, d: Duration| {
        let end = net.now + d;
        while net.now < end {
            // 30 frames a second; a keyframe when one was asked for.
            let asked = net.clients[alice].keyframe_requests > answered;
            answered = net.clients[alice].keyframe_requests;
            net.send_rtp(
                alice,
                mid,
                1 + n as u64,
                n * 3000,
                &vp8_payload(n == 0 || asked, n),
            );
            n += 1;
            net.run_for(Duration::from_millis(33));
        }
    };
    run(&mut net, Duration::from_millis(300));
    let bob = net.join("demo", "bob");
    run(&mut net, Duration::from_millis(200));
    let carol = net.join("demo", "carol");
    let joined = net.now;
    let track = net.announced_tracks(bob)[0];
    let mut first_frame = None;
    for _ in 0..60 {
        run(&mut net, Duration::from_millis(33));
        if first_frame.is_none() && !net.received(carol, track).is_empty() {
            first_frame = Some(net.now - joined);
        }
    }
    assert!(!net.received(bob, track).is_empty());
    let first_frame = first_frame.expect("carol got video");
    assert!(
        first_frame < Duration::from_millis(300),
        "carol's first frame came {first_frame:?} after she joined"
    );
}
