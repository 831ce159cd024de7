use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::{Command, Notice};

use tern_sfu::testkit::{Net, opus_payload, vp8_payload};

#[test]
fn tracks_added_and_removed_later_are_renegotiated() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let audio_mid = net.publish(alice, &[MediaKind::Audio])[0];
    net.run_for(Duration::from_secs(2));
    // Alice adds a camera later: a second publisher offer on the same connection.
    let video_mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(1));
    let tracks = net.announced_tracks(bob);
    assert_eq!(tracks.len(), 2);
    let offers = net.clients[bob]
        .notices
        .iter()
        .filter(|n| matches!(n, Notice::SubscriberOffer(_)))
        .count();
    assert!(
        offers >= 2,
        "bob got a new offer for the new track ({offers})"
    );

    for n in 0..20u32 {
        net.send_rtp(alice, audio_mid, n as u64 + 1, n * 960, &opus_payload(n));
        net.send_rtp(
            alice,
            video_mid,
            n as u64 + 1,
            n * 3000,
            &vp8_payload(n == 0, n),
        );
        net.run_for(Duration::from_millis(20));
    }
    assert_eq!(net.received(bob, tracks[0]).len(), 20);
    assert_eq!(net.received(bob, tracks[1]).len(), 20);

    // Bob unsubscribes from the audio: it stops, the video goes on.
    let bob_id = net.clients[bob].id;
    net.command(Command::Unsubscribe {
        participant: bob_id,
        tracks: vec![tracks[0]],
    })
    .expect("unsubscribes");
    net.run_for(Duration::from_millis(200));
    for n in 20..40u32 {
        net.send_rtp(alice, audio_mid, n as u64 + 1, n * 960, &opus_payload(n));
        net.send_rtp(
            alice,
            video_mid,
            n as u64 + 1,
            n * 3000,
            &vp8_payload(false, n),
        );
        net.run_for(Duration::from_millis(20));
    }
    assert_eq!(
        net.received(bob, tracks[0]).len(),
        20,
        "no audio after unsubscribing"
    );
    assert_eq!(net.received(bob, tracks[1]).len(), 40, "video continues");

    // Alice stops her camera: bob is told and gets an offer that stops the m-line.
    net.unpublish(alice, video_mid);
    assert!(
        net.clients[bob]
            .notices
            .contains(&Notice::TrackUnpublished(tracks[1]))
    );
}
