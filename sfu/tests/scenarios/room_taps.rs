//! Room taps: a recording of a whole room. Every track, there before or published later, is
//! tapped; everyone in the room is told it is recorded; an emptied room waits for the recording
//! to end before it closes.

use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::testkit::Net;
use tern_sfu::{
    Command, Notice, Reply, RoomTapEvent, RoomTapId, RoomTapKind, RoomTapLabel, SfuError, TapId,
};

fn label(state: &str) -> RoomTapLabel {
    RoomTapLabel {
        kind: RoomTapKind::Recording,
        id: "RC_test".into(),
        state: state.into(),
    }
}

fn tap_room(net: &mut Net, room: &str) -> RoomTapId {
    match net.command(Command::TapRoom {
        room: room.into(),
        label: label("starting"),
    }) {
        Ok(Reply::RoomTapped(id)) => id,
        other => panic!("room tap refused: {other:?}"),
    }
}

/// The taps a room tap's holder was told of, with the identity of each publisher.
fn tapped(net: &Net, id: RoomTapId) -> Vec<(TapId, String)> {
    net.room_tap_events[&id]
        .iter()
        .filter_map(|e| match e {
            RoomTapEvent::TrackTapped { tap, publisher, .. } => {
                Some((*tap, publisher.identity.clone()))
            }
            _ => None,
        })
        .collect()
}

fn occupancy(net: &Net, id: RoomTapId) -> Vec<usize> {
    net.room_tap_events[&id]
        .iter()
        .filter_map(|e| match e {
            RoomTapEvent::Occupancy(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn room_tap_notices(net: &Net, i: usize) -> Vec<RoomTapLabel> {
    net.clients[i]
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::RoomTap(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_room_tap_takes_every_track_there_and_to_come_and_everyone_is_told() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let a_mid = net.publish(alice, &[MediaKind::Audio])[0];
    net.run_for(Duration::from_secs(1));

    let id = tap_room(&mut net, "demo");
    assert_eq!(tapped(&net, id).len(), 1, "alice's audio, already there");
    assert_eq!(occupancy(&net, id), vec![1]);
    assert_eq!(room_tap_notices(&net, alice), vec![label("starting")]);

    // Bob joins and publishes camera and microphone: both are tapped.
    let bob = net.join("demo", "bob");
    net.publish(bob, &[MediaKind::Audio, MediaKind::Video]);
    net.run_for(Duration::from_secs(1));
    let taps = tapped(&net, id);
    assert_eq!(taps.len(), 3);
    assert_eq!(
        taps.iter().filter(|(_, who)| who == "bob").count(),
        2,
        "{taps:?}"
    );
    assert_eq!(occupancy(&net, id), vec![1, 2]);

    // Its packets flow through the tap.
    for n in 0..5 {
        net.send_rtp(alice, a_mid, 100 + n, 960 * n as u32, &[0xfc, n as u8]);
        net.run_for(Duration::from_millis(20));
    }
    assert_eq!(net.tapped[&taps[0].0].len(), 5);

    // The state changes: everyone hears of it.
    net.command(Command::SetRoomTapState {
        tap: id,
        state: "active".into(),
    })
    .expect("state set");
    net.run_for(Duration::from_millis(10));
    assert_eq!(room_tap_notices(&net, bob), vec![label("active")]);
    assert_eq!(
        room_tap_notices(&net, alice),
        vec![label("starting"), label("active")]
    );

    // Alice's track ends with her; its tap ends too.
    net.command(Command::Leave {
        participant: net.clients[alice].id,
    })
    .expect("left");
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.ended_taps, vec![taps[0].0]);
    assert_eq!(occupancy(&net, id), vec![1, 2, 1]);
}

#[test]
fn an_emptied_room_stays_open_until_its_recording_ends() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    net.publish(alice, &[MediaKind::Audio]);
    net.run_for(Duration::from_secs(1));
    let id = tap_room(&mut net, "demo");
    net.command(Command::Leave {
        participant: net.clients[alice].id,
    })
    .expect("left");
    net.run_for(Duration::from_millis(10));
    assert_eq!(occupancy(&net, id), vec![1, 0]);
    assert!(net.closed_rooms.is_empty(), "the recording holds it open");

    // Someone comes back within the grace period: same room, tapped as before.
    let carol = net.join("demo", "carol");
    assert_eq!(occupancy(&net, id), vec![1, 0, 1]);
    net.command(Command::Leave {
        participant: net.clients[carol].id,
    })
    .expect("left");
    net.run_for(Duration::from_millis(10));
    assert!(
        net.closed_rooms.is_empty(),
        "still held open after carol left"
    );
    // The recording ends: the empty room closes.
    net.command(Command::UntapRoom {
        tap: id,
        state: "complete".into(),
    })
    .expect("untapped");
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.closed_rooms, vec!["demo".to_string()]);
    let again = net.command(Command::UntapRoom {
        tap: id,
        state: "complete".into(),
    });
    assert!(
        matches!(again, Err(SfuError::TrackNotFound(_))),
        "{again:?}"
    );
}

#[test]
fn closing_a_recorded_room_ends_its_recording_and_unknown_rooms_are_refused() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    net.publish(alice, &[MediaKind::Audio]);
    net.run_for(Duration::from_secs(1));
    let id = tap_room(&mut net, "demo");
    let tap = tapped(&net, id)[0].0;
    net.command(Command::CloseRoom {
        room: "demo".into(),
    })
    .expect("closed");
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.room_tap_events[&id].last(), Some(&RoomTapEvent::Closed));
    assert_eq!(net.ended_taps, vec![tap]);
    assert_eq!(net.closed_rooms, vec!["demo".to_string()]);

    let missing = net.command(Command::TapRoom {
        room: "nowhere".into(),
        label: label("starting"),
    });
    assert!(
        matches!(missing, Err(SfuError::RoomNotFound(_))),
        "{missing:?}"
    );
}
