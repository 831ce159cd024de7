use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::{LeaveReason, Notice, SfuConfig};

use tern_sfu::testkit::Net;

/// Alice's network dies. After the disconnect timeout she is removed and bob is told.
#[test]
fn a_participant_whose_media_dies_is_removed_after_the_timeout() {
    let mut net = Net::with_config(SfuConfig {
        disconnect_timeout_ms: 3_000,
        ..Default::default()
    });
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    net.publish(alice, &[MediaKind::Audio]);
    net.run_for(Duration::from_secs(2));
    let alice_id = net.clients[alice].id;

    net.clients[alice].cut = true;
    net.run_for(Duration::from_secs(3));
    let left = Notice::ParticipantLeft {
        participant: alice_id,
        reason: LeaveReason::ConnectionLost,
    };
    assert!(
        !net.clients[bob].notices.contains(&left),
        "not removed before the timeout"
    );
    net.run_for(Duration::from_secs(20));
    assert!(
        net.clients[bob].notices.contains(&left),
        "bob was told: {:?}",
        net.clients[bob].notices
    );
    assert!(
        net.clients[alice]
            .notices
            .contains(&Notice::Removed(LeaveReason::ConnectionLost))
    );
    assert!(
        net.clients[bob]
            .notices
            .iter()
            .any(|n| matches!(n, Notice::TrackUnpublished(_)))
    );
}
