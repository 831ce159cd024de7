//! The SDP tern writes: what a client written from the RFCs alone relies on.

use std::time::Duration;

use str0m::format::Codec;
use str0m::media::MediaKind;
use tern_sfu::testkit::{Net, SERVER};
use tern_sfu::{Notice, TrackId};

/// The m-sections of an SDP, each as its lines.
fn sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            out.push(Vec::new());
        }
        if let Some(s) = out.last_mut() {
            s.push(line);
        }
    }
    out
}

/// Every m-section carries the transport: the server's port, its address, its candidate, and
/// the end-of-candidates marker (RFC 8829 5.2.1/5.3.1, RFC 8843, RFC 8840).
fn assert_every_m_line_carries_the_transport(sdp: &str) {
    let port = SERVER.rsplit(':').next().expect("port");
    let ip = SERVER.rsplit_once(':').expect("ip").0;
    let all = sections(sdp);
    assert!(all.len() >= 2, "{sdp}");
    for s in all {
        let m: Vec<&str> = s[0].split(' ').collect();
        assert_eq!(m[1], port, "m-line on the candidate's port: {}", s[0]);
        assert!(s.contains(&format!("c=IN IP4 {ip}").as_str()), "{s:?}");
        assert!(
            s.iter()
                .any(|l| l.starts_with("a=candidate:") && l.contains(&format!(" {ip} {port} "))),
            "{s:?}"
        );
        assert!(s.contains(&"a=end-of-candidates"), "{s:?}");
    }
}

fn last_offer(net: &Net, i: usize) -> &str {
    net.clients[i]
        .notices
        .iter()
        .rev()
        .find_map(|n| match n {
            Notice::SubscriberOffer(sdp) => Some(sdp.as_str()),
            _ => None,
        })
        .expect("an offer")
}

/// A client that reads the transport from any m-line of the bundle finds it in every one.
#[test]
fn every_m_line_of_the_servers_offers_and_answers_carries_the_transport() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    net.publish(alice, &[MediaKind::Audio, MediaKind::Video]);
    net.run_for(Duration::from_millis(200));
    assert_every_m_line_carries_the_transport(&net.clients[alice].answers[0]);
    assert_every_m_line_carries_the_transport(last_offer(&net, bob));
}

/// A VP8 track is offered to a subscriber as VP8 and its RTX, nothing else: a client cannot
/// pick a codec that would never flow.
#[test]
fn a_subscriber_is_offered_only_the_codec_the_publisher_sends() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    net.publish(alice, &[MediaKind::Video]);
    net.run_for(Duration::from_millis(200));
    let offer = last_offer(&net, bob);
    let video = sections(offer)
        .into_iter()
        .find(|s| s[0].starts_with("m=video"))
        .expect("a video m-line");
    let pts: Vec<&str> = video[0].split(' ').skip(3).collect();
    assert_eq!(pts.len(), 2, "VP8 and its RTX only: {}", video[0]);
    let rtpmaps: Vec<&&str> = video
        .iter()
        .filter(|l| l.starts_with("a=rtpmap:"))
        .collect();
    assert_eq!(rtpmaps.len(), 2, "{rtpmaps:?}");
    assert!(rtpmaps.iter().any(|l| l.ends_with(" VP8/90000")));
    assert!(rtpmaps.iter().any(|l| l.ends_with(" rtx/90000")));
    assert!(!offer.contains("H264"), "{offer}");
}

/// A subscriber that can only receive VP8, in a room where the camera sends H.264: it is told,
/// with a stable code, that the track cannot reach it, and the refusal is counted. Everyone
/// else still gets the track.
#[test]
fn a_subscriber_that_cannot_receive_the_codec_is_told_so() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let vp8_only = net.join("demo", "vp8-only");
    net.receive_only_video_codec(vp8_only, Codec::Vp8);
    let bob = net.join("demo", "bob");
    net.publish_video_codec_only(alice, Codec::H264);
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_millis(500));

    let track: TrackId = net.announced_tracks(bob)[0];
    let told = net.clients[vp8_only].notices.iter().any(|n| {
        matches!(n, Notice::SubscriptionFailed { track: t, code: "codec_unsupported", .. } if *t == track)
    });
    assert!(told, "{:?}", net.clients[vp8_only].notices);
    assert_eq!(net.sfu.stats().subscriptions_refused, 1);
    assert!(
        !net.clients[bob]
            .notices
            .iter()
            .any(|n| matches!(n, Notice::SubscriptionFailed { .. })),
        "bob can receive H.264"
    );
    let idr = [0x65, 0x88, 0x84, 0x00];
    net.send_rtp_as(alice, mid, Codec::H264, 1, 0, &idr);
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.received(bob, track).len(), 1, "bob gets the IDR");
}

/// Alice negotiated VP8 and H.264 and sends VP8, the first codec of the answer; Bob's m-line
/// carries VP8 only. When Alice switches to H.264, Bob is offered the track again in a new
/// m-line (same msid) in H.264, and his video resumes at the next IDR.
#[test]
fn a_publisher_switching_codec_is_followed_by_its_subscribers() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_millis(500));
    let track: TrackId = net.announced_tracks(bob)[0];
    let first_mid = net.sub_mid(bob, track);
    net.send_rtp(alice, mid, 1, 0, &tern_sfu::testkit::vp8_payload(true, 0));
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.received(bob, track).len(), 1, "VP8 flows");

    let idr = |n: u8| vec![0x65, 0x88, n, 0x00];
    for n in 0..5u8 {
        net.send_rtp_as(
            alice,
            mid,
            Codec::H264,
            2 + n as u64,
            3000 * (n as u32 + 1),
            &idr(n),
        );
        net.run_for(Duration::from_millis(100));
    }
    let new_mid = net.sub_mid(bob, track);
    assert_ne!(new_mid, first_mid, "the track moved to a new m-line");
    assert!(last_offer(&net, bob).contains("H264"));
    let got = net.received(bob, track);
    assert!(!got.is_empty(), "H.264 reaches bob after the new offer");
    assert_eq!(got[0].payload[0] & 0x1F, 5, "starting at an IDR");
}

/// The subscriber offers bob got, in order.
fn offers(net: &Net, i: usize) -> Vec<String> {
    net.clients[i]
        .notices
        .iter()
        .filter_map(|n| match n {
            tern_sfu::Notice::SubscriberOffer(sdp) => Some(sdp.clone()),
            _ => None,
        })
        .collect()
}

/// The mids of an SDP's `a=group:BUNDLE` line.
fn bundle(sdp: &str) -> Vec<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=group:BUNDLE"))
        .map(|g| g.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The first m-line tags the BUNDLE group: when its track ends it stays, inactive, so the tag
/// never moves (Chromium would start a new transport) and every offer has a BUNDLE group (one
/// without is refused by Chromium with max-bundle).
#[test]
fn the_bundle_tag_m_line_is_kept_inactive_so_the_group_never_loses_its_tag() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish(alice, &[MediaKind::Audio])[0];
    net.run_for(Duration::from_secs(1));
    net.unpublish(alice, mid);
    net.run_for(Duration::from_secs(1));
    let all = offers(&net, bob);
    let last = all.last().expect("an offer after the unpublish");
    assert_eq!(
        bundle(last).len(),
        1,
        "one m-line stays in the group:\n{last}"
    );
    assert!(last.contains("a=inactive"), "kept inactive:\n{last}");
    let parked = bundle(last)[0].clone();

    // A new track: a new m-line, after the tag, which stays first.
    net.publish(alice, &[MediaKind::Video]);
    net.run_for(Duration::from_secs(1));
    let all = offers(&net, bob);
    let last = all.last().expect("an offer for the new track");
    let group = bundle(last);
    assert_eq!(group.len(), 2, "the tag and the new m-line:\n{last}");
    assert_eq!(group[0], parked, "the tag has not moved:\n{last}");
    assert_eq!(net.announced_tracks(bob).len(), 2);
    let video = net.announced_tracks(bob)[1];
    assert_ne!(
        net.sub_mid(bob, video).to_string(),
        parked,
        "the new track has its own m-line"
    );
}

/// Viewers come and go while alice publishes: each departure parks or stops alice's subscriber
/// m-lines, and alice stays, and the next viewer sees her.
#[test]
fn viewers_coming_and_going_leave_the_publisher_whole() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    net.publish(alice, &[MediaKind::Audio, MediaKind::Video]);
    net.run_for(Duration::from_secs(1));
    for round in 0..3 {
        let viewer = net.join("demo", &format!("viewer{round}"));
        net.publish(viewer, &[MediaKind::Audio, MediaKind::Video]);
        net.run_for(Duration::from_secs(2));
        assert_eq!(net.announced_tracks(viewer).len(), 2, "round {round}");
        let id = net.clients[viewer].id;
        net.command(tern_sfu::Command::Leave { participant: id })
            .expect("left");
        net.run_for(Duration::from_secs(2));
        assert!(
            !net.clients[alice]
                .notices
                .iter()
                .any(|n| matches!(n, Notice::Removed(_))),
            "alice is still there after round {round}: {:?}",
            net.clients[alice].notices
        );
    }
}
