//! Simulcast: a publisher sends three layers (q, h, f); each subscriber gets the one its tile
//! needs, switches only on a keyframe, and sees one continuous stream.

use std::time::Duration;

use str0m::rtp::RtpPacket;
use tern_sfu::testkit::{CAMERA_RIDS, Camera, Net, camera_packet_origin};
use tern_sfu::{LayerRequest, TrackId};

/// Frames between two keyframes of one layer; the layers' keyframes are staggered.
const GOP: u32 = 15;
/// 30 frames a second.
const FRAME: Duration = Duration::from_millis(33);

fn send_frames(camera: &mut Camera, net: &mut Net, frames: u32) {
    for _ in 0..frames {
        camera.send_frame(net);
        net.run_for(FRAME);
    }
}

/// A packet the subscriber got: its numbering, and where it came from.
#[derive(Debug, Clone, Copy)]
struct Got {
    seq: u64,
    ts: u32,
    layer: u32,
    frame: u32,
    key: bool,
}

fn received(net: &Net, who: usize, track: TrackId) -> Vec<Got> {
    net.received(who, track).iter().map(got).collect()
}

fn got(p: &RtpPacket) -> Got {
    let (layer, frame, key) = camera_packet_origin(&p.payload);
    Got {
        seq: *p.seq_no,
        ts: p.header.timestamp,
        layer,
        frame,
        key,
    }
}

fn meeting() -> (Net, usize, usize, Camera) {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish_simulcast(alice, &CAMERA_RIDS);
    net.run_for(Duration::from_secs(2));
    (net, alice, bob, Camera::new(alice, mid))
}

fn tile(width: u32, height: u32) -> LayerRequest {
    LayerRequest {
        paused: false,
        size: Some((width, height)),
    }
}

/// Sequence numbers go up by one; timestamps by one frame within a layer, and across a switch by
/// no more than a frame and never backwards (a switch in the middle of a frame period lands
/// just after the last frame sent).
fn assert_continuous(got: &[Got]) {
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "no gap in sequence numbers");
        let step = w[1].ts.wrapping_sub(w[0].ts);
        let ok = if w[0].layer == w[1].layer {
            step == 3000
        } else {
            (1..=3100).contains(&step)
        };
        assert!(ok, "timestamp step {step}: {:?} -> {:?}", w[0], w[1]);
    }
}

#[test]
fn a_small_tile_gets_the_quarter_layer_and_growing_it_switches_on_the_full_layers_keyframe() {
    let (mut net, alice, bob, mut camera) = meeting();
    let track = net.announced_tracks(bob)[0];
    net.track_settings(bob, track, tile(300, 170));
    send_frames(&mut camera, &mut net, 40);

    let got = received(&net, bob, track);
    assert!(!got.is_empty(), "bob sees video");
    assert!(
        got.iter().all(|p| p.layer == 0),
        "a small tile gets only the 320x180 layer"
    );
    assert!(got[0].key, "the picture starts on a keyframe");
    let before = got.len();
    let plis = net.clients[alice].keyframe_requests;

    net.track_settings(bob, track, tile(1280, 720));
    send_frames(&mut camera, &mut net, 40);
    let got = received(&net, bob, track);
    let switched = got[before..]
        .iter()
        .position(|p| p.layer == 2)
        .map(|k| before + k)
        .expect("bob moves to the full layer");
    let Got { frame, key, .. } = got[switched];
    assert!(key, "the switch happens on a keyframe of the full layer");
    assert!(
        frame - 40 <= GOP,
        "within one keyframe interval (frame {frame})"
    );
    assert!(
        got[switched..].iter().all(|p| p.layer == 2),
        "after the switch, only the full layer"
    );
    assert!(
        got[before..switched].iter().all(|p| p.layer == 0),
        "until the switch, the quarter layer keeps playing (no freeze)"
    );
    assert!(
        net.clients[alice].keyframe_requests > plis,
        "the switch asked the publisher for a keyframe"
    );
    assert_continuous(&got);

    // Back to a small tile: down on the quarter layer's next keyframe.
    let at = got.len();
    net.track_settings(bob, track, tile(320, 180));
    send_frames(&mut camera, &mut net, 20);
    let got = received(&net, bob, track);
    assert_eq!(
        got.last().expect("video").layer,
        0,
        "back on the quarter layer"
    );
    assert_continuous(&got[at - 1..]);
}

#[test]
fn a_layer_that_stops_arriving_is_replaced_within_one_keyframe_interval() {
    let (mut net, _, bob, mut camera) = meeting();
    let track = net.announced_tracks(bob)[0];
    // Layers are granted as their bitrates are measured (half a second) and fit the estimate.
    send_frames(&mut camera, &mut net, 60);
    let got = received(&net, bob, track);
    assert_eq!(
        got.last().expect("video").layer,
        2,
        "no size said: the full layer"
    );

    // The publisher's uplink can no longer carry the full layer.
    camera.on[2] = false;
    let stopped = net.received(bob, track).len();
    // Detecting the stop takes up to 500 ms (15 frames), then the next keyframe of the half layer.
    send_frames(&mut camera, &mut net, 15 + GOP + 1);
    let got = received(&net, bob, track);
    assert!(got.len() > stopped, "video comes back");
    assert!(
        got[stopped..].iter().all(|p| p.layer == 1),
        "the next layer down replaces it"
    );
    assert!(got[stopped].key, "starting on a keyframe");
    assert_eq!(got[stopped].seq, got[stopped - 1].seq + 1);

    // When the full layer comes back, so does bob.
    camera.on[2] = true;
    send_frames(&mut camera, &mut net, GOP + 1);
    let got = received(&net, bob, track);
    assert_eq!(
        got.last().expect("video").layer,
        2,
        "back on the full layer"
    );
}

#[test]
fn a_paused_tile_gets_nothing_and_resumes_on_a_keyframe() {
    let (mut net, _, bob, mut camera) = meeting();
    let track = net.announced_tracks(bob)[0];
    send_frames(&mut camera, &mut net, 20);
    let playing = net.received(bob, track).len();
    assert!(playing > 0);

    net.track_settings(
        bob,
        track,
        LayerRequest {
            paused: true,
            size: None,
        },
    );
    send_frames(&mut camera, &mut net, 30);
    assert_eq!(
        net.received(bob, track).len(),
        playing,
        "a hidden tile costs nothing"
    );

    net.track_settings(bob, track, tile(640, 360));
    send_frames(&mut camera, &mut net, GOP + 1);
    let got = received(&net, bob, track);
    assert!(got.len() > playing, "visible again");
    let Got { layer, key, .. } = got[playing];
    assert_eq!((layer, key), (1, true), "on the half layer's keyframe");
    assert_eq!(got[playing].seq, got[playing - 1].seq + 1);
}
