//! Dynacast: the publisher is told to send only the layers someone needs, and to send the others
//! again as soon as someone does.

use std::time::Duration;

use tern_sfu::testkit::{CAMERA_RIDS, Camera, Net};
use tern_sfu::{LayerRequest, Notice, TrackId};

/// The last layers alice was told to send: (rid, active) per layer, if she was told at all.
fn told(net: &Net, alice: usize) -> Option<Vec<(Option<String>, bool)>> {
    net.clients[alice]
        .notices
        .iter()
        .rev()
        .find_map(|n| match n {
            Notice::SendLayers { layers, .. } => Some(layers.clone()),
            _ => None,
        })
}

fn active(net: &Net, alice: usize) -> Vec<&'static str> {
    let layers = told(net, alice).unwrap_or_default();
    CAMERA_RIDS
        .iter()
        .copied()
        .filter(|rid| {
            layers
                .iter()
                .find(|(r, _)| r.as_deref() == Some(*rid))
                .is_none_or(|(_, on)| *on)
        })
        .collect()
}

fn run(net: &mut Net, camera: &mut Camera, d: Duration) {
    for _ in 0..d.as_millis() / 33 {
        // The publisher follows what it is told, as tern-client.js does.
        let on = active(net, camera.who);
        for (i, rid) in CAMERA_RIDS.iter().enumerate() {
            camera.on[i] = on.contains(rid);
        }
        camera.send_frame(net);
        net.run_for(Duration::from_millis(33));
    }
}

fn small(net: &mut Net, who: usize, track: TrackId) {
    let request = LayerRequest {
        paused: false,
        size: Some((160, 90)),
    };
    net.track_settings(who, track, request);
}

#[test]
fn layers_nobody_watches_are_turned_off_and_come_back_when_someone_does() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let carol = net.join("demo", "carol");
    let mid = net.publish_simulcast(alice, &CAMERA_RIDS);
    net.run_for(Duration::from_secs(2));
    let mut camera = Camera::new(alice, mid);
    let track = net.announced_tracks(bob)[0];
    run(&mut net, &mut camera, Duration::from_secs(2));
    assert_eq!(
        active(&net, alice),
        ["q", "h", "f"],
        "everything is watched"
    );

    // Both viewers show alice in a thumbnail.
    small(&mut net, bob, track);
    small(&mut net, carol, track);
    run(&mut net, &mut camera, Duration::from_secs(2));
    assert_eq!(
        active(&net, alice),
        ["q", "h", "f"],
        "not turned off at once: tiles resize back and forth"
    );
    run(&mut net, &mut camera, Duration::from_secs(2));
    assert_eq!(
        active(&net, alice),
        ["q"],
        "only the thumbnail layer is sent"
    );
    let before = net.received(bob, track).len();
    run(&mut net, &mut camera, Duration::from_secs(1));
    assert!(
        net.received(bob, track).len() > before,
        "bob's thumbnail keeps playing"
    );

    // Carol pins alice full screen: the full layer comes back at once, and carol gets it.
    let big = LayerRequest {
        paused: false,
        size: Some((1280, 720)),
    };
    net.track_settings(carol, track, big);
    run(&mut net, &mut camera, Duration::from_millis(200));
    assert_eq!(
        active(&net, alice),
        ["q", "h", "f"],
        "turned on within 200 ms"
    );
    run(&mut net, &mut camera, Duration::from_secs(3));
    let last = net.received(carol, track).last().expect("video");
    let (layer, _, _) = tern_sfu::testkit::camera_packet_origin(&last.payload);
    assert_eq!(layer, 2, "carol gets the full layer");

    // Nobody watches at all: nothing is sent.
    for who in [bob, carol] {
        let hidden = LayerRequest {
            paused: true,
            size: None,
        };
        net.track_settings(who, track, hidden);
    }
    run(&mut net, &mut camera, Duration::from_secs(4));
    assert!(
        active(&net, alice).is_empty(),
        "a video nobody watches is not sent"
    );
}
