//! Active speaker: announced to the room soon after someone starts talking, not on a cough, and
//! handed over when someone else talks.

use std::time::Duration;

use str0m::media::{MediaKind, Mid};
use tern_sfu::testkit::Net;
use tern_sfu::{Notice, ParticipantId};

/// Everyone's microphone: one packet each 20 ms, at the level each is speaking at.
struct Room {
    net: Net,
    mics: Vec<(usize, Mid)>,
    n: u32,
}

impl Room {
    /// Runs for `ms`, each participant at the level `level(i)` (-dBov; 127 is silence).
    fn talk(&mut self, ms: u64, level: impl Fn(usize) -> u8) {
        for _ in 0..ms / 20 {
            for (k, (who, mid)) in self.mics.clone().into_iter().enumerate() {
                self.net.send_audio_level(who, mid, self.n, level(k));
            }
            self.n += 1;
            self.net.run_for(Duration::from_millis(20));
        }
    }

    /// The active speaker of the last `speakers` notice `who` got.
    fn active(&self, who: usize) -> Option<ParticipantId> {
        self.net.clients[who]
            .notices
            .iter()
            .rev()
            .find_map(|n| match n {
                Notice::Speakers { active, .. } => Some(*active),
                _ => None,
            })?
    }

    fn id(&self, k: usize) -> ParticipantId {
        self.net.clients[self.mics[k].0].id
    }
}

const SILENT: u8 = 127;
const TALKING: u8 = 25;

fn room() -> Room {
    let mut net = Net::new();
    let people = ["alice", "bob", "carol"].map(|n| net.join("demo", n));
    let mics = people
        .iter()
        .map(|p| (*p, net.publish(*p, &[MediaKind::Audio])[0]))
        .collect();
    net.run_for(Duration::from_secs(2));
    Room { net, mics, n: 1 }
}

#[test]
fn the_active_speaker_is_announced_within_half_a_second() {
    let mut room = room();
    room.talk(1000, |_| SILENT);
    assert_eq!(room.active(1), None, "nobody has spoken");
    // Alice starts talking.
    let mut took = None;
    for ms in (0..1000).step_by(20) {
        room.talk(20, |k| if k == 0 { TALKING } else { SILENT });
        if took.is_none() && room.active(1) == Some(room.id(0)) {
            took = Some(ms + 20);
        }
    }
    let took = took.expect("alice is announced");
    assert!(took <= 500, "announced {took} ms after alice started");
    // Everyone hears it, alice included.
    assert_eq!(room.active(0), Some(room.id(0)));
    assert_eq!(room.active(2), Some(room.id(0)));
}

#[test]
fn a_cough_does_not_take_the_floor_and_a_new_speaker_does() {
    let mut room = room();
    room.talk(1000, |k| if k == 0 { TALKING } else { SILENT });
    assert_eq!(room.active(1), Some(room.id(0)));
    let told = room.net.clients[1].notices.len();
    // Carol coughs (200 ms, loud) while alice goes on.
    room.talk(200, |k| match k {
        0 => TALKING,
        2 => 5,
        _ => SILENT,
    });
    room.talk(800, |k| if k == 0 { TALKING } else { SILENT });
    let actives: Vec<Option<ParticipantId>> = room.net.clients[1].notices[told..]
        .iter()
        .filter_map(|n| match n {
            Notice::Speakers { active, .. } => Some(*active),
            _ => None,
        })
        .collect();
    assert!(
        actives.iter().all(|a| *a == Some(room.id(0))),
        "alice keeps the floor throughout: {actives:?}"
    );
    // Alice stops; carol talks.
    room.talk(1000, |k| if k == 2 { TALKING } else { SILENT });
    assert_eq!(room.active(1), Some(room.id(2)), "carol has the floor");
    // Silence: carol stays the active speaker (for the big tile), nobody is speaking.
    room.talk(1000, |_| SILENT);
    let last = room.net.clients[1]
        .notices
        .iter()
        .rev()
        .find_map(|n| match n {
            Notice::Speakers { active, speaking } => Some((*active, speaking.len())),
            _ => None,
        });
    assert_eq!(last, Some((Some(room.id(2)), 0)));
}

#[test]
fn room_taps_are_told_the_active_speaker_at_once_and_on_every_change() {
    use tern_sfu::{Command, Reply, RoomTapEvent, RoomTapKind, RoomTapLabel};
    let mut room = room();
    room.talk(1000, |k| if k == 0 { TALKING } else { SILENT });
    let label = RoomTapLabel {
        kind: RoomTapKind::Broadcast,
        id: "BC_test".into(),
        state: "starting".into(),
    };
    let id = match room.net.command(Command::TapRoom {
        room: "demo".into(),
        label,
    }) {
        Ok(Reply::RoomTapped(id)) => id,
        other => panic!("room tap refused: {other:?}"),
    };
    let speakers = |net: &Net| -> Vec<Option<ParticipantId>> {
        net.room_tap_events[&id]
            .iter()
            .filter_map(|e| match e {
                RoomTapEvent::ActiveSpeaker(p) => Some(*p),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        speakers(&room.net),
        [Some(room.id(0))],
        "alice, already speaking"
    );
    room.talk(2000, |k| if k == 1 { TALKING } else { SILENT });
    assert_eq!(
        speakers(&room.net),
        [Some(room.id(0)), Some(room.id(1))],
        "bob took over"
    );
}
