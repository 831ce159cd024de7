use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::{Command, LeaveReason, Notice, Reply};

use tern_sfu::testkit::Net;

#[test]
fn participants_see_each_other_join_and_leave() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let (alice_id, bob_id) = (net.clients[alice].id, net.clients[bob].id);

    assert!(
        net.clients[alice].notices.iter().any(
            |n| matches!(n, Notice::ParticipantJoined(p) if p.id == bob_id && p.identity == "bob")
        ),
        "alice was told bob joined: {:?}",
        net.clients[alice].notices
    );
    let Ok(Reply::Participants(list)) = net.command(Command::ListParticipants {
        room: "demo".into(),
    }) else {
        panic!("list failed")
    };
    assert_eq!(
        list.iter()
            .map(|p| p.info.identity.as_str())
            .collect::<Vec<_>>()
            .len(),
        2
    );

    net.command(Command::Leave {
        participant: bob_id,
    })
    .expect("bob leaves");
    assert!(
        net.clients[alice]
            .notices
            .contains(&Notice::ParticipantLeft {
                participant: bob_id,
                reason: LeaveReason::Left
            })
    );
    assert!(net.closed_rooms.is_empty(), "alice is still there");

    net.command(Command::Leave {
        participant: alice_id,
    })
    .expect("alice leaves");
    assert_eq!(net.closed_rooms, vec!["demo".to_string()]);
    assert!(matches!(net.command(Command::ListRooms), Ok(Reply::Rooms(r)) if r.is_empty()));
}

#[test]
fn a_second_session_with_the_same_identity_replaces_the_first() {
    let mut net = Net::new();
    let first = net.join("demo", "alice");
    let _second = net.join("demo", "alice");
    assert!(
        net.clients[first]
            .notices
            .contains(&Notice::Removed(LeaveReason::DuplicateIdentity))
    );
    let Ok(Reply::Participants(list)) = net.command(Command::ListParticipants {
        room: "demo".into(),
    }) else {
        panic!("list failed")
    };
    assert_eq!(list.len(), 1);
}

#[test]
fn closing_a_room_removes_everyone() {
    let mut net = Net::new();
    let a = net.join("demo", "a");
    let b = net.join("demo", "b");
    net.command(Command::CloseRoom {
        room: "demo".into(),
    })
    .expect("closes");
    for i in [a, b] {
        assert!(
            net.clients[i]
                .notices
                .contains(&Notice::Removed(LeaveReason::RoomClosed))
        );
    }
    assert_eq!(net.closed_rooms, vec!["demo".to_string()]);
}

/// When Alice leaves, Bob hears that her tracks ended and that she left before the offer that
/// stops her m-lines, as on publish (notice, then offer): his UI goes first.
#[test]
fn the_others_hear_of_a_leave_before_the_offer_that_stops_its_tracks() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    net.publish(alice, &[MediaKind::Audio, MediaKind::Video]);
    net.run_for(Duration::from_millis(500));
    let alice_id = net.clients[alice].id;
    let seen = net.clients[bob].notices.len();
    net.command(Command::Leave {
        participant: alice_id,
    })
    .expect("alice leaves");
    let after: Vec<&Notice> = net.clients[bob].notices[seen..].iter().collect();
    let position = |f: &dyn Fn(&Notice) -> bool| after.iter().position(|n| f(n));
    let offer = position(&|n| matches!(n, Notice::SubscriberOffer(_))).expect("an offer");
    let left = position(&|n| matches!(n, Notice::ParticipantLeft { .. })).expect("left");
    let unpublished: Vec<usize> = after
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n, Notice::TrackUnpublished(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(unpublished.len(), 2, "{after:?}");
    assert!(
        unpublished.iter().all(|u| *u < left) && left < offer,
        "order: {after:?}"
    );
}
