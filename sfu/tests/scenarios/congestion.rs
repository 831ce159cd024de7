//! A subscriber whose downlink is capped: its audio keeps arriving whole while its video steps
//! down, and the video steps back up when the cap lifts. The link is emulated (str0m-netem:
//! a rate cap with a bounded queue, and latency), the bandwidth estimate is str0m's own, from the
//! subscriber's transport-wide congestion control feedback.

use std::time::Duration;

use str0m::media::{MediaKind, Mid};
use tern_sfu::testkit::{Bitrate, CAMERA_RIDS, Camera, DataSize, Net, NetemConfig, opus_payload};
use tern_sfu::{Notice, TrackId, TrackKind};

const TICK: Duration = Duration::from_millis(10);

/// Alice: a microphone (a packet every 20 ms) and a simulcast camera (a frame every 30 ms).
struct Alice {
    camera: Camera,
    audio: Mid,
    tick: u32,
    audio_seq: u64,
}

impl Alice {
    fn run(&mut self, net: &mut Net, d: Duration) {
        for _ in 0..(d.as_millis() / TICK.as_millis()) {
            if self.tick.is_multiple_of(2) {
                let n = self.audio_seq as u32;
                let who = self.camera.who;
                net.send_rtp(who, self.audio, self.audio_seq, n * 960, &opus_payload(n));
                self.audio_seq += 1;
            }
            if self.tick.is_multiple_of(3) {
                self.camera.send_frame(net);
            }
            self.tick += 1;
            net.run_for(TICK);
        }
    }
}

/// Bob's received packets of `track` since `from`: (count, sequence numbers spanned, bytes).
fn since(net: &Net, bob: usize, track: TrackId, from: usize) -> (usize, u64, usize) {
    let got = &net.received(bob, track)[from..];
    let (Some(first), Some(last)) = (got.first(), got.last()) else {
        return (0, 0, 0);
    };
    let span = *last.seq_no - *first.seq_no + 1;
    (got.len(), span, got.iter().map(|p| p.payload.len()).sum())
}

/// The width of the last keyframe bob got on `track`: which layer he is on.
fn width(net: &Net, bob: usize, track: TrackId) -> u16 {
    net.received(bob, track)
        .iter()
        .rev()
        .find(|p| p.payload.get(4..7) == Some(&[0x9d, 0x01, 0x2a][..]))
        .map_or(0, |p| u16::from_le_bytes([p.payload[7], p.payload[8]]))
}

/// The last `quality` notice bob got: his estimate, and whether `track` is held back.
fn quality(net: &Net, bob: usize, track: TrackId) -> (Option<u64>, bool) {
    net.clients[bob]
        .notices
        .iter()
        .rev()
        .find_map(|n| match n {
            Notice::Quality { estimate, tracks } => {
                let limited = tracks
                    .iter()
                    .any(|t| t.track == track && t.bandwidth_limited);
                Some((*estimate, limited))
            }
            _ => None,
        })
        .expect("bob was told about his video")
}

#[test]
fn under_a_rate_cap_audio_stays_whole_while_video_steps_down_and_back_up() {
    let mut net = Net::new();
    let who = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let audio = net.publish(who, &[MediaKind::Audio])[0];
    let video = net.publish_simulcast(who, &CAMERA_RIDS);
    let latency = NetemConfig::new()
        .latency(Duration::from_millis(20))
        .seed(7);
    net.set_downlink(bob, Some(latency));
    net.run_for(Duration::from_secs(2));
    let tracks = net.announced_tracks(bob);
    let kind = |t: &TrackId| {
        let info = net.clients[bob].notices.iter().find_map(|n| match n {
            Notice::TrackPublished(i) if i.id == *t => Some(i.kind),
            _ => None,
        });
        info.expect("announced")
    };
    let a_track = *tracks
        .iter()
        .find(|t| kind(t) == TrackKind::Audio)
        .expect("audio");
    let v_track = *tracks
        .iter()
        .find(|t| kind(t) == TrackKind::Video)
        .expect("video");
    let mut alice = Alice {
        camera: Camera::realistic(who, video),
        audio,
        tick: 0,
        audio_seq: 1,
    };

    alice.run(&mut net, Duration::from_secs(8));
    assert_eq!(
        width(&net, bob, v_track),
        1280,
        "unconstrained: the full layer"
    );

    // Bob's downlink drops to 300 kbit/s.
    let capped = latency.link(Bitrate::kbps(300), DataSize::bytes(15_000));
    net.set_downlink(bob, Some(capped));
    alice.run(&mut net, Duration::from_secs(6));
    let (a_from, v_from) = (
        net.received(bob, a_track).len(),
        net.received(bob, v_track).len(),
    );
    alice.run(&mut net, Duration::from_secs(6));
    let (got, span, _) = since(&net, bob, a_track, a_from);
    assert!(got > 250, "audio keeps flowing: {got} packets in 6 s");
    assert!(
        (span - got as u64) * 100 < span,
        "audio loss under 1 % once video has stepped down: {got} of {span}"
    );
    let (_, _, video_bytes) = since(&net, bob, v_track, v_from);
    let video_bps = video_bytes * 8 / 6;
    assert!(
        video_bps < 300_000,
        "video fits under the cap: {video_bps} bit/s"
    );
    assert!(
        width(&net, bob, v_track) < 1280 || video_bytes == 0,
        "video stepped down (or paused)"
    );
    let (estimate, limited) = quality(&net, bob, v_track);
    assert!(
        estimate.is_some_and(|e| e < 400_000),
        "bob is told his estimate: {estimate:?}"
    );
    assert!(limited, "and that bandwidth holds his video back");

    // The cap lifts: probing finds the bandwidth again and the video climbs back.
    net.set_downlink(bob, Some(latency));
    alice.run(&mut net, Duration::from_secs(20));
    assert_eq!(width(&net, bob, v_track), 1280, "back on the full layer");
    assert!(!quality(&net, bob, v_track).1, "no longer held back");
}
