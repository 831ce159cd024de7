//! One recording's task. Its [`Feed`] runs the sidecar parts; the session picks up the segments
//! they complete, uploads them, and when stopped joins each stream's segments into a final file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tern_sfu::{TapId, TrackKind};
use tokio::sync::{mpsc, watch};

use crate::args::{COMPOSITE, Mode, ffmpeg_args};
use crate::clock::unix_ms;
use crate::feed::{Feed, FeedConfig, FeedEvent, recv_event, recv_or_pending};
use crate::manifest::{Part, PartEnd, PartStream, Recording, Segment, State};
use crate::service::{Shared, TapControl, TapLink};
use crate::sidecar::probe_duration;
use crate::uploader::{InFlight, Job, UploadQueue, upload_bytes, upload_file};

/// How often the session looks at its sidecar, segments and uploads.
const TICK: Duration = Duration::from_millis(200);

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

/// One recording.
pub(crate) struct Session {
    rec: Recording,
    dir: PathBuf,
    shared: Arc<Shared>,
    snapshot: watch::Sender<Recording>,
    control: Option<mpsc::UnboundedSender<TapControl>>,
    feed: Feed,
    /// Segment-list lines already read, per part and stream.
    consumed: HashMap<(usize, String), usize>,
    stop: Option<StopReason>,
    /// The state it ends in, once decided (shown when the final manifest is in storage).
    final_state: Option<State>,
    /// The room tap has ended: no more media. Shared with the recorder, which waits for it at
    /// shutdown.
    untapped: Arc<std::sync::atomic::AtomicBool>,
    finalized: bool,
    uploads: UploadQueue,
    /// Bytes of this recording counted in the shared spool meter.
    counted: u64,
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
        let config = FeedConfig {
            ffmpeg: shared.config.ffmpeg.clone(),
            start_timeout: Duration::from_secs(shared.config.sidecar_start_timeout_secs),
            max_failures: shared.config.sidecar_max_failures,
            // Copied video is cut into segments on keyframes: ask for one per segment.
            keyframe_every: (rec.mode == Mode::PerTrack)
                .then(|| Duration::from_secs(u64::from(shared.config.segment_secs.max(1)))),
            layout: crate::feed::Layout::Grid,
        };
        let (mode, secs) = (rec.mode, shared.config.segment_secs.max(1));
        let feed = Feed::new(
            format!("recording {}", rec.id),
            dir.clone(),
            config,
            Box::new(move |inputs, sdp, part_dir| ffmpeg_args(mode, inputs, sdp, part_dir, secs)),
            control.clone(),
            rec.parts.len(),
            shared.feed_errors.clone(),
        );
        Self {
            rec,
            dir,
            shared,
            snapshot,
            control,
            feed,
            consumed: HashMap::new(),
            stop: None,
            final_state: None,
            untapped: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            finalized: false,
            uploads: UploadQueue::default(),
            counted: 0,
            dirty: true,
        }
    }

    /// Runs the recording to its end. `link` is `None` for a recording finished after a restart.
    pub async fn run(mut self, link: Option<TapLink>, stop_rx: mpsc::Receiver<StopReason>) {
        let mut stop_rx = Some(stop_rx);
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            self.fail_now(format!("cannot create {}: {e}", self.dir.display()));
        }
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
                    Some(ev) => if self.feed.on_message(ev) { self.begin_stop(StopReason::RoomClosed) },
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
                    Some((tap, packet)) => self.feed.on_packet(tap, &packet),
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

    async fn tick(&mut self) {
        let now = Instant::now();
        if self.stop.is_none() {
            self.check_limits(now);
        }
        for ev in self.feed.tick(now, self.stop.is_some()) {
            self.on_feed(ev).await;
        }
        self.scan_running().await;
        if self.stop.is_some() && self.feed.is_idle() {
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
        if self.feed.empty_for(grace, now) {
            self.begin_stop(StopReason::RoomEmpty);
        } else if self.shared.spooled.load(Ordering::Relaxed) > self.shared.config.spool_max_bytes {
            self.begin_stop(StopReason::SpoolFull);
        }
    }

    async fn on_feed(&mut self, ev: FeedEvent) {
        match ev {
            FeedEvent::PartStarted { part, pid, taps } => {
                debug_assert_eq!(part, self.rec.parts.len());
                self.rec.parts.push(Part {
                    index: part as u32,
                    started_at_ms: 0,
                    ended_at_ms: None,
                    end: None,
                    pid,
                    streams: self.part_streams(&taps),
                    segments: Vec::new(),
                });
            }
            FeedEvent::MediaStarted { part, wall } => {
                let p = &mut self.rec.parts[part];
                if p.started_at_ms == 0 {
                    p.started_at_ms = unix_ms(wall);
                }
            }
            FeedEvent::Healthy(_) => {
                self.rec.reason = None;
                if self.rec.state == State::Starting {
                    self.rec.state = State::Active;
                    self.control(TapControl::State(State::Active.as_str()));
                }
            }
            FeedEvent::PartEnded { part, end } => {
                let p = &mut self.rec.parts[part];
                p.end = Some(end);
                p.ended_at_ms = Some(unix_ms(SystemTime::now()));
            }
            FeedEvent::PartExited(part) => {
                self.rec.parts[part].pid = None;
                self.scan_part(part, true).await;
            }
            FeedEvent::Retrying(why) => self.rec.reason = Some(why),
            FeedEvent::Failed(why) => self.begin_stop(StopReason::SidecarFailed(why)),
        }
        self.dirty = true;
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
            .filter_map(|tap| self.feed.track(*tap))
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

    async fn scan_running(&mut self) {
        if let Some(part) = self.feed.running_part() {
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
        self.feed.end_running(end);
        self.set_state(State::Stopping);
    }

    /// Once every sidecar has finished, the room tap ends (media fed them until then).
    fn untap(&mut self) {
        if !self.untapped.swap(true, Ordering::Relaxed) {
            // Media was recorded until now (a resumed recording knows its end already).
            if self.rec.ended_at_ms.is_none() {
                self.rec.ended_at_ms = Some(unix_ms(SystemTime::now()));
            }
            self.control(TapControl::Untap(State::Stopping.as_str()));
            self.control = None;
            self.feed.detach();
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
                self.control(TapControl::State(state.as_str()));
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

async fn poll_or_pending(f: &mut Option<InFlight>) -> (Job, crate::uploader::Uploaded) {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
