//! The media side of a room tap: it keeps the set of tapped tracks, runs one sidecar part at a
//! time (a new part when the set of flowing tracks changes or the sidecar dies), feeds each part
//! RTP over loopback with sender reports, and says what happened as [`FeedEvent`]s. What a part
//! writes, and what becomes of it, is its owner's business: a recording or a broadcast.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tern_sfu::{ParticipantId, RoomTapEvent, TapCodec, TapId, TapPacket, TrackInfo, TrackKind};
use tokio::sync::mpsc;

use crate::args::PartInput;
use crate::manifest::PartEnd;
use crate::rtp::{ClockBase, RtpStream};
use crate::sdp::{InputStream, input_sdp};
use crate::service::{TapControl, TapMessage};
pub use crate::sidecar::check_ffmpeg;
use crate::sidecar::{Sidecar, free_port_pairs};
use crate::switch::Switcher;

/// A track whose packets stopped this long leaves the layout.
const SILENT_AFTER: Duration = Duration::from_secs(3);
/// A new layout waits this long for more changes (a joiner's audio and video come together).
const SETTLE: Duration = Duration::from_millis(700);
/// The longest pause before restarting a sidecar that keeps crashing.
const CRASH_PAUSE_MAX: Duration = Duration::from_secs(30);
/// A sidecar healthy this long ends a crash loop.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// A stopped sidecar that has not exited after this long gets a second SIGINT...
const INSIST_AFTER: Duration = Duration::from_secs(3);
/// ...and after this long is killed.
const FINISH_LIMIT: Duration = Duration::from_secs(15);

/// The ffmpeg arguments of one part: its inputs (in SDP order), the SDP file, the part's directory.
pub type PartArgs = dyn Fn(&[PartInput], &Path, &Path) -> Vec<String> + Send;

/// Which video tracks a part reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// Every flowing video track (a grid).
    #[default]
    Grid,
    /// One video input showing the active speaker's video (until someone speaks, the most
    /// recently published): a new speaker is switched to on a keyframe, without a new part.
    Speaker,
}

/// The stand-in tap of the speaker layout's video input in a part's set (one per codec: a
/// speaker whose video is in another codec needs a new part).
fn slot(codec: TapCodec) -> TapId {
    TapId(
        u64::MAX
            - match codec {
                TapCodec::Vp8 => 0,
                TapCodec::H264 => 1,
                TapCodec::Opus => 2,
            },
    )
}

/// The codec of a stand-in tap.
fn slot_codec(tap: TapId) -> Option<TapCodec> {
    [TapCodec::Vp8, TapCodec::H264]
        .into_iter()
        .find(|c| slot(*c) == tap)
}

/// How a feed runs its sidecars.
pub struct FeedConfig {
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// A sidecar must open its inputs, then encode, within this long.
    pub start_timeout: Duration,
    /// Sidecars that never became healthy, in a row, before the feed gives up.
    pub max_failures: u32,
    /// Ask for a keyframe on every video input this often (copied video is cut on keyframes).
    pub keyframe_every: Option<Duration>,
    /// Which video tracks a part reads.
    pub layout: Layout,
}

/// What happened to a feed's parts.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A part's sidecar was spawned on these taps (in input order).
    PartStarted {
        /// The part's index.
        part: usize,
        /// Its sidecar's process id.
        pid: Option<u32>,
        /// The taps it reads.
        taps: Vec<TapId>,
    },
    /// The part's first media went out, at this wall time.
    MediaStarted {
        /// The part.
        part: usize,
        /// The wall time of the packet.
        wall: SystemTime,
    },
    /// A part's sidecar encodes (the first healthy sidecar clears earlier failures).
    Healthy(usize),
    /// A part ended: its sidecar is finishing in the background.
    PartEnded {
        /// The part.
        part: usize,
        /// Why.
        end: PartEnd,
    },
    /// A part's sidecar has exited: everything it wrote is there.
    PartExited(usize),
    /// A sidecar failed before becoming healthy; another will be tried.
    Retrying(String),
    /// Sidecars failed too often: the feed gives up.
    Failed(String),
}

/// A tapped track.
pub struct Tracked {
    /// The track.
    pub info: TrackInfo,
    /// Its publisher's identity.
    pub identity: String,
    /// Its codec, once a packet has shown it.
    pub codec: Option<TapCodec>,
    last_packet: Option<Instant>,
    /// Tapped after this many others (the latest video leads until someone speaks).
    order: u64,
}

/// The part being fed.
struct Running {
    part: usize,
    sidecar: Sidecar,
    set: Vec<TapId>,
    streams: HashMap<TapId, (u16, RtpStream)>,
    base: ClockBase,
    ready: bool,
    healthy: bool,
    last_report: Instant,
    last_keyframes: Instant,
    /// The speaker layout's video input.
    switch: Option<Switcher>,
}

impl Running {
    /// The taps of its video streams (they need keyframes): for the speaker layout's input,
    /// the track it shows.
    fn video_taps(&self) -> Vec<TapId> {
        self.streams
            .iter()
            .filter(|(_, (_, s))| s.is_video())
            .filter_map(|(t, _)| match slot_codec(*t) {
                Some(_) => self.switch.as_ref()?.selected(),
                None => Some(*t),
            })
            .collect()
    }
}

/// A part whose sidecar is finishing (or has died). It is still fed: ffmpeg acts on SIGINT
/// when its next packet arrives, and waits for a read timeout (10 s) when none does.
struct Closing {
    feed: Running,
    since: Instant,
    /// A second SIGINT was sent.
    insisted: bool,
}

/// One room tap's sidecars.
pub struct Feed {
    label: String,
    dir: PathBuf,
    config: FeedConfig,
    args: Box<PartArgs>,
    control: Option<mpsc::UnboundedSender<TapControl>>,
    tracks: HashMap<TapId, Tracked>,
    running: Option<Running>,
    closing: Vec<Closing>,
    next_part: usize,
    failures: u32,
    /// Failures of sidecars that had been healthy, in a row: they space the restarts.
    crashes: u32,
    restart_at: Option<Instant>,
    changed_at: Option<Instant>,
    empty_since: Option<Instant>,
    /// The room's active speaker.
    speaker: Option<ParticipantId>,
    tapped: u64,
    socket: Option<std::net::UdpSocket>,
    buf: Vec<u8>,
    feed_errors: Arc<AtomicU64>,
    events: Vec<FeedEvent>,
}

impl Feed {
    /// A feed whose parts live in `dir/part-NNN`, numbered from `first_part`. `label` names it
    /// in logs; `feed_errors` counts packets the sidecar's socket refused.
    pub fn new(
        label: String,
        dir: PathBuf,
        config: FeedConfig,
        args: Box<PartArgs>,
        control: Option<mpsc::UnboundedSender<TapControl>>,
        first_part: usize,
        feed_errors: Arc<AtomicU64>,
    ) -> Self {
        Self {
            label,
            dir,
            config,
            args,
            control,
            tracks: HashMap::new(),
            running: None,
            closing: Vec::new(),
            next_part: first_part,
            failures: 0,
            crashes: 0,
            restart_at: None,
            changed_at: None,
            empty_since: None,
            speaker: None,
            tapped: 0,
            socket: loopback_socket().ok(),
            buf: Vec::with_capacity(1500),
            feed_errors,
            events: Vec::new(),
        }
    }

    /// The directory of part `part`.
    pub fn part_dir(dir: &Path, part: usize) -> PathBuf {
        dir.join(format!("part-{part:03}"))
    }

    /// Takes what the worker says about the room tap; true when the room was closed.
    pub fn on_message(&mut self, m: TapMessage) -> bool {
        match m {
            TapMessage::Event(RoomTapEvent::TrackTapped {
                tap,
                track,
                publisher,
            }) => {
                self.tapped += 1;
                let t = Tracked {
                    info: track,
                    identity: publisher.identity,
                    codec: None,
                    last_packet: None,
                    order: self.tapped,
                };
                self.tracks.insert(tap, t);
            }
            TapMessage::Ended(tap) => {
                self.tracks.remove(&tap);
            }
            TapMessage::Event(RoomTapEvent::Occupancy(n)) => {
                self.empty_since = match (n, self.empty_since) {
                    (0, None) => Some(Instant::now()),
                    (0, since) => since,
                    _ => None,
                };
            }
            TapMessage::Event(RoomTapEvent::ActiveSpeaker(p)) => self.speaker = p,
            TapMessage::Event(RoomTapEvent::Closed) => return true,
        }
        false
    }

    /// The room has been empty at least `grace`.
    pub fn empty_for(&self, grace: Duration, now: Instant) -> bool {
        self.empty_since
            .is_some_and(|t| now.saturating_duration_since(t) >= grace)
    }

    /// A tapped track.
    pub fn track(&self, tap: TapId) -> Option<&Tracked> {
        self.tracks.get(&tap)
    }

    /// No sidecar runs or finishes.
    pub fn is_idle(&self) -> bool {
        self.running.is_none() && self.closing.is_empty()
    }

    /// Stops asking the worker for keyframes (the room tap is ending).
    pub fn detach(&mut self) {
        self.control = None;
    }

    /// Feeds a packet to every part that reads its tap.
    pub fn on_packet(&mut self, tap: TapId, packet: &TapPacket) {
        let Some(t) = self.tracks.get_mut(&tap) else {
            return;
        };
        t.last_packet = Some(packet.arrival);
        t.codec = Some(packet.codec);
        let video = t.info.kind == TrackKind::Video;
        let Some(socket) = &self.socket else {
            return;
        };
        let closing = self.closing.iter_mut().map(|c| &mut c.feed);
        for r in self.running.iter_mut().chain(closing) {
            if !r.ready {
                continue;
            }
            // The speaker layout's input shows one video track at a time, renumbered.
            let switched;
            let (key, packet) = match r.switch.as_mut().filter(|_| video) {
                Some(sw) => match sw.rewrite(tap, packet) {
                    Some(p) => {
                        switched = p;
                        (slot(packet.codec), &switched)
                    }
                    None => continue,
                },
                None => (tap, packet),
            };
            let Some((port, stream)) = r.streams.get_mut(&key) else {
                continue;
            };
            let to: std::net::SocketAddr = (std::net::Ipv4Addr::LOCALHOST, *port).into();
            // The stream's first packet follows a sender report on the same socket.
            let opening = stream.opening_report(packet, &r.base);
            if let Some(sr) = &opening {
                let _ = socket.send_to(sr, to);
            }
            if !stream.packet(packet, &mut self.buf) {
                continue;
            }
            if socket.send_to(&self.buf, to).is_err() {
                self.feed_errors.fetch_add(1, Ordering::Relaxed);
            }
            if opening.is_some() {
                self.events.push(FeedEvent::MediaStarted {
                    part: r.part,
                    wall: r.base.wall_of(packet.arrival),
                });
            }
        }
    }

    /// Watches the sidecars and, unless `stopping`, follows the layout. Returns what happened
    /// since the last call.
    pub fn tick(&mut self, now: Instant, stopping: bool) -> Vec<FeedEvent> {
        self.watch_running(now);
        if !stopping {
            self.follow_layout(now);
        }
        self.watch_closing(now);
        std::mem::take(&mut self.events)
    }

    /// The running part ends (`end` says why): its sidecar finishes in the background.
    pub fn end_running(&mut self, end: PartEnd) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        r.sidecar.interrupt();
        self.events.push(FeedEvent::PartEnded { part: r.part, end });
        self.closing.push(Closing {
            feed: r,
            since: Instant::now(),
            insisted: false,
        });
    }

    /// The running part, if any.
    pub fn running_part(&self) -> Option<usize> {
        self.running.as_ref().map(|r| r.part)
    }

    /// Readiness, health, crashes, sender reports and keyframes of the running part.
    fn watch_running(&mut self, now: Instant) {
        let timeout = self.config.start_timeout;
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if let Some(status) = r.sidecar.exited() {
            let healthy = r.healthy;
            let why = r.sidecar.last_errors();
            tracing::warn!(feed = %self.label, part = r.part, %status, healthy, errors = %why, "sidecar exited");
            self.end_running(PartEnd::SidecarExited);
            if healthy {
                // A crash loop restarts ever more slowly: 0.2 s, 0.4 s... up to 30 s.
                let pause = Duration::from_millis(200 << self.crashes.min(8)).min(CRASH_PAUSE_MAX);
                self.crashes += 1;
                self.restart_at = Some(now + pause);
            } else {
                self.sidecar_failed(now, format!("ffmpeg exited ({status}): {why}"));
            }
            return;
        }
        if !r.ready {
            if r.sidecar.listening() {
                r.ready = true;
                for tap in r.video_taps() {
                    self.control(TapControl::Keyframe(tap));
                }
            } else if now.duration_since(r.sidecar.spawned) > timeout {
                let why = format!(
                    "ffmpeg did not open its inputs within {}s",
                    timeout.as_secs()
                );
                r.sidecar.kill();
                self.end_running(PartEnd::SidecarExited);
                self.sidecar_failed(now, why);
            }
            return;
        }
        if !r.healthy {
            if r.sidecar.encoded_us() > 0 {
                r.healthy = true;
                self.failures = 0;
                self.events.push(FeedEvent::Healthy(r.part));
            } else if now.duration_since(r.sidecar.spawned) > timeout {
                let why = format!(
                    "ffmpeg encoded nothing within {}s: {}",
                    timeout.as_secs(),
                    r.sidecar.last_errors()
                );
                r.sidecar.kill();
                self.end_running(PartEnd::SidecarExited);
                self.sidecar_failed(now, why);
                return;
            }
        }
        if r.healthy && now.duration_since(r.sidecar.spawned) >= STABLE_AFTER {
            self.crashes = 0;
        }
        if now.duration_since(r.last_report) >= Duration::from_secs(1) {
            r.last_report = now;
            if let Some(socket) = &self.socket {
                for (port, stream) in r.streams.values() {
                    if let Some(sr) = stream.sender_report(&r.base) {
                        // rtcp-mux: on the RTP port, in order with the packets.
                        let to: std::net::SocketAddr =
                            (std::net::Ipv4Addr::LOCALHOST, *port).into();
                        let _ = socket.send_to(&sr, to);
                    }
                }
            }
        }
        if let Some(every) = self.config.keyframe_every
            && now.duration_since(r.last_keyframes) >= every
        {
            r.last_keyframes = now;
            for tap in r.video_taps() {
                self.control(TapControl::Keyframe(tap));
            }
        }
    }

    fn sidecar_failed(&mut self, now: Instant, why: String) {
        self.failures += 1;
        tracing::warn!(feed = %self.label, failures = self.failures, %why, "sidecar failed");
        if self.failures >= self.config.max_failures.max(1) {
            self.events.push(FeedEvent::Failed(why));
            return;
        }
        self.events.push(FeedEvent::Retrying(why));
        self.restart_at = Some(now + Duration::from_millis(500 << self.failures.min(6)));
    }

    /// Starts, restarts or re-lays the part when the set of flowing tracks changed; in the
    /// speaker layout, switches the picture to the speaker's video.
    fn follow_layout(&mut self, now: Instant) {
        self.follow_speaker(now);
        let wanted = self.wanted_set(now);
        let current = self
            .running
            .as_ref()
            .map(|r| r.set.clone())
            .unwrap_or_default();
        if wanted == current {
            self.changed_at = None;
            return;
        }
        let since = *self.changed_at.get_or_insert(now);
        if now.duration_since(since) < SETTLE || self.restart_at.is_some_and(|t| now < t) {
            return;
        }
        self.changed_at = None;
        self.restart_at = None;
        self.end_running(PartEnd::LayoutChanged);
        if !wanted.is_empty() {
            self.start_part(now, wanted);
        }
    }

    /// The tracks whose codec is known and whose packets flow.
    fn flowing(&self, now: Instant) -> impl Iterator<Item = (TapId, &Tracked)> {
        self.tracks
            .iter()
            .filter(move |(_, t)| {
                t.codec.is_some()
                    && t.last_packet
                        .is_some_and(|p| now.saturating_duration_since(p) < SILENT_AFTER)
            })
            .map(|(tap, t)| (*tap, t))
    }

    /// The video the speaker layout shows: the active speaker's (camera first), else the most
    /// recently published.
    fn picked_video(&self, now: Instant) -> Option<(TapId, TapCodec)> {
        self.flowing(now)
            .filter(|(_, t)| t.info.kind == TrackKind::Video)
            .max_by_key(|(_, t)| {
                let speaks = Some(t.info.participant) == self.speaker;
                let camera = t.info.source == tern_sfu::TrackSource::Camera;
                (speaks, speaks && camera, t.order)
            })
            .and_then(|(tap, t)| Some((tap, t.codec?)))
    }

    /// The tracks the next part reads, in a stable order (by publisher, audio first): every
    /// flowing track in the grid; in the speaker layout every voice and the picture's input.
    fn wanted_set(&self, now: Instant) -> Vec<TapId> {
        let mut set: Vec<(ParticipantId, bool, TapId)> = self
            .flowing(now)
            .filter(|(_, t)| self.config.layout == Layout::Grid || t.info.kind == TrackKind::Audio)
            .map(|(tap, t)| (t.info.participant, t.info.kind == TrackKind::Video, tap))
            .collect();
        set.sort();
        let mut set: Vec<TapId> = set.into_iter().map(|(_, _, tap)| tap).collect();
        if self.config.layout == Layout::Speaker
            && let Some((_, codec)) = self.picked_video(now)
        {
            set.push(slot(codec));
        }
        set
    }

    /// The speaker layout's running part shows the picked video (from its next keyframe).
    fn follow_speaker(&mut self, now: Instant) {
        let Some((pick, codec)) = self.picked_video(now) else {
            return;
        };
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let Some(sw) = r.switch.as_mut() else {
            return;
        };
        if r.set.contains(&slot(codec)) && sw.selected() != Some(pick) {
            sw.select(pick);
            self.control(TapControl::Keyframe(pick));
        }
    }

    fn start_part(&mut self, now: Instant, set: Vec<TapId>) {
        let index = self.next_part;
        let dir = Self::part_dir(&self.dir, index);
        let started = (|| -> std::io::Result<Running> {
            std::fs::create_dir_all(&dir)?;
            let ports = free_port_pairs(set.len())?;
            let mut inputs = Vec::new();
            let mut sdp = Vec::new();
            let mut streams = HashMap::new();
            let mut switch = None;
            for (i, tap) in set.iter().enumerate() {
                let (codec, name) = match slot_codec(*tap) {
                    Some(codec) => {
                        let mut sw = Switcher::default();
                        if let Some((pick, _)) = self.picked_video(now) {
                            sw.select(pick);
                        }
                        switch = Some(sw);
                        (codec, "speaker".to_string())
                    }
                    None => {
                        let t = &self.tracks[tap];
                        (t.codec.unwrap_or(TapCodec::Opus), t.info.id.to_string())
                    }
                };
                inputs.push(PartInput { codec, name });
                sdp.push(InputStream {
                    port: ports[i],
                    codec,
                });
                let ssrc = 0x7e40_0000 | ((index as u32 & 0xff) << 8) | i as u32;
                streams.insert(*tap, (ports[i], RtpStream::new(ssrc, codec)));
            }
            let sdp_path = dir.join("input.sdp");
            std::fs::write(&sdp_path, input_sdp(&sdp))?;
            let args = (self.args)(&inputs, &sdp_path, &dir);
            let sidecar = Sidecar::spawn(&self.config.ffmpeg, &args, ports)?;
            Ok(Running {
                part: index,
                sidecar,
                set: set.clone(),
                streams,
                base: ClockBase {
                    at: now,
                    wall: SystemTime::now(),
                },
                ready: false,
                healthy: false,
                last_report: now,
                last_keyframes: now,
                switch,
            })
        })();
        match started {
            Ok(r) => {
                tracing::info!(feed = %self.label, part = index, tracks = set.len(), pid = ?r.sidecar.pid(), "sidecar started");
                self.next_part += 1;
                self.events.push(FeedEvent::PartStarted {
                    part: index,
                    pid: r.sidecar.pid(),
                    taps: set,
                });
                self.running = Some(r);
            }
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("ffmpeg not found ({})", self.config.ffmpeg.display())
                } else {
                    format!("cannot start ffmpeg: {e}")
                };
                self.sidecar_failed(now, why);
            }
        }
    }

    /// Parts whose sidecar has exited are reported; the others are hurried along.
    fn watch_closing(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.closing.len() {
            let c = &mut self.closing[i];
            if c.feed.sidecar.exited().is_none() {
                let waited = now.duration_since(c.since);
                if waited > FINISH_LIMIT {
                    c.feed.sidecar.kill();
                } else if waited > INSIST_AFTER && !c.insisted {
                    // Its last output may then be unfinished; the owner takes what it can.
                    c.insisted = true;
                    c.feed.sidecar.interrupt_again();
                }
                i += 1;
                continue;
            }
            let c = self.closing.remove(i);
            self.events.push(FeedEvent::PartExited(c.feed.part));
        }
    }

    fn control(&self, c: TapControl) {
        if let Some(tx) = &self.control {
            let _ = tx.send(c);
        }
    }
}

/// The socket a feed sends from: non-blocking, so a full buffer drops (and counts) a packet.
fn loopback_socket() -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The next message of a channel that may be gone (then never).
pub async fn recv_or_pending<T: Send>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next event of a room tap whose channel may be gone (then never).
pub async fn recv_event(
    rx: &mut Option<mpsc::UnboundedReceiver<TapMessage>>,
) -> Option<TapMessage> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
