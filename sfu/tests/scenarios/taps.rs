//! Taps: a recorder's or broadcaster's subscription. It gets the best layer arriving, numbered
//! continuously across switches, audio as plain Opus, and ends with its track.

use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::testkit::{CAMERA_RIDS, Camera, Net, camera_packet_origin, opus_payload};
use tern_sfu::{Command, Reply, SfuError, TapCodec, TapId, TrackId};

fn add_tap(net: &mut Net, track: TrackId) -> TapId {
    match net.command(Command::AddTap { track }) {
        Ok(Reply::TapAdded(tap)) => tap,
        other => panic!("tap refused: {other:?}"),
    }
}

#[test]
fn a_tap_takes_the_top_layer_and_stays_continuous_when_it_falls_back() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish_simulcast(alice, &CAMERA_RIDS);
    net.run_for(Duration::from_secs(2));
    let track = net.announced_tracks(bob)[0];
    let mut camera = Camera::new(alice, mid);
    // The camera is on when the recording starts, and bob is on its top layer.
    for _ in 0..40 {
        camera.send_frame(&mut net);
        net.run_for(Duration::from_millis(33));
    }
    let plis = net.clients[alice].keyframe_requests;
    let tap = add_tap(&mut net, track);
    for _ in 0..20 {
        camera.send_frame(&mut net);
        net.run_for(Duration::from_millis(33));
    }
    assert!(
        net.clients[alice].keyframe_requests > plis,
        "the tap asked for a keyframe"
    );
    let got = &net.tapped[&tap];
    assert!(!got.is_empty(), "the tap records");
    assert!(got[0].keyframe, "starting on a keyframe");
    assert!(
        got.iter()
            .all(|p| p.codec == TapCodec::Vp8 && p.clock_rate == 90_000)
    );
    assert!(
        got.iter().all(|p| camera_packet_origin(&p.payload).0 == 2),
        "the top layer, like a large tile"
    );

    // The top layer stops: the tap falls back, with no gap in its numbering.
    camera.on[2] = false;
    let before = got.len();
    for _ in 0..35 {
        camera.send_frame(&mut net);
        net.run_for(Duration::from_millis(33));
    }
    let got = &net.tapped[&tap];
    assert!(got.len() > before, "the tap goes on");
    assert_eq!(camera_packet_origin(&got[got.len() - 1].payload).0, 1);
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "continuous sequence numbers");
        assert!(
            w[1].timestamp.wrapping_sub(w[0].timestamp) < 90_000,
            "no timestamp jump"
        );
    }

    // The track ends: so does the tap.
    net.unpublish(alice, mid);
    assert_eq!(net.ended_taps, vec![tap]);
}

#[test]
fn a_tap_on_red_audio_gets_plain_opus_and_unknown_tracks_are_refused() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    net.use_red(alice);
    let mid = net.publish(alice, &[MediaKind::Audio])[0];
    net.run_for(Duration::from_secs(2));
    let track = TrackId(1);
    let tap = add_tap(&mut net, track);
    for n in 0..10 {
        net.send_red(alice, mid, n);
        net.run_for(Duration::from_millis(20));
    }
    let got = &net.tapped[&tap];
    assert_eq!(got.len(), 10);
    for (n, p) in got.iter().enumerate() {
        assert_eq!(p.codec, TapCodec::Opus);
        assert_eq!(
            &*p.payload,
            opus_payload(n as u32).as_slice(),
            "the primary, unwrapped"
        );
    }
    let missing = net.command(Command::AddTap {
        track: TrackId(404),
    });
    assert!(
        matches!(missing, Err(SfuError::TrackNotFound(_))),
        "{missing:?}"
    );
    net.command(Command::RemoveTap { tap }).expect("removed");
    net.send_red(alice, mid, 10);
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.tapped[&tap].len(), 10, "a removed tap gets nothing");
}
