//! The broadcaster: starts, stops, lists and finds broadcasts, enforces the limits, and finds
//! the file behind an HLS URL (the live spool, or storage once a broadcast is over).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tern_recording::clock::rfc3339;
use tern_recording::feed::{FeedConfig, Layout, check_ffmpeg};
use tern_recording::store::Store;
use tern_recording::{StorageConfig, TapControl, TapLink};
use tokio::sync::{mpsc, watch};

use crate::args::FPS;
use crate::config::BroadcastConfig;
use crate::hls::Hls;
use crate::ladder::ladder;
use crate::model::{Broadcast, BroadcastState, RungView};
use crate::model::{RtmpView, valid_hls_path, valid_id};
use crate::playlist::Window;
use crate::rtmp::check_rtmp_url;
use crate::session::{Control, Session, StopReason};

/// RTMP targets one broadcast may have.
pub const MAX_RTMP_TARGETS: usize = 8;

/// Why a broadcast request was refused. Each has a stable code (docs/broadcast.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// `already_broadcasting`.
    #[error("room {0} is already broadcast ({1})")]
    AlreadyBroadcasting(String, String),
    /// `broadcast_not_found`.
    #[error("no broadcast {0}")]
    NotFound(String),
    /// `not_broadcasting`.
    #[error("broadcast {0} is {1}, not live")]
    NotBroadcasting(String, &'static str),
    /// `limit_reached`.
    #[error("{0} broadcasts run already (broadcast.max_concurrent)")]
    LimitReached(usize),
    /// `ffmpeg_missing`.
    #[error("{0}")]
    FfmpegMissing(String),
    /// `storage_unavailable`.
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// `bad_request`.
    #[error("{0}")]
    BadRequest(String),
    /// `file_not_found`.
    #[error("{0}")]
    NoFile(String),
    /// `target_not_found`.
    #[error("no RTMP target {0}")]
    NoTarget(String),
}

impl BroadcastError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyBroadcasting(..) => "already_broadcasting",
            Self::NotFound(_) => "broadcast_not_found",
            Self::NotBroadcasting(..) => "not_broadcasting",
            Self::LimitReached(_) => "limit_reached",
            Self::FfmpegMissing(_) => "ffmpeg_missing",
            Self::Storage(_) => "storage_unavailable",
            Self::BadRequest(_) => "bad_request",
            Self::NoFile(_) => "file_not_found",
            Self::NoTarget(_) => "target_not_found",
        }
    }
}

/// What a start asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastRequest {
    /// The program's layout: `speaker` (the default) or `grid`.
    pub layout: Option<String>,
    /// RTMP URLs to push the program to.
    pub rtmp: Vec<String>,
}

/// What every session shares.
pub(crate) struct Shared {
    pub config: BroadcastConfig,
    pub ffmpeg: PathBuf,
    pub store: Store,
    pub feed_errors: Arc<AtomicU64>,
}

impl Shared {
    pub fn feed_config(&self, layout: Layout) -> FeedConfig {
        FeedConfig {
            ffmpeg: self.ffmpeg.clone(),
            start_timeout: Duration::from_secs(self.config.sidecar_start_timeout_secs),
            max_failures: self.config.sidecar_max_failures,
            keyframe_every: None,
            layout,
        }
    }
}

struct Entry {
    room: String,
    stopping: bool,
    untapped: Arc<AtomicBool>,
    snapshot: watch::Receiver<Broadcast>,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
}

/// A file behind an HLS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HlsFile {
    /// In the live spool.
    Local(PathBuf),
    /// In storage (the broadcast is over).
    Stored(Vec<u8>),
}

/// How long storage's answer for an id or a room is kept for public requests.
const LOOKUP_TTL: Duration = Duration::from_secs(5);
/// Lookups kept at most (past it the cache starts again).
const LOOKUPS_KEPT: usize = 10_000;

/// Storage's answers, kept so public URLs (HLS files, the watch page) cannot make tern search
/// storage on every request: finished broadcasts (they do not change), and for a few seconds
/// unknown ids and the rooms' latest broadcast.
#[derive(Default)]
struct Lookups {
    ids: HashMap<String, (Instant, Option<Broadcast>)>,
    rooms: HashMap<String, (Instant, Option<Broadcast>)>,
}

/// The broadcast service.
pub struct Broadcaster {
    shared: Arc<Shared>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    lookups: Arc<Mutex<Lookups>>,
}

impl std::fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcaster")
            .field("store", &self.shared.store.describe())
            .finish()
    }
}

impl Broadcaster {
    /// Builds the broadcaster on `storage` (see [`BroadcastConfig::storage_or`]).
    pub fn new(
        config: BroadcastConfig,
        ffmpeg: PathBuf,
        storage: &StorageConfig,
    ) -> Result<Self, BroadcastError> {
        let store = Store::new(storage).map_err(|e| BroadcastError::Storage(e.message))?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                ffmpeg,
                store,
                feed_errors: Arc::new(AtomicU64::new(0)),
            }),
            entries: Arc::new(Mutex::new(HashMap::new())),
            lookups: Arc::new(Mutex::new(Lookups::default())),
        })
    }

    /// Finishes the broadcasts a previous run left in the spool (in the background): their
    /// playlists end, and what they hold goes to storage. Returns how many.
    pub fn resume_spool(&self) -> usize {
        crate::resume::resume_spool(&self.shared.config.spool_dir, self.shared.store.clone())
    }

    /// How many broadcasts run, and the tap packets that could not be handed to a sidecar.
    pub fn gauges(&self) -> (usize, u64) {
        let running = self
            .lock()
            .values()
            .filter(|e| !e.snapshot.borrow().state.is_final())
            .count();
        (running, self.shared.feed_errors.load(Ordering::Relaxed))
    }

    /// Checks that `room` can be broadcast (limits, ffmpeg, storage); returns the broadcast,
    /// not yet running.
    pub async fn prepare(
        &self,
        id: String,
        room: &str,
        req: BroadcastRequest,
    ) -> Result<Broadcast, BroadcastError> {
        let layout = req.layout.unwrap_or_else(|| "speaker".into());
        if layout_of(&layout).is_none() {
            return Err(BroadcastError::BadRequest(format!(
                "unknown layout {layout:?}; layouts: speaker, grid"
            )));
        }
        check_targets(&req.rtmp, 0)?;
        check_room(&self.lock(), room, self.shared.config.max_concurrent)?;
        check_ffmpeg(&self.shared.ffmpeg)
            .await
            .map_err(BroadcastError::FfmpegMissing)?;
        let store = &self.shared.store;
        tokio::time::timeout(Duration::from_secs(10), store.probe())
            .await
            .map_err(|_| {
                BroadcastError::Storage(format!("{}: no answer in 10 s", store.describe()))
            })?
            .map_err(|e| BroadcastError::Storage(format!("{}: {e}", store.describe())))?;
        let c = &self.shared.config;
        Ok(Broadcast {
            hls_url: format!("/hls/{id}/master.m3u8"),
            key_prefix: store.key_prefix(room, &id),
            id,
            room: room.to_string(),
            state: BroadcastState::Starting,
            layout,
            rungs: ladder(c.program_height)
                .iter()
                .map(|r| RungView {
                    name: r.name.into(),
                    width: r.width,
                    height: r.height,
                    bandwidth: r.bandwidth(),
                })
                .collect(),
            dvr_window_secs: (c.dvr_window_secs > 0).then_some(c.dvr_window_secs),
            segment_secs: c.segment_secs.max(1),
            started_at: rfc3339(SystemTime::now()),
            ended_at: None,
            reason: None,
            segments: 0,
            duration_secs: 0.0,
            restarts: 0,
            storage_error: None,
            rtmp: Vec::new(),
        })
    }

    /// Starts a prepared broadcast pushing to `rtmp` (as prepared), fed through `link`;
    /// `control` reaches its room's worker. The limits are checked again under the lock that
    /// registers it.
    pub fn begin(
        &self,
        b: Broadcast,
        rtmp: Vec<String>,
        link: TapLink,
        control: mpsc::UnboundedSender<TapControl>,
    ) -> Result<Broadcast, BroadcastError> {
        let mut entries = self.lock();
        check_room(&entries, &b.room, self.shared.config.max_concurrent)?;
        let c = &self.shared.config;
        let window = match b.dvr_window_secs {
            Some(secs) => Window::Sliding(secs as f64),
            None => Window::Event,
        };
        let hls = Hls::new(ladder(c.program_height), FPS, c.segment_secs.max(1), window);
        let (snap_tx, snapshot) = watch::channel(b.clone());
        let (tx, control_rx) = mpsc::channel(16);
        let session = Session::new(b.clone(), hls, rtmp, self.shared.clone(), snap_tx, control);
        let b = session.broadcast().clone();
        let untapped = session.untapped_flag();
        let (registry, lookups) = (self.entries.clone(), self.lookups.clone());
        let key = b.id.clone();
        tracing::info!(broadcast = %b.id, room = %b.room, store = %self.shared.store.describe(), "broadcast started");
        let task = tokio::spawn(async move {
            session.run(link, control_rx).await;
            let entry = registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            // From now on it is read from storage: what storage has is this.
            if let Some(e) = entry {
                let done = e.snapshot.borrow().clone();
                remember(&lookups, &key, Some(done));
            }
        });
        entries.insert(
            b.id.clone(),
            Entry {
                room: b.room.clone(),
                stopping: false,
                untapped,
                snapshot,
                control: tx,
                task,
            },
        );
        Ok(b)
    }

    /// Stops a broadcast; returns it as it is now (`stopping`).
    pub async fn stop(&self, id: &str) -> Result<Broadcast, BroadcastError> {
        let found = self.lock().get_mut(id).map(|e| {
            let b = e.snapshot.borrow().clone();
            if e.stopping || !matches!(b.state, BroadcastState::Starting | BroadcastState::Live) {
                let state = if e.stopping && !b.state.is_final() {
                    "stopping"
                } else {
                    b.state.as_str()
                };
                return Err(BroadcastError::NotBroadcasting(id.to_string(), state));
            }
            e.stopping = true;
            Ok((e.control.clone(), b))
        });
        let (stop, mut b) = match found {
            Some(r) => r?,
            None => return Err(self.over(id).await),
        };
        let _ = stop.send(Control::Stop(StopReason::Requested)).await;
        b.state = BroadcastState::Stopping;
        Ok(b)
    }

    /// Adds an RTMP target to a running broadcast.
    pub async fn add_rtmp(&self, id: &str, url: String) -> Result<RtmpView, BroadcastError> {
        let (control, _) = self.running(id).await?;
        check_targets(std::slice::from_ref(&url), 0)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = control.send(Control::AddRtmp(url, tx)).await;
        // The session counts the targets still pushing, so two adds at once cannot pass both.
        rx.await
            .map_err(|_| BroadcastError::NotBroadcasting(id.to_string(), "ended"))?
            .ok_or_else(|| {
                BroadcastError::BadRequest(format!(
                    "at most {MAX_RTMP_TARGETS} RTMP targets per broadcast"
                ))
            })
    }

    /// Stops pushing to target `target` of broadcast `id`.
    pub async fn remove_rtmp(&self, id: &str, target: &str) -> Result<RtmpView, BroadcastError> {
        let (control, _) = self.running(id).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = control
            .send(Control::RemoveRtmp(target.to_string(), tx))
            .await;
        rx.await
            .ok()
            .flatten()
            .ok_or_else(|| BroadcastError::NoTarget(target.to_string()))
    }

    /// A broadcast that is starting or live: its control channel and state. One that is over
    /// is `not_broadcasting`; one that never was, `broadcast_not_found`.
    async fn running(
        &self,
        id: &str,
    ) -> Result<(mpsc::Sender<Control>, Broadcast), BroadcastError> {
        let Some((control, stopping, b)) = self
            .lock()
            .get(id)
            .map(|e| (e.control.clone(), e.stopping, e.snapshot.borrow().clone()))
        else {
            return Err(self.over(id).await);
        };
        if stopping || !matches!(b.state, BroadcastState::Starting | BroadcastState::Live) {
            return Err(BroadcastError::NotBroadcasting(
                id.to_string(),
                b.state.as_str(),
            ));
        }
        Ok((control, b))
    }

    /// Why broadcast `id`, which this process does not run, cannot be changed.
    async fn over(&self, id: &str) -> BroadcastError {
        match self.find(id).await {
            Ok(b) => BroadcastError::NotBroadcasting(id.to_string(), b.state.as_str()),
            Err(e) => e,
        }
    }

    /// A broadcast this process runs.
    pub fn get(&self, id: &str) -> Option<Broadcast> {
        self.lock().get(id).map(|e| e.snapshot.borrow().clone())
    }

    /// A broadcast, from this process or from storage.
    pub async fn find(&self, id: &str) -> Result<Broadcast, BroadcastError> {
        if let Some(b) = self.get(id) {
            return Ok(b);
        }
        if !valid_id(id) {
            return Err(BroadcastError::NotFound(id.to_string()));
        }
        let known = self.lookup_lock().ids.get(id).cloned();
        let found = match known {
            Some((_, Some(b))) if b.state.is_final() => Some(b),
            Some((at, found)) if at.elapsed() < LOOKUP_TTL => found,
            _ => {
                let found: Option<Broadcast> = self
                    .shared
                    .store
                    .find_manifest(id)
                    .await
                    .map_err(|e| BroadcastError::Storage(e.message))?;
                let found = found.filter(|b| b.id == id);
                remember(&self.lookups, id, found.clone());
                found
            }
        };
        found.ok_or_else(|| BroadcastError::NotFound(id.to_string()))
    }

    /// The room's broadcast a viewer should see: the running one, else the latest (storage's
    /// answer kept for a few seconds).
    pub async fn latest_in(&self, room: &str) -> Result<Option<Broadcast>, BroadcastError> {
        if let Some(b) = self.running_in(room).into_iter().next() {
            return Ok(Some(b));
        }
        if let Some((at, b)) = self.lookup_lock().rooms.get(room).cloned()
            && at.elapsed() < LOOKUP_TTL
        {
            return Ok(b);
        }
        let all = self.list(room).await?;
        let b = all
            .iter()
            .find(|b| !b.state.is_final())
            .or_else(|| all.first())
            .cloned();
        let mut l = self.lookup_lock();
        if l.rooms.len() >= LOOKUPS_KEPT {
            l.rooms.clear();
        }
        l.rooms
            .insert(room.to_string(), (Instant::now(), b.clone()));
        Ok(b)
    }

    fn lookup_lock(&self) -> std::sync::MutexGuard<'_, Lookups> {
        self.lookups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every broadcast of `room`: running ones and those in storage, newest first.
    pub async fn list(&self, room: &str) -> Result<Vec<Broadcast>, BroadcastError> {
        let mut out: Vec<Broadcast> = self
            .lock()
            .values()
            .filter(|e| e.room == room)
            .map(|e| e.snapshot.borrow().clone())
            .collect();
        let running: Vec<String> = out.iter().map(|b| b.id.clone()).collect();
        let stored: Vec<Broadcast> = self
            .shared
            .store
            .manifests_of(room, |id| running.iter().any(|r| r == id))
            .await;
        out.extend(stored);
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        Ok(out)
    }

    /// The broadcasts of `room` that are live or starting (no stop asked).
    pub fn running_in(&self, room: &str) -> Vec<Broadcast> {
        self.lock()
            .values()
            .filter(|e| e.room == room && !e.stopping)
            .map(|e| e.snapshot.borrow().clone())
            .filter(|b| !b.state.is_final() && b.state != BroadcastState::Stopping)
            .collect()
    }

    /// The file behind `/hls/<id>/<path>`: `master.m3u8`, `<rung>/index.m3u8`,
    /// `<rung>/init-NNN.mp4` or `<rung>/seg-NNNNNN.m4s`.
    pub async fn hls_file(&self, id: &str, path: &str) -> Result<HlsFile, BroadcastError> {
        let missing = || BroadcastError::NoFile(format!("no {path} in broadcast {id}"));
        if !valid_id(id) || !valid_hls_path(path) {
            return Err(missing());
        }
        if self.get(id).is_some() {
            let local = self.shared.config.spool_dir.join(id).join("hls").join(path);
            if local.is_file() {
                return Ok(HlsFile::Local(local));
            }
        }
        let b = self.find(id).await?;
        let key = format!("{}/{path}", b.key_prefix);
        self.shared
            .store
            .get(&key)
            .await
            .map(HlsFile::Stored)
            .map_err(|_| missing())
    }

    /// Stops every broadcast (tern is shutting down) and waits up to `limit` for their
    /// sidecars to finish, and up to `limit` more for their last uploads.
    pub async fn shutdown(&self, limit: Duration) {
        let (flags, tasks): (Vec<_>, Vec<_>) = self
            .lock()
            .values()
            .map(|e| {
                let _ = e.control.try_send(Control::Stop(StopReason::Interrupted));
                (e.untapped.clone(), e.task.abort_handle())
            })
            .unzip();
        let deadline = tokio::time::Instant::now() + limit;
        while flags.iter().any(|f| !f.load(Ordering::Relaxed))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = tokio::time::Instant::now() + limit;
        while tasks.iter().any(|t| !t.is_finished()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in tasks {
            t.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps storage's answer for `id`.
fn remember(lookups: &Mutex<Lookups>, id: &str, found: Option<Broadcast>) {
    let mut l = lookups.lock().unwrap_or_else(|e| e.into_inner());
    if l.ids.len() >= LOOKUPS_KEPT {
        l.ids.clear();
    }
    l.ids.insert(id.to_string(), (Instant::now(), found));
}

/// Refuses a broadcast of `room` when one runs already, or too many run.
fn check_room(
    entries: &HashMap<String, Entry>,
    room: &str,
    max: usize,
) -> Result<(), BroadcastError> {
    let running: Vec<Broadcast> = entries
        .values()
        .filter(|e| !e.stopping)
        .map(|e| e.snapshot.borrow().clone())
        .filter(|b| matches!(b.state, BroadcastState::Starting | BroadcastState::Live))
        .collect();
    if let Some(b) = running.iter().find(|b| b.room == room) {
        return Err(BroadcastError::AlreadyBroadcasting(
            room.to_string(),
            b.id.clone(),
        ));
    }
    if running.len() >= max {
        return Err(BroadcastError::LimitReached(running.len()));
    }
    Ok(())
}

/// The feed layout a broadcast's `layout` names.
pub(crate) fn layout_of(name: &str) -> Option<Layout> {
    match name {
        "speaker" => Some(Layout::Speaker),
        "grid" => Some(Layout::Grid),
        _ => None,
    }
}

/// Refuses bad RTMP URLs, and more than [`MAX_RTMP_TARGETS`] with the `existing` ones.
fn check_targets(urls: &[String], existing: usize) -> Result<(), BroadcastError> {
    if urls.len() + existing > MAX_RTMP_TARGETS {
        return Err(BroadcastError::BadRequest(format!(
            "at most {MAX_RTMP_TARGETS} RTMP targets per broadcast"
        )));
    }
    for url in urls {
        check_rtmp_url(url).map_err(BroadcastError::BadRequest)?;
    }
    Ok(())
}
