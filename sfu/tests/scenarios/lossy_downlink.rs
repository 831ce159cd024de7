//! A subscriber on a downlink that loses datagrams at random (no congestion): the loss is not
//! mistaken for a full link, so its estimate still grows to what the meeting sends and no
//! video is held back; NACK repairs the video, audio loses what the link loses.

use std::time::Duration;

use str0m::media::{MediaKind, Mid};
use str0m::rtp::RtpPacket;
use tern_sfu::testkit::{
    Bitrate, DataSize, Net, NetemConfig, Probability, RandomLoss, opus_payload, vp8_payload,
};
use tern_sfu::{Notice, TrackId, TrackKind};

const TICK: Duration = Duration::from_millis(10);
/// Payload bytes of each of a frame's three packets: about 720 kbit/s at 30 frames a second.
const VIDEO_PACKET: usize = 900;

/// A participant publishing a microphone (a packet every 20 ms) and a camera (a frame of three
/// packets every 30 ms, a keyframe every 2 s).
struct Publisher {
    who: usize,
    audio: Mid,
    video: Mid,
}

/// A meeting of `n` publishers and bob, who only watches, on `downlink`.
struct Meeting {
    net: Net,
    bob: usize,
    publishers: Vec<Publisher>,
    tick: u32,
}

impl Meeting {
    fn new(n: usize, downlink: NetemConfig) -> Self {
        let mut net = Net::new();
        let bob = net.join("demo", "bob");
        let publishers = (0..n)
            .map(|i| {
                let who = net.join("demo", &format!("p{i}"));
                let mids = net.publish(who, &[MediaKind::Audio, MediaKind::Video]);
                Publisher {
                    who,
                    audio: mids[0],
                    video: mids[1],
                }
            })
            .collect();
        net.set_downlink(bob, Some(downlink));
        Self {
            net,
            bob,
            publishers,
            tick: 0,
        }
    }

    fn run(&mut self, d: Duration) {
        for _ in 0..(d.as_millis() / TICK.as_millis()) {
            let tick = self.tick;
            for p in &self.publishers {
                if tick.is_multiple_of(2) {
                    let n = tick / 2;
                    let payload = opus_payload(n);
                    self.net
                        .send_rtp(p.who, p.audio, u64::from(n) + 1, n * 960, &payload);
                }
                if tick.is_multiple_of(3) {
                    let f = tick / 3;
                    for k in 0..3 {
                        let mut payload = vp8_payload(k == 0 && f.is_multiple_of(60), f);
                        payload.resize(VIDEO_PACKET, 0xAB);
                        let seq = u64::from(f * 3 + k) + 1;
                        self.net.send_rtp(p.who, p.video, seq, f * 3000, &payload);
                    }
                }
            }
            self.tick += 1;
            self.net.run_for(TICK);
        }
    }

    /// Bob's tracks of `kind`.
    fn tracks(&self, kind: TrackKind) -> Vec<TrackId> {
        let notices = &self.net.clients[self.bob].notices;
        let kind_of = |t: &TrackId| {
            notices.iter().find_map(|n| match n {
                Notice::TrackPublished(i) if i.id == *t => Some(i.kind),
                _ => None,
            })
        };
        let tracks = self.net.announced_tracks(self.bob);
        tracks
            .into_iter()
            .filter(|t| kind_of(t) == Some(kind))
            .collect()
    }

    /// How many packets bob holds of each track, to count from.
    fn marks(&self, tracks: &[TrackId]) -> Vec<usize> {
        let bob = self.bob;
        tracks
            .iter()
            .map(|t| self.net.received(bob, *t).len())
            .collect()
    }

    /// Per track, what bob received since `marks` of the sequence numbers that span: (got,
    /// span).
    fn delivered(&self, tracks: &[TrackId], marks: &[usize]) -> Vec<(usize, u64)> {
        tracks
            .iter()
            .zip(marks)
            .map(|(t, from)| span(&self.net.received(self.bob, *t)[*from..]))
            .collect()
    }

    /// Bob's last `quality` notice: his estimate, and how many of his videos are held back.
    fn quality(&self) -> (Option<u64>, usize) {
        let notices = &self.net.clients[self.bob].notices;
        let last = notices.iter().rev().find_map(|n| match n {
            Notice::Quality { estimate, tracks } => Some((
                *estimate,
                tracks.iter().filter(|t| t.bandwidth_limited).count(),
            )),
            _ => None,
        });
        last.expect("bob was told about his video")
    }
}

/// Distinct packets received, and the sequence numbers from the first to the last.
fn span(got: &[RtpPacket]) -> (usize, u64) {
    let mut seqs: Vec<u64> = got.iter().map(|p| *p.seq_no).collect();
    seqs.sort_unstable();
    seqs.dedup();
    match (seqs.first(), seqs.last()) {
        (Some(a), Some(b)) => (seqs.len(), b - a + 1),
        _ => (0, 0),
    }
}

fn lossy(percent: f32) -> NetemConfig {
    NetemConfig::new()
        .latency(Duration::from_millis(20))
        .loss(RandomLoss::new(Probability::new(percent / 100.0)))
        .seed(3)
}

#[test]
fn five_percent_random_loss_neither_holds_video_back_nor_loses_it() {
    let mut m = Meeting::new(6, lossy(5.0));
    m.run(Duration::from_secs(20));
    let (estimate, held) = m.quality();
    assert_eq!(held, 0, "no video held back; estimate {estimate:?}");
    assert!(
        estimate.is_some_and(|e| e > 6 * 720_000),
        "the estimate covers the six videos: {estimate:?}"
    );
    let (video, audio) = (m.tracks(TrackKind::Video), m.tracks(TrackKind::Audio));
    assert_eq!((video.len(), audio.len()), (6, 6));
    let (v_marks, a_marks) = (m.marks(&video), m.marks(&audio));
    m.run(Duration::from_secs(10));
    for (got, span) in m.delivered(&video, &v_marks) {
        // About 900 packets in 10 s; NACK repairs the 5 % the link loses.
        assert!(span > 850, "video keeps flowing: {got} of {span}");
        assert!(
            got as u64 * 1000 >= span * 995,
            "video repaired: {got} of {span}"
        );
    }
    for (got, span) in m.delivered(&audio, &a_marks) {
        // Audio is not resent: it loses what the link loses, and nothing more.
        assert!(span > 480, "audio keeps flowing: {got} of {span}");
        assert!(
            got as u64 * 100 >= span * 90,
            "audio loses about 5 %: {got} of {span}"
        );
    }
}

#[test]
fn after_a_squeeze_under_steady_loss_the_estimate_climbs_back_and_video_resumes() {
    // 400 kbit/s for 8 s holds all video back; then the link opens but keeps losing 5 %.
    let squeezed = lossy(5.0).link(Bitrate::kbps(400), DataSize::bytes(15_000));
    let mut m = Meeting::new(6, squeezed);
    m.run(Duration::from_secs(8));
    let (estimate, held) = m.quality();
    assert_eq!(held, 6, "squeezed: every video held back ({estimate:?})");
    m.net.set_downlink(m.bob, Some(lossy(5.0)));
    m.run(Duration::from_secs(40));
    let (estimate, held) = m.quality();
    assert_eq!(
        held, 0,
        "no video held back any more; estimate {estimate:?}"
    );
}

#[test]
fn on_a_link_narrower_than_the_audio_the_estimator_is_restarted_rarely() {
    // Ten microphones (about 380 kbit/s on the wire) on a 100 kbit/s link: the estimate stays under what flows to bob, as a
    // locked one would (sfu/src/stall.rs). tern restarts the estimator after 10 s under, then
    // waits twice as long after each restart that did not hold: twice in 45 s, not four times.
    let narrow = lossy(0.0).link(Bitrate::kbps(100), DataSize::bytes(15_000));
    let mut m = Meeting::new(10, narrow);
    m.run(Duration::from_secs(45));
    let restarts = m.net.sfu.stats().bwe_restarts;
    assert!(
        (1..=2).contains(&restarts),
        "restarted, with growing waits: {restarts}"
    );
}
