//! Simulcast: a publisher sends three layers (q, h, f); each subscriber gets the one its tile
//! needs, switches only on a keyframe, and sees one continuous stream.

use std::time::Duration;

use str0m::media::Mid;
use str0m::rtp::RtpPacket;
use tern_sfu::testkit::{Net, vp8_keyframe_sized, vp8_payload};
use tern_sfu::{LayerRequest, TrackId};

const RIDS: [&str; 3] = ["q", "h", "f"];
const SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
/// Frames between two keyframes of one layer; the layers' keyframes are staggered.
const GOP: u32 = 15;
/// 30 frames a second.
const FRAME: Duration = Duration::from_millis(33);

/// The publisher's side: each layer has its own sequence numbers and timestamp base, as a
/// browser's encoders do.
struct Camera {
    mid: Mid,
    frame: u32,
    /// Layers that send.
    on: [bool; 3],
}

impl Camera {
    fn payload(layer: usize, n: u32) -> Vec<u8> {
        let tag = layer as u32 * 1_000_000 + n;
        // Layer l's keyframes come at frames l*5, l*5 + GOP, ...
        if n % GOP == (layer as u32 * 5) % GOP {
            vp8_keyframe_sized(SIZES[layer].0, SIZES[layer].1, tag)
        } else {
            vp8_payload(false, tag)
        }
    }

    fn send_frames(&mut self, net: &mut Net, who: usize, frames: u32) {
        for _ in 0..frames {
            let n = self.frame;
            for layer in 0..3 {
                if !self.on[layer] {
                    continue;
                }
                let seq = [100u64, 20_000, 60_000][layer] + u64::from(n);
                let ts = [7_000u32, 1_000_000, 3_000_000_000][layer].wrapping_add(n * 3000);
                net.send_layer(
                    who,
                    self.mid,
                    RIDS[layer],
                    seq,
                    ts,
                    &Self::payload(layer, n),
                );
            }
            self.frame += 1;
            net.run_for(FRAME);
        }
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
    let key = p.payload.get(4..7) == Some(&[0x9d, 0x01, 0x2a][..]);
    let at = if key { 11 } else { 2 };
    let tag = u32::from_be_bytes(p.payload[at..at + 4].try_into().expect("tag"));
    Got {
        seq: *p.seq_no,
        ts: p.header.timestamp,
        layer: tag / 1_000_000,
        frame: tag % 1_000_000,
        key,
    }
}

fn meeting() -> (Net, usize, usize, Camera) {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish_simulcast(alice, &RIDS);
    net.run_for(Duration::from_secs(2));
    let camera = Camera {
        mid,
        frame: 0,
        on: [true; 3],
    };
    (net, alice, bob, camera)
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
    camera.send_frames(&mut net, alice, 40);

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
    camera.send_frames(&mut net, alice, 40);
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
    camera.send_frames(&mut net, alice, 20);
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
    let (mut net, alice, bob, mut camera) = meeting();
    let track = net.announced_tracks(bob)[0];
    // Layers are granted as their bitrates are measured (half a second) and fit the estimate.
    camera.send_frames(&mut net, alice, 60);
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
    camera.send_frames(&mut net, alice, 15 + GOP + 1);
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
    camera.send_frames(&mut net, alice, GOP + 1);
    let got = received(&net, bob, track);
    assert_eq!(
        got.last().expect("video").layer,
        2,
        "back on the full layer"
    );
}

#[test]
fn a_paused_tile_gets_nothing_and_resumes_on_a_keyframe() {
    let (mut net, alice, bob, mut camera) = meeting();
    let track = net.announced_tracks(bob)[0];
    camera.send_frames(&mut net, alice, 20);
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
    camera.send_frames(&mut net, alice, 30);
    assert_eq!(
        net.received(bob, track).len(),
        playing,
        "a hidden tile costs nothing"
    );

    net.track_settings(bob, track, tile(640, 360));
    camera.send_frames(&mut net, alice, GOP + 1);
    let got = received(&net, bob, track);
    assert!(got.len() > playing, "visible again");
    let Got { layer, key, .. } = got[playing];
    assert_eq!((layer, key), (1, true), "on the half layer's keyframe");
    assert_eq!(got[playing].seq, got[playing - 1].seq + 1);
}
