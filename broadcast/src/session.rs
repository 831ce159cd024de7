//! One broadcast's task. Its [`Feed`] runs the ladder sidecar (a new run when the room's layout
//! changes or ffmpeg dies); the session follows each run's playlists, moves complete segments
//! into the HLS root, writes the playlists players see, uploads segments before the playlists
//! that name them, and deletes what left the DVR window.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tern_recording::clock::rfc3339;
use tern_recording::feed::{Feed, FeedEvent, recv_event, recv_or_pending};
use tern_recording::store::StoreError;
use tern_recording::{TapControl, TapLink};
use tokio::sync::{mpsc, oneshot, watch};

use crate::egress::Egress;
use crate::hls::{Hls, Update};
use crate::model::{Broadcast, BroadcastState, RtmpView};
use crate::service::Shared;
use crate::variant::parse_variant;

/// How often the session looks at its sidecar, playlists, deletions and uploads.
const TICK: Duration = Duration::from_millis(200);
/// The longest wait between upload retries.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Why a broadcast stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    Requested,
    RoomEmpty,
    RoomClosed,
    SidecarFailed(String),
    Interrupted,
}

/// What the service asks of a running broadcast.
pub(crate) enum Control {
    /// Stop.
    Stop(StopReason),
    /// Push to this RTMP URL too (already checked).
    AddRtmp(String, oneshot::Sender<Option<RtmpView>>),
    /// Stop pushing to this target.
    RemoveRtmp(String, oneshot::Sender<Option<RtmpView>>),
}

/// An upload, in order: files before the playlists that name them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Upload {
    /// A file of the HLS root (relative path).
    File(String),
    /// A playlist's text as it was when queued.
    Text(String, Vec<u8>),
    /// An object that left the window.
    Delete(String),
}

/// A running upload.
type InFlight = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

/// One broadcast.
pub(crate) struct Session {
    b: Broadcast,
    dir: PathBuf,
    hls_dir: PathBuf,
    shared: Arc<Shared>,
    snapshot: watch::Sender<Broadcast>,
    control: Option<mpsc::UnboundedSender<TapControl>>,
    feed: Feed,
    hls: Hls,
    egress: Egress,
    /// Runs started and not yet published, oldest first (the current one is `hls.part()`).
    waiting: VecDeque<usize>,
    /// Runs whose sidecar has exited.
    exited: HashSet<usize>,
    stop: Option<StopReason>,
    ended: bool,
    final_state: Option<BroadcastState>,
    untapped: Arc<AtomicBool>,
    uploads: VecDeque<Upload>,
    retry_at: Option<Instant>,
    upload_failures: u32,
    deletions: VecDeque<(Instant, String)>,
    master_written: bool,
    /// The final manifest is queued: when uploads are done, so is the broadcast.
    manifest_queued: bool,
    dirty: bool,
}

impl Session {
    /// A session for `b`, whose ladder is `hls`, pushing to `rtmp` (checked URLs).
    pub fn new(
        mut b: Broadcast,
        hls: Hls,
        rtmp: Vec<String>,
        shared: Arc<Shared>,
        snapshot: watch::Sender<Broadcast>,
        control: mpsc::UnboundedSender<TapControl>,
    ) -> Self {
        let dir = shared.config.spool_dir.join(&b.id);
        let rungs = hls.rungs().to_vec();
        let secs = shared.config.segment_secs.max(1);
        let feed = Feed::new(
            format!("broadcast {}", b.id),
            dir.clone(),
            shared.feed_config(crate::service::layout_of(&b.layout).unwrap_or_default()),
            Box::new(move |inputs, sdp, part_dir| {
                // ffmpeg's HLS muxer does not make its output directories.
                for r in &rungs {
                    let _ = std::fs::create_dir_all(part_dir.join(r.name));
                }
                crate::args::ladder_args(inputs, sdp, part_dir, &rungs, secs)
            }),
            Some(control.clone()),
            0,
            shared.feed_errors.clone(),
        );
        let top = hls.rungs().first().map_or("720p", |r| r.name);
        let mut egress = Egress::new(
            shared.ffmpeg.clone(),
            dir.join("hls").join(top).join("index.m3u8"),
        );
        for url in rtmp {
            egress.add(url, crate::service::MAX_RTMP_TARGETS);
        }
        b.rtmp = egress.views();
        Self {
            hls_dir: dir.join("hls"),
            dir,
            b,
            shared,
            snapshot,
            control: Some(control),
            feed,
            hls,
            egress,
            waiting: VecDeque::new(),
            exited: HashSet::new(),
            stop: None,
            ended: false,
            final_state: None,
            untapped: Arc::new(AtomicBool::new(false)),
            uploads: VecDeque::new(),
            retry_at: None,
            upload_failures: 0,
            deletions: VecDeque::new(),
            master_written: false,
            manifest_queued: false,
            dirty: true,
        }
    }

    /// The broadcast as it starts.
    pub fn broadcast(&self) -> &Broadcast {
        &self.b
    }

    /// The flag that says the room tap has ended.
    pub fn untapped_flag(&self) -> Arc<AtomicBool> {
        self.untapped.clone()
    }

    /// Runs the broadcast to its end.
    pub async fn run(mut self, link: TapLink, mut control_rx: mpsc::Receiver<Control>) {
        if let Err(e) = std::fs::create_dir_all(&self.hls_dir) {
            self.begin_stop(StopReason::SidecarFailed(format!(
                "cannot create {}: {e}",
                self.hls_dir.display()
            )));
        }
        let (mut events, mut media) = (Some(link.events), Some(link.media));
        let mut tick = tokio::time::interval(TICK);
        let mut inflight: Option<(Upload, InFlight)> = None;
        let mut control_open = true;
        loop {
            tokio::select! {
                biased;
                c = control_rx.recv(), if control_open => match c {
                    Some(c) => self.on_control(c),
                    None => {
                        // The service is gone: stop once, then never poll it.
                        control_open = false;
                        self.begin_stop(StopReason::Interrupted);
                    }
                },
                ev = recv_event(&mut events) => match ev {
                    Some(ev) => if self.feed.on_message(ev) { self.begin_stop(StopReason::RoomClosed) },
                    None => { events = None; media = None; self.begin_stop(StopReason::RoomClosed); }
                },
                done = poll_or_pending(&mut inflight) => {
                    self.uploaded_one(done.0, done.1);
                    inflight = self.next_upload();
                }
                _ = tick.tick() => {
                    self.tick();
                    if self.untapped.load(Ordering::Relaxed) {
                        events = None;
                        media = None;
                    }
                    if inflight.is_none() {
                        inflight = self.next_upload();
                    }
                    if self.manifest_queued && inflight.is_none() && self.uploads.is_empty() {
                        // Storage has everything, the final manifest last.
                        self.b.state = self.final_state.unwrap_or(BroadcastState::Ended);
                        break;
                    }
                }
                m = recv_or_pending(&mut media) => match m {
                    Some((tap, packet)) => self.feed.on_packet(tap, &packet),
                    None => media = None,
                },
            }
        }
        self.publish();
        // The finished broadcast is served from storage from now on.
        let _ = std::fs::remove_dir_all(&self.dir);
        tracing::info!(broadcast = %self.b.id, state = self.b.state.as_str(), "broadcast finished");
    }

    fn on_control(&mut self, c: Control) {
        let now = Instant::now();
        match c {
            Control::Stop(reason) => self.begin_stop(reason),
            Control::AddRtmp(url, reply) => {
                let _ = reply.send(self.egress.add(url, crate::service::MAX_RTMP_TARGETS));
            }
            Control::RemoveRtmp(id, reply) => {
                let _ = reply.send(self.egress.remove(&id, now));
            }
        }
        self.b.rtmp = self.egress.views();
        self.dirty = true;
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let grace = Duration::from_secs(self.shared.config.empty_room_grace_secs);
        if self.stop.is_none() && self.feed.empty_for(grace, now) {
            self.begin_stop(StopReason::RoomEmpty);
        }
        for ev in self.feed.tick(now, self.stop.is_some()) {
            self.on_feed(ev);
        }
        self.follow_parts();
        self.delete_due(now);
        if self.egress.tick(now, self.hls.published() > 0) {
            self.b.rtmp = self.egress.views();
            self.dirty = true;
        }
        // Last, once the pushes are over too: what waited to leave storage (no playlist names it
        // now), then the manifest with the final state.
        if self.ended && !self.manifest_queued && self.egress.all_exited() {
            self.manifest_queued = true;
            for (_, path) in std::mem::take(&mut self.deletions) {
                let before = self.uploads.len();
                self.uploads
                    .retain(|u| !matches!(u, Upload::File(p) if *p == path));
                if before == self.uploads.len() {
                    self.uploads.push_back(Upload::Delete(path));
                }
            }
            let manifest = self.manifest_bytes();
            self.uploads
                .push_back(Upload::Text("manifest.json".into(), manifest));
        }
        if self.stop.is_some() && self.feed.is_idle() && self.waiting.is_empty() && !self.ended {
            self.end();
        }
        if std::mem::take(&mut self.dirty) {
            self.b.segments = self.hls.published();
            self.b.duration_secs = (self.hls.duration() * 1000.0).round() / 1000.0;
            self.persist();
            self.publish();
        }
    }

    /// Keeps the broadcast beside its files, for a restarted tern to finish.
    fn persist(&self) {
        let Ok(json) = serde_json::to_vec_pretty(&self.b) else {
            return;
        };
        let tmp = self.dir.join("broadcast.json.tmp");
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(crate::resume::STATE_FILE));
        }
    }

    fn on_feed(&mut self, ev: FeedEvent) {
        match ev {
            FeedEvent::PartStarted { part, .. } => {
                if self.hls.part().is_none() {
                    self.hls.begin_part(part);
                } else {
                    self.waiting.push_back(part);
                    self.b.restarts += 1;
                }
            }
            FeedEvent::MediaStarted { part, wall } => self.hls.part_started(part, wall),
            FeedEvent::Healthy(_) => {
                self.b.reason = None;
            }
            FeedEvent::PartEnded { .. } => {}
            FeedEvent::PartExited(part) => {
                self.exited.insert(part);
            }
            FeedEvent::Retrying(why) => self.b.reason = Some(why),
            FeedEvent::Failed(why) => self.begin_stop(StopReason::SidecarFailed(why)),
        }
        self.dirty = true;
    }

    /// Publishes what the current run's sidecar completed; once it has exited and everything
    /// is in, the next run's turn comes.
    fn follow_parts(&mut self) {
        while let Some(part) = self.hls.part() {
            let exited = self.exited.contains(&part);
            self.scan(part);
            if !exited {
                return;
            }
            match self.waiting.pop_front() {
                Some(next) => self.hls.begin_part(next),
                None => return,
            }
        }
    }

    fn scan(&mut self, part: usize) {
        let part_dir = Feed::part_dir(&self.dir, part);
        let listings: Vec<_> = self
            .hls
            .rungs()
            .iter()
            .map(|r| {
                let text = std::fs::read_to_string(part_dir.join(r.name).join("index.m3u8"));
                parse_variant(&text.unwrap_or_default())
            })
            .collect();
        let update = self.hls.offer(part, &listings);
        if !update.is_empty() {
            self.apply(&part_dir, update);
        }
    }

    fn apply(&mut self, part_dir: &Path, update: Update) {
        let now = Instant::now();
        for m in update.moves {
            let to = self.hls_dir.join(&m.to);
            if let Some(parent) = to.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            match std::fs::rename(part_dir.join(&m.from), &to) {
                Ok(()) => self.uploads.push_back(Upload::File(m.to)),
                Err(e) => {
                    tracing::warn!(broadcast = %self.b.id, file = m.from, error = %e, "segment not moved")
                }
            }
        }
        for r in update.removed {
            self.deletions.push_back((now + r.after, r.path));
        }
        self.write_playlists();
        if self.b.state == BroadcastState::Starting {
            self.b.state = BroadcastState::Live;
            self.control(TapControl::State(BroadcastState::Live.as_str()));
            // Storage can name it from now on, even if tern dies before it ends.
            let mut m = self.b.clone();
            m.storage_error = None;
            let bytes = serde_json::to_vec_pretty(&m).unwrap_or_default();
            self.uploads
                .push_back(Upload::Text("manifest.json".into(), bytes));
        }
        self.dirty = true;
    }

    /// Writes every playlist into the HLS root and queues their uploads (a newer text replaces
    /// a queued older one, which keeps its segments ahead of it).
    fn write_playlists(&mut self) {
        let mut texts: Vec<(String, String)> = (0..self.hls.rungs().len())
            .map(|i| {
                (
                    format!("{}/index.m3u8", self.hls.rungs()[i].name),
                    self.hls.media(i),
                )
            })
            .collect();
        if !self.master_written {
            self.master_written = true;
            texts.push(("master.m3u8".into(), self.hls.master()));
        }
        for (path, text) in texts {
            let file = self.hls_dir.join(&path);
            let tmp = file.with_extension("m3u8.tmp");
            if std::fs::write(&tmp, &text).is_ok() {
                let _ = std::fs::rename(&tmp, &file);
            }
            self.uploads
                .retain(|u| !matches!(u, Upload::Text(p, _) if *p == path));
            self.uploads
                .push_back(Upload::Text(path, text.into_bytes()));
        }
    }

    /// Deletes what left the window long enough ago, here and in storage.
    fn delete_due(&mut self, now: Instant) {
        while self.deletions.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, path)) = self.deletions.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(self.hls_dir.join(&path));
            let before = self.uploads.len();
            self.uploads
                .retain(|u| !matches!(u, Upload::File(p) if *p == path));
            if before == self.uploads.len() {
                self.uploads.push_back(Upload::Delete(path));
            }
        }
    }

    fn next_upload(&mut self) -> Option<(Upload, InFlight)> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        // A delete waits for every playlist queued before it is done: storage must not lose a
        // segment its current playlist still names.
        let playlist_queued = self
            .uploads
            .iter()
            .any(|u| matches!(u, Upload::Text(p, _) if p.ends_with(".m3u8")));
        for _ in 0..self.uploads.len() {
            if !playlist_queued || !matches!(self.uploads.front(), Some(Upload::Delete(_))) {
                break;
            }
            if let Some(delete) = self.uploads.pop_front() {
                self.uploads.push_back(delete);
            }
        }
        let job = self.uploads.pop_front()?;
        let store = self.shared.store.clone();
        let key = |p: &str| format!("{}/{p}", self.b.key_prefix);
        let fut: InFlight = match &job {
            Upload::File(p) => {
                let (path, key) = (self.hls_dir.join(p), key(p));
                Box::pin(async move { store.upload_file(&path, &key).await.map(|_| ()) })
            }
            Upload::Text(p, bytes) => {
                let (bytes, key) = (bytes.clone(), key(p));
                Box::pin(async move { store.put(&key, bytes).await })
            }
            Upload::Delete(p) => {
                let key = key(p);
                Box::pin(async move { store.delete(&key).await })
            }
        };
        Some((job, fut))
    }

    fn uploaded_one(&mut self, job: Upload, result: Result<(), StoreError>) {
        match result {
            Ok(()) => {
                self.upload_failures = 0;
                self.retry_at = None;
                if self.b.storage_error.take().is_some() {
                    self.dirty = true;
                }
            }
            Err(e) if e.local && matches!(job, Upload::File(_)) => {
                // Deleted behind the window before it could go up: nothing to retry.
                tracing::debug!(broadcast = %self.b.id, error = %e, "a segment left before upload");
            }
            Err(e) => {
                self.upload_failures += 1;
                let wait = Duration::from_millis(250 << self.upload_failures.min(6)).min(RETRY_MAX);
                tracing::warn!(broadcast = %self.b.id, error = %e, retry_in = ?wait, "upload failed");
                self.retry_at = Some(Instant::now() + wait);
                self.b.storage_error = Some(e.to_string());
                self.uploads.push_front(job);
                self.dirty = true;
            }
        }
    }

    pub(crate) fn begin_stop(&mut self, reason: StopReason) {
        if self.stop.is_some() {
            return;
        }
        tracing::info!(broadcast = %self.b.id, ?reason, "broadcast stopping");
        match &reason {
            StopReason::SidecarFailed(why) => self.b.reason = Some(why.clone()),
            StopReason::RoomClosed => self.b.reason = Some("room closed".into()),
            StopReason::RoomEmpty => self.b.reason = Some("room empty".into()),
            StopReason::Interrupted => self.b.reason = Some("tern stopped".into()),
            StopReason::Requested => {}
        }
        let end = if reason == StopReason::Interrupted {
            tern_recording::manifest::PartEnd::Interrupted
        } else {
            tern_recording::manifest::PartEnd::Stopped
        };
        self.final_state = Some(match reason {
            StopReason::SidecarFailed(_) => BroadcastState::Failed,
            _ => BroadcastState::Ended,
        });
        self.stop = Some(reason);
        self.feed.end_running(end);
        self.b.state = BroadcastState::Stopping;
        self.dirty = true;
    }

    /// Every run is published: the playlists end, the room tap ends, and once storage has
    /// everything the broadcast is over.
    fn end(&mut self) {
        self.ended = true;
        // Pushes read on to the end of the playlist, then exit.
        let at_once = self.stop == Some(StopReason::Interrupted);
        self.egress.stop_all(Instant::now(), at_once);
        self.hls.end();
        self.write_playlists();
        self.b.ended_at = Some(rfc3339(SystemTime::now()));
        if !self.untapped.swap(true, Ordering::Relaxed) {
            self.control(TapControl::Untap(BroadcastState::Stopping.as_str()));
            self.control = None;
            self.feed.detach();
        }
        self.dirty = true;
    }

    fn manifest_bytes(&self) -> Vec<u8> {
        let mut m = self.b.clone();
        m.state = self.final_state.unwrap_or(BroadcastState::Ended);
        m.storage_error = None;
        m.segments = self.hls.published();
        m.duration_secs = (self.hls.duration() * 1000.0).round() / 1000.0;
        serde_json::to_vec_pretty(&m).unwrap_or_default()
    }

    fn control(&self, c: TapControl) {
        if let Some(tx) = &self.control {
            let _ = tx.send(c);
        }
    }

    fn publish(&self) {
        self.snapshot.send_replace(self.b.clone());
    }
}

async fn poll_or_pending(f: &mut Option<(Upload, InFlight)>) -> (Upload, Result<(), StoreError>) {
    match f {
        Some((job, fut)) => {
            let r = fut.await;
            (job.clone(), r)
        }
        None => std::future::pending().await,
    }
}
