//! One recording's task. It keeps the set of tapped tracks, runs one sidecar part at a time
//! (a new part when the set changes or the sidecar dies), feeds it RTP, picks up the segments it
//! completes, uploads them, and when stopped joins each stream's segments into a final file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tern_sfu::{RoomTapEvent, TapCodec, TapId, TapPacket, TrackInfo, TrackKind};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::args::{COMPOSITE, Mode, PartInput, ffmpeg_args};
use crate::clock::unix_ms;
use crate::manifest::{Part, PartEnd, PartStream, Recording, Segment, State};
use crate::rtp::{ClockBase, RtpStream};
use crate::sdp::{InputStream, input_sdp};
use crate::service::{Shared, TapControl, TapLink, TapMessage};
use crate::sidecar::{Sidecar, free_port_pairs, probe_duration};
use crate::uploader::{InFlight, Job, UploadQueue, upload_bytes, upload_file};

/// How often the session looks at its sidecar, segments and uploads.
const TICK: Duration = Duration::from_millis(200);
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

/// Why a recording stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Asked to (API, participant).
    Requested,
    /// Everyone left and the grace period passed.
    RoomEmpty,
    /// The room was closed.
    RoomClosed,
    /// The sidecar never became healthy.
    SidecarFailed(String),
    /// The spool is full.
    SpoolFull,
    /// tern is shutting down, or the recording is finished after a restart.
    Interrupted,
}

/// A tapped track.
struct Tracked {
    info: TrackInfo,
    identity: String,
    codec: Option<TapCodec>,
    last_packet: Option<Instant>,
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
}

impl Running {
    /// The taps of its video streams (they need keyframes).
    fn video_taps(&self) -> Vec<TapId> {
        self.streams
            .iter()
            .filter(|(_, (_, s))| s.is_video())
            .map(|(t, _)| *t)
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

/// One recording.
pub(crate) struct Session {
    rec: Recording,
    dir: PathBuf,
    shared: Arc<Shared>,
    snapshot: watch::Sender<Recording>,
    control: Option<mpsc::UnboundedSender<TapControl>>,
    tracks: HashMap<TapId, Tracked>,
    running: Option<Running>,
    closing: Vec<Closing>,
    /// Segment-list lines already read, per part and stream.
    consumed: HashMap<(usize, String), usize>,
    failures: u32,
    restart_at: Option<Instant>,
    changed_at: Option<Instant>,
    empty_since: Option<Instant>,
    stop: Option<StopReason>,
    /// The state it ends in, once decided (shown when the final manifest is in storage).
    final_state: Option<State>,
    /// Failures of sidecars that had been healthy, in a row: they space the restarts.
    crashes: u32,
    /// The room tap has ended: no more media. Shared with the recorder, which waits for it at
    /// shutdown.
    untapped: Arc<std::sync::atomic::AtomicBool>,
    finalized: bool,
    uploads: UploadQueue,
    /// Bytes of this recording counted in the shared spool meter.
    counted: u64,
    socket: Option<UdpSocket>,
    buf: Vec<u8>,
    dirty: bool,
}

impl Session {
    /// A session for a new recording, fed through `link`.
    pub fn new(
        rec: Recording,
        shared: Arc<Shared>,
        snapshot: watch::Sender<Recording>,
        control: Option<mpsc::UnboundedSender<TapControl>>,
    ) -> Self {
        let dir = shared.config.spool_dir.join(&rec.id);
        Self {
            rec,
            dir,
            shared,
            snapshot,
            control,
            tracks: HashMap::new(),
            running: None,
            closing: Vec::new(),
            consumed: HashMap::new(),
            failures: 0,
            restart_at: None,
            changed_at: None,
            empty_since: None,
            stop: None,
            final_state: None,
            crashes: 0,
            untapped: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            finalized: false,
            uploads: UploadQueue::default(),
            counted: 0,
            socket: None,
            buf: Vec::with_capacity(1500),
            dirty: true,
        }
    }

    /// Runs the recording to its end. `link` is `None` for a recording finished after a restart.
    pub async fn run(mut self, link: Option<TapLink>, stop_rx: mpsc::Receiver<StopReason>) {
        let mut stop_rx = Some(stop_rx);
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            self.fail_now(format!("cannot create {}: {e}", self.dir.display()));
        }
        self.socket = UdpSocket::bind("127.0.0.1:0").await.ok();
        let (mut events, mut media) = match link {
            Some(l) => (Some(l.events), Some(l.media)),
            None => {
                self.resume().await;
                (None, None)
            }
        };
        let mut tick = tokio::time::interval(TICK);
        let mut inflight: Option<InFlight> = None;
        loop {
            tokio::select! {
                biased;
                reason = recv_or_pending(&mut stop_rx) => {
                    if reason.is_none() {
                        stop_rx = None; // the recorder is gone: stop once, then never poll it
                    }
                    self.begin_stop(reason.unwrap_or(StopReason::Interrupted));
                }
                ev = recv_event(&mut events) => match ev {
                    Some(ev) => self.on_event(ev),
                    None => { events = None; media = None; self.begin_stop(StopReason::RoomClosed); }
                },
                done = poll_or_pending(&mut inflight) => {
                    self.uploaded(done.0, done.1);
                    inflight = self.next_upload();
                }
                _ = tick.tick() => {
                    self.tick().await;
                    if self.untapped.load(Ordering::Relaxed) {
                        events = None;
                        media = None;
                    }
                    if inflight.is_none() {
                        inflight = self.next_upload();
                    }
                    if self.finished() {
                        break;
                    }
                }
                // Last: a backlog of packets never holds up the supervisor's tick.
                m = recv_or_pending(&mut media) => match m {
                    Some((tap, packet)) => self.on_packet(tap, &packet),
                    None => media = None,
                },
            }
        }
        self.publish();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.shared
            .spooled
            .fetch_sub(self.counted, Ordering::Relaxed);
        tracing::info!(recording = %self.rec.id, state = self.rec.state.as_str(), "recording finished");
    }

    fn on_event(&mut self, ev: TapMessage) {
        match ev {
            TapMessage::Event(RoomTapEvent::TrackTapped {
                tap,
                track,
                publisher,
            }) => {
                self.tracks.insert(
                    tap,
                    Tracked {
                        info: track,
                        identity: publisher.identity,
                        codec: None,
                        last_packet: None,
                    },
                );
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
            TapMessage::Event(RoomTapEvent::Closed) => self.begin_stop(StopReason::RoomClosed),
        }
    }

    fn on_packet(&mut self, tap: TapId, packet: &TapPacket) {
        let Some(t) = self.tracks.get_mut(&tap) else {
            return;
        };
        t.last_packet = Some(packet.arrival);
        t.codec = Some(packet.codec);
        let Some(socket) = &self.socket else {
            return;
        };
        let closing = self.closing.iter_mut().map(|c| &mut c.feed);
        for r in self.running.iter_mut().chain(closing) {
            if !r.ready {
                continue;
            }
            let Some((port, stream)) = r.streams.get_mut(&tap) else {
                continue;
            };
            let to: std::net::SocketAddr = (std::net::Ipv4Addr::LOCALHOST, *port).into();
            // The stream's first packet follows a sender report on the same socket.
            let opening = stream.opening_report(packet, &r.base);
            if let Some(sr) = &opening {
                let _ = socket.try_send_to(sr, to);
            }
            if !stream.packet(packet, &mut self.buf) {
                continue;
            }
            if socket.try_send_to(&self.buf, to).is_err() {
                self.shared.feed_errors.fetch_add(1, Ordering::Relaxed);
            }
            if opening.is_some() {
                let part = &mut self.rec.parts[r.part];
                if part.started_at_ms == 0 {
                    part.started_at_ms = unix_ms(r.base.wall_of(packet.arrival));
                    self.dirty = true;
                }
            }
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        if self.stop.is_none() {
            self.check_limits(now);
        }
        self.watch_running(now);
        if self.stop.is_none() {
            self.follow_layout(now);
        }
        self.watch_closing(now).await;
        self.scan_running().await;
        if self.stop.is_some() && self.running.is_none() && self.closing.is_empty() {
            self.untap();
            if !self.finalized {
                self.finalize().await;
            }
        }
        if self.finalized
            && self.uploads.is_idle()
            && self.final_state.is_none()
            && !self.rec.state.is_final()
        {
            self.complete();
        }
        self.account_spool();
        if std::mem::take(&mut self.dirty) {
            self.persist();
            self.publish();
        }
    }

    fn check_limits(&mut self, now: Instant) {
        let grace = Duration::from_secs(self.shared.config.empty_room_grace_secs);
        if self
            .empty_since
            .is_some_and(|t| now.duration_since(t) >= grace)
        {
            self.begin_stop(StopReason::RoomEmpty);
        } else if self.shared.spooled.load(Ordering::Relaxed) > self.shared.config.spool_max_bytes {
            self.begin_stop(StopReason::SpoolFull);
        }
    }

    /// Readiness, health, crashes and sender reports of the running part.
    fn watch_running(&mut self, now: Instant) {
        let timeout = Duration::from_secs(self.shared.config.sidecar_start_timeout_secs);
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if let Some(status) = r.sidecar.exited() {
            let healthy = r.healthy;
            let why = r.sidecar.last_errors();
            tracing::warn!(recording = %self.rec.id, part = r.part, %status, healthy, errors = %why, "sidecar exited");
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
                self.rec.reason = None;
                if self.rec.state == State::Starting {
                    self.rec.state = State::Active;
                    self.dirty = true;
                    if let Some(tx) = &self.control {
                        let _ = tx.send(TapControl::State(State::Active));
                    }
                }
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
                        let to = (std::net::Ipv4Addr::LOCALHOST, *port).into();
                        let _ = socket.try_send_to(&sr, to);
                    }
                }
            }
        }
        // Copied video is cut into segments on keyframes: ask for one per segment.
        let every = Duration::from_secs(u64::from(self.shared.config.segment_secs.max(1)));
        if self.rec.mode == Mode::PerTrack && now.duration_since(r.last_keyframes) >= every {
            r.last_keyframes = now;
            for tap in r.video_taps() {
                self.control(TapControl::Keyframe(tap));
            }
        }
    }

    fn sidecar_failed(&mut self, now: Instant, why: String) {
        self.failures += 1;
        tracing::warn!(recording = %self.rec.id, failures = self.failures, %why, "sidecar failed");
        if self.failures >= self.shared.config.sidecar_max_failures.max(1) {
            self.begin_stop(StopReason::SidecarFailed(why));
            return;
        }
        self.rec.reason = Some(why);
        let backoff = Duration::from_millis(500 << self.failures.min(6));
        self.restart_at = Some(now + backoff);
        self.dirty = true;
    }

    /// Starts, restarts or re-lays the part when the set of flowing tracks changed.
    fn follow_layout(&mut self, now: Instant) {
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
        if self.running.is_some() {
            self.end_running(PartEnd::LayoutChanged);
        }
        if !wanted.is_empty() {
            self.start_part(now, wanted);
        }
    }

    /// The tracks the next part records: those whose codec is known and whose packets flow,
    /// in a stable order (by publisher, audio first).
    fn wanted_set(&self, now: Instant) -> Vec<TapId> {
        let mut set: Vec<(&Tracked, TapId)> = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                t.codec.is_some()
                    && t.last_packet
                        .is_some_and(|p| now.saturating_duration_since(p) < SILENT_AFTER)
            })
            .map(|(tap, t)| (t, *tap))
            .collect();
        set.sort_by_key(|(t, tap)| (t.info.participant, t.info.kind == TrackKind::Video, *tap));
        set.into_iter().map(|(_, tap)| tap).collect()
    }

    fn start_part(&mut self, now: Instant, set: Vec<TapId>) {
        let index = self.rec.parts.len();
        let dir = self.dir.join(format!("part-{index:03}"));
        let started = (|| -> std::io::Result<Running> {
            std::fs::create_dir_all(&dir)?;
            let ports = free_port_pairs(set.len())?;
            let mut inputs = Vec::new();
            let mut sdp = Vec::new();
            let mut streams = HashMap::new();
            for (i, tap) in set.iter().enumerate() {
                let t = &self.tracks[tap];
                let codec = t.codec.unwrap_or(TapCodec::Opus);
                inputs.push(PartInput {
                    codec,
                    name: t.info.id.to_string(),
                });
                sdp.push(InputStream {
                    port: ports[i],
                    codec,
                });
                let ssrc = 0x7e40_0000 | ((index as u32 & 0xff) << 8) | i as u32;
                streams.insert(*tap, (ports[i], RtpStream::new(ssrc, codec)));
            }
            let sdp_path = dir.join("input.sdp");
            std::fs::write(&sdp_path, input_sdp(&sdp))?;
            let args = ffmpeg_args(
                self.rec.mode,
                &inputs,
                &sdp_path,
                &dir,
                self.shared.config.segment_secs.max(1),
            );
            let sidecar = Sidecar::spawn(&self.shared.config.ffmpeg, &args, ports)?;
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
            })
        })();
        match started {
            Ok(r) => {
                tracing::info!(recording = %self.rec.id, part = index, tracks = set.len(), pid = ?r.sidecar.pid(), "sidecar started");
                self.rec.parts.push(Part {
                    index: index as u32,
                    started_at_ms: 0,
                    ended_at_ms: None,
                    end: None,
                    pid: r.sidecar.pid(),
                    streams: self.part_streams(&set),
                    segments: Vec::new(),
                });
                self.running = Some(r);
                self.dirty = true;
            }
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("ffmpeg not found ({})", self.shared.config.ffmpeg.display())
                } else {
                    format!("cannot start ffmpeg: {e}")
                };
                self.sidecar_failed(now, why);
            }
        }
    }

    fn part_streams(&self, set: &[TapId]) -> Vec<PartStream> {
        if self.rec.mode == Mode::Composite {
            return vec![PartStream {
                name: COMPOSITE.into(),
                track: None,
                identity: None,
                kind: None,
            }];
        }
        set.iter()
            .filter_map(|tap| self.tracks.get(tap))
            .map(|t| PartStream {
                name: t.info.id.to_string(),
                track: Some(t.info.id.to_string()),
                identity: Some(t.identity.clone()),
                kind: Some(
                    match t.info.kind {
                        TrackKind::Audio => "audio",
                        TrackKind::Video => "video",
                    }
                    .into(),
                ),
            })
            .collect()
    }

    /// The running part ends: its sidecar finishes in the background.
    fn end_running(&mut self, end: PartEnd) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        r.sidecar.interrupt();
        let part = &mut self.rec.parts[r.part];
        part.end = Some(end);
        part.ended_at_ms = Some(unix_ms(SystemTime::now()));
        self.closing.push(Closing {
            feed: r,
            since: Instant::now(),
            insisted: false,
        });
        self.dirty = true;
    }

    /// Parts whose sidecar has exited get their last segments, including one it never listed
    /// (a crash's partial segment keeps what was flushed).
    async fn watch_closing(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.closing.len() {
            let c = &mut self.closing[i];
            if c.feed.sidecar.exited().is_none() {
                let waited = now.duration_since(c.since);
                if waited > FINISH_LIMIT {
                    c.feed.sidecar.kill();
                } else if waited > INSIST_AFTER && !c.insisted {
                    // Its segment list misses the last line then; the directory has the file.
                    c.insisted = true;
                    c.feed.sidecar.interrupt_again();
                }
                i += 1;
                continue;
            }
            let c = self.closing.remove(i);
            self.rec.parts[c.feed.part].pid = None;
            self.scan_part(c.feed.part, true).await;
        }
    }

    async fn scan_running(&mut self) {
        if let Some(part) = self.running.as_ref().map(|r| r.part) {
            self.scan_part(part, false).await;
        }
    }

    /// Reads a part's segment lists; new segments are recorded and queued for upload. With
    /// `all`, segment files the lists do not name are taken too.
    async fn scan_part(&mut self, part: usize, all: bool) {
        let dir = self.dir.join(format!("part-{part:03}"));
        let names: Vec<String> = self.rec.parts[part]
            .streams
            .iter()
            .map(|s| s.name.clone())
            .collect();
        for name in names {
            let list = std::fs::read_to_string(dir.join(format!("{name}.csv"))).unwrap_or_default();
            let listed = crate::segments::parse_list(&list);
            let seen = self.consumed.entry((part, name.clone())).or_default();
            let fresh: Vec<_> = listed.into_iter().skip(*seen).collect();
            *seen += fresh.len();
            for l in fresh {
                self.add_segment(part, &name, &dir, l.file, l.start, l.end - l.start);
            }
            if all {
                self.add_unlisted(part, &name, &dir).await;
            }
        }
    }

    async fn add_unlisted(&mut self, part: usize, name: &str, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let prefix = format!("{name}-");
        let mut files: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.starts_with(&prefix) && !f.ends_with(".csv"))
            .filter(|f| !self.rec.parts[part].segments.iter().any(|s| &s.file == f))
            .collect();
        files.sort();
        for file in files {
            let start = self.rec.parts[part]
                .segments
                .iter()
                .filter(|s| s.stream == name)
                .map(|s| s.start_secs + s.duration_secs)
                .fold(0.0, f64::max);
            match probe_duration(&self.shared.ffprobe, &dir.join(&file)).await {
                Some(d) => self.add_segment(part, name, dir, file, start, d),
                None => {
                    tracing::info!(recording = %self.rec.id, file, "unreadable partial segment dropped")
                }
            }
        }
    }

    fn add_segment(
        &mut self,
        part: usize,
        stream: &str,
        dir: &Path,
        file: String,
        start: f64,
        duration: f64,
    ) {
        let bytes = std::fs::metadata(dir.join(&file)).map_or(0, |m| m.len());
        let key = format!("{}/part-{part:03}/{file}", self.rec.key_prefix);
        let segs = &mut self.rec.parts[part].segments;
        segs.push(Segment {
            stream: stream.to_string(),
            file,
            key,
            start_secs: start,
            duration_secs: duration.max(0.0),
            bytes,
            sha256: String::new(),
            uploaded: false,
            lost: false,
        });
        let seg = segs.len() - 1;
        self.uploads.push(Job::Segment { part, seg });
        self.uploads.push(Job::Manifest);
        self.dirty = true;
    }

    fn next_upload(&mut self) -> Option<InFlight> {
        let job = self.uploads.next(Instant::now(), self.finalized)?;
        let store = &self.shared.store;
        Some(match job {
            Job::Segment { part, seg } => {
                let s = &self.rec.parts[part].segments[seg];
                let path = self.dir.join(format!("part-{part:03}")).join(&s.file);
                upload_file(store, job, path, s.key.clone())
            }
            Job::Final(n) => {
                let f = &self.rec.files[n];
                upload_file(store, job, self.final_path(&f.stream), f.key.clone())
            }
            Job::Manifest => {
                let bytes = serde_json::to_vec_pretty(&self.manifest()).unwrap_or_default();
                upload_bytes(store, job, self.rec.manifest_key(), bytes)
            }
        })
    }

    fn uploaded(&mut self, job: Job, result: crate::uploader::Uploaded) {
        match result {
            Ok((bytes, sha256)) => {
                self.uploads.done();
                self.rec.storage_error = None;
                match job {
                    Job::Segment { part, seg } => {
                        let s = &mut self.rec.parts[part].segments[seg];
                        (s.bytes, s.sha256, s.uploaded) = (bytes, sha256, true);
                    }
                    Job::Final(n) => {
                        let f = &mut self.rec.files[n];
                        (f.bytes, f.sha256, f.uploaded) = (bytes, sha256, true);
                    }
                    Job::Manifest => {
                        // The manifest with the final state is in: now the recording is done.
                        if let Some(state) = self.final_state {
                            self.set_state(state);
                        }
                    }
                }
            }
            Err(e) if e.local && job != Job::Manifest => {
                // The file is gone: retrying cannot help, and it must not hold up the rest.
                tracing::error!(recording = %self.rec.id, error = %e, "a spooled file is lost");
                self.uploads.done();
                match job {
                    Job::Segment { part, seg } => self.rec.parts[part].segments[seg].lost = true,
                    Job::Final(n) => self.rec.files[n].lost = true,
                    Job::Manifest => {}
                }
            }
            Err(e) => {
                let wait = self.uploads.failed(Instant::now());
                tracing::warn!(recording = %self.rec.id, error = %e, retry_in = ?wait, "upload failed; spooling");
                self.rec.storage_error = Some(e.to_string());
            }
        }
        self.dirty = true;
    }

    /// What storage gets as `manifest.json`: what it holds (uploaded segments and files), and
    /// at the end the final state.
    fn manifest(&self) -> Recording {
        let mut m = self.rec.clone();
        if let Some(state) = self.final_state {
            m.state = state;
        }
        for p in &mut m.parts {
            p.segments.retain(|s| s.uploaded);
        }
        m.files.retain(|f| f.uploaded);
        m.storage_error = None;
        m
    }

    pub(crate) fn begin_stop(&mut self, reason: StopReason) {
        if self.stop.is_some() {
            return;
        }
        tracing::info!(recording = %self.rec.id, ?reason, "recording stopping");
        match &reason {
            StopReason::SidecarFailed(why) => self.rec.reason = Some(why.clone()),
            StopReason::SpoolFull => {
                self.rec.reason = Some("spool_full: storage has not taken the spooled bytes".into())
            }
            StopReason::RoomClosed => self.rec.reason = Some("room closed".into()),
            StopReason::RoomEmpty => self.rec.reason = Some("room empty".into()),
            StopReason::Interrupted => self.rec.interrupted = true,
            StopReason::Requested => {}
        }
        let end = if reason == StopReason::Interrupted {
            PartEnd::Interrupted
        } else {
            PartEnd::Stopped
        };
        self.stop = Some(reason);
        self.end_running(end);
        self.set_state(State::Stopping);
    }

    /// Once every sidecar has finished, the room tap ends (media fed them until then).
    fn untap(&mut self) {
        if !self.untapped.swap(true, Ordering::Relaxed) {
            // Media was recorded until now (a resumed recording knows its end already).
            if self.rec.ended_at_ms.is_none() {
                self.rec.ended_at_ms = Some(unix_ms(SystemTime::now()));
            }
            self.control(TapControl::Untap(State::Stopping));
            self.control = None;
            self.dirty = true;
        }
    }

    /// The flag that says the room tap has ended.
    pub fn untapped_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.untapped.clone()
    }

    fn fail_now(&mut self, why: String) {
        self.begin_stop(StopReason::SidecarFailed(why));
    }

    /// Joins each stream's segments into its final file and queues the uploads.
    async fn finalize(&mut self) {
        self.finalized = true;
        // The recording ends where its media does (sidecars may have been waiting for packets).
        if self.rec.parts.iter().any(|p| p.started_at_ms > 0) {
            self.rec.ended_at_ms = Some(self.last_media_ms());
        }
        let _ = std::fs::create_dir_all(self.dir.join("final"));
        let mut names: Vec<String> = Vec::new();
        for p in &self.rec.parts {
            for s in &p.segments {
                if !names.contains(&s.stream) {
                    names.push(s.stream.clone());
                }
            }
        }
        for name in names {
            if self.rec.files.iter().any(|f| f.stream == name) {
                continue;
            }
            match crate::finals::join_stream(
                &self.shared,
                &self.rec,
                &self.dir,
                &name,
                &self.final_path(&name),
            )
            .await
            {
                Ok(file) => {
                    self.rec.files.push(file);
                    self.uploads.push(Job::Final(self.rec.files.len() - 1));
                }
                Err(e) => {
                    tracing::warn!(recording = %self.rec.id, stream = name, error = %e, "final file not made; segments remain")
                }
            }
        }
        self.uploads.push(Job::Manifest);
        self.dirty = true;
    }

    fn final_path(&self, stream: &str) -> PathBuf {
        let ext = crate::finals::final_extension(&self.rec, stream);
        self.dir.join("final").join(format!("{stream}.{ext}"))
    }

    /// Everything is in storage but the final manifest: it goes up with the final state, which
    /// the API shows once storage has it.
    fn complete(&mut self) {
        let stopped_by_fault = matches!(
            self.stop,
            Some(StopReason::SidecarFailed(_)) | Some(StopReason::SpoolFull)
        );
        let has_files = self.rec.files.iter().any(|f| f.uploaded);
        let has_segments = self
            .rec
            .parts
            .iter()
            .flat_map(|p| &p.segments)
            .any(|s| s.uploaded);
        if !has_files && self.rec.reason.is_none() {
            self.rec.reason = Some(if has_segments {
                "the final file could not be made; the segments are in storage".into()
            } else {
                "nothing was recorded".into()
            });
        }
        self.final_state = Some(if stopped_by_fault || !has_files {
            State::Failed
        } else {
            State::Complete
        });
        self.uploads.push(Job::Manifest);
        self.dirty = true;
    }

    fn finished(&self) -> bool {
        self.rec.state.is_final() && self.uploads.is_idle()
    }

    fn set_state(&mut self, state: State) {
        if self.rec.state != state {
            self.rec.state = state;
            self.dirty = true;
            // Participants hear `stopping` once, when the room tap ends.
            if state != State::Stopping {
                self.control(TapControl::State(state));
            }
        }
    }

    fn control(&self, c: TapControl) {
        if let Some(tx) = &self.control {
            let _ = tx.send(c);
        }
    }

    fn account_spool(&mut self) {
        let now = self.rec.spooled_bytes();
        if now >= self.counted {
            self.shared
                .spooled
                .fetch_add(now - self.counted, Ordering::Relaxed);
        } else {
            self.shared
                .spooled
                .fetch_sub(self.counted - now, Ordering::Relaxed);
        }
        self.counted = now;
    }

    fn persist(&self) {
        let Ok(json) = serde_json::to_vec_pretty(&self.rec) else {
            return;
        };
        let tmp = self.dir.join("state.json.tmp");
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join("state.json"));
        }
    }

    fn publish(&self) {
        self.snapshot.send_replace(self.rec.clone());
    }

    /// A recording found in the spool after a restart: its parts ended with tern; take every
    /// segment they left, then finish as if stopped.
    async fn resume(&mut self) {
        tracing::info!(recording = %self.rec.id, state = self.rec.state.as_str(), "resuming a spooled recording");
        let dir = self.dir.clone();
        for p in &mut self.rec.parts {
            if let Some(pid) = p.pid.take() {
                crate::sidecar::stop_orphan(pid, &dir.join(format!("part-{:03}", p.index))).await;
            }
            if p.end.is_none() {
                p.end = Some(PartEnd::Interrupted);
            }
        }
        // Segments already recorded keep their places; the lists are read past them.
        for (i, p) in self.rec.parts.iter().enumerate() {
            for s in &p.streams {
                let n = p.segments.iter().filter(|g| g.stream == s.name).count();
                self.consumed.insert((i, s.name.clone()), n);
            }
        }
        for i in 0..self.rec.parts.len() {
            self.scan_part(i, true).await;
        }
        self.requeue_pending();
        self.stop = Some(StopReason::Interrupted);
        if !self.rec.state.is_final() {
            // Final files are made again, except those already recorded.
            self.rec.interrupted = true;
            if self.rec.ended_at_ms.is_none() {
                self.rec.ended_at_ms = Some(self.last_media_ms());
            }
            self.rec.state = State::Stopping;
        } else {
            self.finalized = true;
        }
        self.dirty = true;
    }

    /// Queues every upload a previous run had not finished.
    fn requeue_pending(&mut self) {
        self.uploads = UploadQueue::default();
        for (i, p) in self.rec.parts.iter().enumerate() {
            for (j, s) in p.segments.iter().enumerate() {
                if !s.uploaded && !s.lost {
                    self.uploads.push(Job::Segment { part: i, seg: j });
                }
            }
        }
        for (n, f) in self.rec.files.iter().enumerate() {
            if !f.uploaded && !f.lost {
                self.uploads.push(Job::Final(n));
            }
        }
        self.uploads.push(Job::Manifest);
    }

    /// The wall time media last reached the spool: the end of the last segment.
    fn last_media_ms(&self) -> u64 {
        self.rec
            .parts
            .iter()
            .filter(|p| p.started_at_ms > 0)
            .map(|p| p.started_at_ms + (p.duration_secs() * 1000.0) as u64)
            .max()
            .unwrap_or(self.rec.started_at_ms)
    }
}

async fn recv_or_pending<T: Send>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_event(rx: &mut Option<mpsc::UnboundedReceiver<TapMessage>>) -> Option<TapMessage> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn poll_or_pending(f: &mut Option<InFlight>) -> (Job, crate::uploader::Uploaded) {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
