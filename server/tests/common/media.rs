//! Real encoded media for integration tests: ffmpeg encodes a test pattern (VP8) and a tone
//! (Opus) into RTP once, and a publisher replays the packets in real time, looping, with
//! continuous sequence numbers and timestamps. Lighter than a browser, and decodable, unlike
//! the synthetic payloads of the SFU testkit.

use std::process::Stdio;
use std::time::{Duration, Instant};

use str0m::media::Mid;
use tokio::net::UdpSocket;

use super::rtc_client::RtcClient;

/// One captured RTP packet.
#[derive(Debug, Clone)]
pub struct Captured {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// One captured stream.
#[derive(Debug, Clone)]
pub struct Stream {
    pub packets: Vec<Captured>,
    pub clock: u32,
    /// RTP ticks from the first packet to the end of the last frame.
    pub span: u32,
}

/// A camera and a microphone, encoded.
#[derive(Debug, Clone)]
pub struct Media {
    pub audio: Stream,
    pub video: Stream,
}

impl Media {
    /// Encodes `secs` of `pattern` (an ffmpeg lavfi video source such as `testsrc2`) at
    /// 640x360, 30 fps, a keyframe a second, and a `tone_hz` sine.
    pub async fn encode(secs: u32, pattern: &str, tone_hz: u32) -> Media {
        Self::encode_lavfi(
            f64::from(secs),
            &format!("{pattern}=s=640x360:r=30"),
            tone_hz,
        )
        .await
    }

    /// Like [`Media::encode`], with the whole lavfi video source given (640x360 at 30 fps is
    /// up to it), for example black then white.
    pub async fn encode_lavfi(secs: f64, vsrc: &str, tone_hz: u32) -> Media {
        let (vsrc, asrc) = (
            vsrc.to_string(),
            format!("sine=f={tone_hz}:sample_rate=48000"),
        );
        let video = capture(
            vec![
                "-f",
                "lavfi",
                "-i",
                &vsrc,
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "600k",
                "-g",
                "30",
                "-keyint_min",
                "30",
                "-auto-alt-ref",
                "0",
                "-payload_type",
                "96",
            ],
            secs,
            90_000,
            3000,
        );
        let audio = capture(
            vec![
                "-f",
                "lavfi",
                "-i",
                &asrc,
                "-c:a",
                "libopus",
                "-b:a",
                "48k",
                "-ac",
                "2",
                "-payload_type",
                "111",
            ],
            secs,
            48_000,
            960,
        );
        let (audio, video) = tokio::join!(audio, video);
        Media { audio, video }
    }
}

async fn capture(input: Vec<&str>, secs: f64, clock: u32, frame: u32) -> Stream {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sock = socket2::SockRef::from(&socket);
    let _ = sock.set_recv_buffer_size(8 << 20);
    let port = socket.local_addr().expect("addr").port();
    let mut child = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(&input)
        .args(["-t", &secs.to_string(), "-f", "rtp"])
        .arg(format!("rtp://127.0.0.1:{port}?pkt_size=1200"))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    let mut packets = Vec::new();
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            r = socket.recv(&mut buf) => {
                let n = r.expect("recv");
                if let Some(p) = parse_rtp(&buf[..n]) {
                    packets.push(p);
                }
            }
            status = child.wait() => {
                assert!(status.expect("wait").success(), "ffmpeg encoded the test media");
                while let Ok(n) = socket.try_recv(&mut buf) {
                    if let Some(p) = parse_rtp(&buf[..n]) {
                        packets.push(p);
                    }
                }
                break;
            }
            _ = tokio::time::sleep_until(deadline.into()) => panic!("ffmpeg took too long"),
        }
    }
    assert!(packets.len() > 10, "captured {} packets", packets.len());
    for w in packets.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "no packet lost in capture"
        );
    }
    let first = packets[0].ts;
    let span = packets[packets.len() - 1].ts.wrapping_sub(first) + frame;
    Stream {
        packets,
        clock,
        span,
    }
}

fn parse_rtp(d: &[u8]) -> Option<Captured> {
    if d.len() < 12 || d[0] >> 6 != 2 || (200..=206).contains(&d[1]) {
        return None;
    }
    let cc = usize::from(d[0] & 0x0f);
    let mut off = 12 + 4 * cc;
    if d[0] & 0x10 != 0 {
        let len = usize::from(u16::from_be_bytes([*d.get(off + 2)?, *d.get(off + 3)?]));
        off += 4 + 4 * len;
    }
    Some(Captured {
        seq: u16::from_be_bytes([d[2], d[3]]),
        ts: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        marker: d[1] & 0x80 != 0,
        payload: d.get(off..)?.to_vec(),
    })
}

/// Replays [`Media`] on a client's audio and video mids in real time.
pub struct Replay {
    media: Media,
    mids: [Mid; 2],
    start: Instant,
    sent: [u64; 2],
}

impl Replay {
    /// Starts replaying now on `audio` and `video`.
    pub fn new(media: &Media, audio: Mid, video: Mid) -> Replay {
        Replay {
            media: media.clone(),
            mids: [audio, video],
            start: Instant::now(),
            sent: [0, 0],
        }
    }

    /// Sends every packet whose time has come.
    pub fn send_due(&mut self, client: &mut RtcClient) {
        let elapsed = self.start.elapsed();
        for (k, stream) in [&self.media.audio, &self.media.video]
            .into_iter()
            .enumerate()
        {
            let n = stream.packets.len() as u64;
            let first = stream.packets[0].ts;
            loop {
                let i = self.sent[k];
                let (round, p) = (i / n, &stream.packets[(i % n) as usize]);
                let ticks = u64::from(p.ts.wrapping_sub(first)) + round * u64::from(stream.span);
                let due = Duration::from_micros(ticks * 1_000_000 / u64::from(stream.clock));
                if due > elapsed {
                    break;
                }
                // Sequence numbers from 1000 keep the first extended one far below 65536.
                let ts = (ticks as u32).wrapping_add(1000);
                client.send_rtp_marked(self.mids[k], 1000 + i, ts, p.marker, &p.payload);
                self.sent[k] += 1;
            }
        }
    }
}

impl RtcClient {
    /// Runs the client for `d` while `replay` publishes.
    pub async fn run_replaying(&mut self, replay: &mut Replay, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            replay.send_due(self);
            self.run_for(Duration::from_millis(5)).await;
        }
    }
}
