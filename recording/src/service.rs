//! The recorder: starts, stops, lists and finds recordings, enforces the limits, and on start
//! finishes whatever a previous run left in the spool. The server links each recording to the
//! SFU worker of its room through a [`TapSink`] / [`TapLink`] pair and a control channel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tern_sfu::{RoomTapEvent, TapId, TapPacket};
use tokio::sync::{mpsc, watch};

use crate::args::Mode;
use crate::config::RecordingConfig;
use crate::manifest::{Recording, State};
use crate::session::{Session, StopReason};
use crate::sidecar::{check_ffmpeg, ffprobe_of};
use crate::store::{Download, Store};

/// Tap packets waiting for a recording's feeder; beyond this they are dropped and counted
/// (`tern_tap_dropped_total`): a recording never slows the media path.
pub const MEDIA_QUEUE: usize = 4096;

/// What the worker tells a recording, besides packets.
#[derive(Debug, Clone)]
pub enum TapMessage {
    /// Something about the room tap.
    Event(RoomTapEvent),
    /// One of its taps ended.
    Ended(TapId),
}

/// What a recording asks of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapControl {
    /// A keyframe on this tap (the sidecar is ready, or a segment is due).
    Keyframe(TapId),
    /// Its state changed: tell the room this state (`active`, `live`...).
    State(&'static str),
    /// It is over: end the room tap, telling the room this state.
    Untap(&'static str),
}

/// The worker's end: where it puts a recording's events and packets.
#[derive(Debug, Clone)]
pub struct TapSink {
    /// Events (never dropped; there are few).
    pub events: mpsc::UnboundedSender<TapMessage>,
    /// Packets (`try_send`: full means drop and count).
    pub media: mpsc::Sender<(TapId, TapPacket)>,
}

/// The recording's end.
#[derive(Debug)]
pub struct TapLink {
    /// Events.
    pub events: mpsc::UnboundedReceiver<TapMessage>,
    /// Packets.
    pub media: mpsc::Receiver<(TapId, TapPacket)>,
}

/// A connected sink and link.
pub fn tap_channel() -> (TapSink, TapLink) {
    let (etx, erx) = mpsc::unbounded_channel();
    let (mtx, mrx) = mpsc::channel(MEDIA_QUEUE);
    (
        TapSink {
            events: etx,
            media: mtx,
        },
        TapLink {
            events: erx,
            media: mrx,
        },
    )
}

/// What a start request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    /// Composite or per-track.
    pub mode: Mode,
    /// The composite's layout (`grid`).
    pub layout: String,
}

/// Why the recorder refused, with a stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The room already has a recording of this kind running.
    #[error("room {0} is already being recorded ({1})")]
    AlreadyRecording(String, String),
    /// No such recording.
    #[error("no recording {0}")]
    NotFound(String),
    /// The recording is not running (stop without start, or stopped already).
    #[error("recording {0} is not running (state {1})")]
    NotRecording(String, &'static str),
    /// Too many recordings run at once.
    #[error("{0} recordings are running, the most recording.max_concurrent allows")]
    LimitReached(usize),
    /// ffmpeg cannot be run.
    #[error("ffmpeg is missing: {0}")]
    FfmpegMissing(String),
    /// Storage is misconfigured or unreachable.
    #[error("storage refuses writes ({0}); recording not started")]
    Storage(String),
    /// The request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The spool holds as much as `recording.spool_max_bytes` allows (storage is not taking it).
    #[error(
        "the spool holds {0} bytes storage has not confirmed, the most recording.spool_max_bytes allows"
    )]
    SpoolFull(u64),
    /// The file asked for does not exist (yet).
    #[error("{0}")]
    NoFile(String),
}

impl RecorderError {
    /// The stable code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            RecorderError::AlreadyRecording(..) => "already_recording",
            RecorderError::NotFound(_) => "recording_not_found",
            RecorderError::NotRecording(..) => "not_recording",
            RecorderError::LimitReached(_) => "limit_reached",
            RecorderError::FfmpegMissing(_) => "ffmpeg_missing",
            RecorderError::Storage(_) => "storage_unavailable",
            RecorderError::BadRequest(_) => "bad_request",
            RecorderError::NoFile(_) => "file_not_found",
            RecorderError::SpoolFull(_) => "spool_full",
        }
    }
}

/// What every session shares.
pub(crate) struct Shared {
    pub config: RecordingConfig,
    pub store: Store,
    pub ffprobe: PathBuf,
    /// Bytes in the spool that storage has not confirmed, over every recording.
    pub spooled: AtomicU64,
    /// Tap packets that could not be handed to a sidecar's socket.
    pub feed_errors: Arc<AtomicU64>,
}

struct Entry {
    room: String,
    /// Set when its room tap has ended (its sidecars are no longer fed).
    untapped: Arc<std::sync::atomic::AtomicBool>,
    /// A stop was asked for (the session may not have seen it yet).
    stopping: bool,
    snapshot: watch::Receiver<Recording>,
    stop: mpsc::Sender<StopReason>,
    task: tokio::task::JoinHandle<()>,
}

/// Refuses a recording of `room` in `mode` when one runs already, or too many run.
fn check_room(
    entries: &HashMap<String, Entry>,
    room: &str,
    mode: Mode,
    max: usize,
) -> Result<(), RecorderError> {
    let running: Vec<Recording> = entries
        .values()
        .filter(|e| !e.stopping)
        .map(|e| e.snapshot.borrow().clone())
        .filter(|r| matches!(r.state, State::Starting | State::Active))
        .collect();
    if let Some(r) = running.iter().find(|r| r.room == room && r.mode == mode) {
        return Err(RecorderError::AlreadyRecording(
            room.to_string(),
            r.id.clone(),
        ));
    }
    if running.len() >= max {
        return Err(RecorderError::LimitReached(running.len()));
    }
    Ok(())
}

/// The recording service.
pub struct Recorder {
    shared: Arc<Shared>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("store", &self.shared.store.describe())
            .finish()
    }
}

fn now_ms() -> u64 {
    crate::clock::unix_ms(SystemTime::now())
}

impl Recorder {
    /// Builds the recorder: the store (a misconfigured one is an error here), the spool.
    pub fn new(config: RecordingConfig) -> Result<Self, RecorderError> {
        let store = Store::new(&config.storage).map_err(|e| RecorderError::Storage(e.message))?;
        let ffprobe = ffprobe_of(&config.ffmpeg);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                store,
                ffprobe,
                spooled: AtomicU64::new(0),
                feed_errors: Arc::new(AtomicU64::new(0)),
            }),
            entries: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// How many recordings run (not yet complete or failed), the bytes spooled that storage has
    /// not confirmed, and the tap packets that could not be handed to a sidecar.
    pub fn gauges(&self) -> (usize, u64, u64) {
        let running = self
            .lock()
            .values()
            .filter(|e| !e.snapshot.borrow().state.is_final())
            .count();
        let load = |a: &AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        (
            running,
            load(&self.shared.spooled),
            load(&self.shared.feed_errors),
        )
    }

    /// The store, for logs.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Finishes every recording a previous run left in the spool (in the background).
    pub fn resume_spool(&self) -> usize {
        let Ok(dirs) = std::fs::read_dir(&self.shared.config.spool_dir) else {
            return 0;
        };
        let mut n = 0;
        for dir in dirs.flatten() {
            let state = dir.path().join("state.json");
            let Ok(text) = std::fs::read(&state) else {
                continue;
            };
            let rec: Recording = match serde_json::from_slice(&text) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(path = %state.display(), error = %e, "unreadable spooled recording left alone");
                    continue;
                }
            };
            if self.lock().contains_key(&rec.id) {
                continue;
            }
            if self.spawn(rec, None, None, false).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Checks that a recording of `room` can start: limits, ffmpeg, storage. Returns its
    /// record, not yet running.
    pub async fn prepare(
        &self,
        id: String,
        room: &str,
        req: StartRequest,
    ) -> Result<Recording, RecorderError> {
        if req.layout != "grid" {
            return Err(RecorderError::BadRequest(format!(
                "unknown layout {:?}; layouts: grid",
                req.layout
            )));
        }
        self.check_room(room, req.mode)?;
        let spooled = self
            .shared
            .spooled
            .load(std::sync::atomic::Ordering::Relaxed);
        if spooled >= self.shared.config.spool_max_bytes {
            return Err(RecorderError::SpoolFull(spooled));
        }
        check_ffmpeg(&self.shared.config.ffmpeg)
            .await
            .map_err(RecorderError::FfmpegMissing)?;
        tokio::time::timeout(Duration::from_secs(10), self.shared.store.probe())
            .await
            .map_err(|_| {
                RecorderError::Storage(format!(
                    "{}: no answer in 10 s",
                    self.shared.store.describe()
                ))
            })?
            .map_err(|e| {
                RecorderError::Storage(format!("{}: {e}", self.shared.store.describe()))
            })?;
        Ok(Recording {
            key_prefix: self.shared.store.key_prefix(room, &id),
            id,
            room: room.to_string(),
            mode: req.mode,
            layout: req.layout,
            state: State::Starting,
            reason: None,
            storage_error: None,
            started_at_ms: now_ms(),
            ended_at_ms: None,
            interrupted: false,
            parts: Vec::new(),
            files: Vec::new(),
        })
    }

    fn check_room(&self, room: &str, mode: Mode) -> Result<(), RecorderError> {
        check_room(&self.lock(), room, mode, self.shared.config.max_concurrent)
    }

    /// Starts a prepared recording, fed through `link`; `control` reaches its room's worker.
    pub fn begin(
        &self,
        rec: Recording,
        link: TapLink,
        control: mpsc::UnboundedSender<TapControl>,
    ) -> Result<Recording, RecorderError> {
        tracing::info!(recording = %rec.id, room = %rec.room, mode = ?rec.mode, store = %self.shared.store.describe(), "recording started");
        self.spawn(rec.clone(), Some(link), Some(control), true)?;
        Ok(rec)
    }

    /// Runs a session for `rec`; with `check`, the room's limits are checked under the same lock
    /// that registers it, so two starts at once cannot both pass.
    fn spawn(
        &self,
        rec: Recording,
        link: Option<TapLink>,
        control: Option<mpsc::UnboundedSender<TapControl>>,
        check: bool,
    ) -> Result<(), RecorderError> {
        let mut entries = self.lock();
        if check {
            check_room(
                &entries,
                &rec.room,
                rec.mode,
                self.shared.config.max_concurrent,
            )?;
        }
        let (snap_tx, snapshot) = watch::channel(rec.clone());
        let (stop, stop_rx) = mpsc::channel(4);
        let id = rec.id.clone();
        let room = rec.room.clone();
        let session = Session::new(rec, self.shared.clone(), snap_tx, control);
        let untapped = session.untapped_flag();
        let registry = self.entries.clone();
        let key = id.clone();
        // A finished recording leaves the map: from then on it is read from storage.
        let task = tokio::spawn(async move {
            session.run(link, stop_rx).await;
            registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        });
        entries.insert(
            id,
            Entry {
                room,
                stopping: false,
                untapped,
                snapshot,
                stop,
                task,
            },
        );
        Ok(())
    }

    /// Stops a running recording; returns it as it is now (`stopping`).
    pub async fn stop(&self, id: &str) -> Result<Recording, RecorderError> {
        let (stop, rec) = {
            let mut entries = self.lock();
            let e = entries
                .get_mut(id)
                .ok_or_else(|| RecorderError::NotFound(id.to_string()))?;
            let rec = e.snapshot.borrow().clone();
            if e.stopping || rec.state.is_final() || rec.state == State::Stopping {
                let state = if e.stopping && !rec.state.is_final() {
                    "stopping"
                } else {
                    rec.state.as_str()
                };
                return Err(RecorderError::NotRecording(id.to_string(), state));
            }
            e.stopping = true;
            (e.stop.clone(), rec)
        };
        let _ = stop.send(StopReason::Requested).await;
        let mut r = rec;
        r.state = State::Stopping;
        Ok(r)
    }

    /// A recording this process runs or ran.
    pub fn get(&self, id: &str) -> Option<Recording> {
        self.lock().get(id).map(|e| e.snapshot.borrow().clone())
    }

    /// Waits until recording `id` changes (for tests and tools), up to `limit`.
    pub async fn changed(&self, id: &str, limit: Duration) -> Option<Recording> {
        let mut rx = self.lock().get(id)?.snapshot.clone();
        let _ = tokio::time::timeout(limit, rx.changed()).await;
        let r = rx.borrow().clone();
        Some(r)
    }

    /// A recording, from this process or from storage (an earlier run's manifest).
    pub async fn find(&self, id: &str) -> Result<Recording, RecorderError> {
        if let Some(r) = self.get(id) {
            return Ok(r);
        }
        let found: Option<Recording> = self
            .shared
            .store
            .find_manifest(id)
            .await
            .map_err(|e| RecorderError::Storage(e.message))?;
        found
            .filter(|r| r.id == id)
            .ok_or_else(|| RecorderError::NotFound(id.to_string()))
    }

    /// Every recording of `room`: running ones and those in storage, newest first.
    pub async fn list(&self, room: &str) -> Result<Vec<Recording>, RecorderError> {
        let mut out: Vec<Recording> = self
            .lock()
            .values()
            .filter(|e| e.room == room)
            .map(|e| e.snapshot.borrow().clone())
            .collect();
        let running: Vec<String> = out.iter().map(|r| r.id.clone()).collect();
        let stored: Vec<Recording> = self
            .shared
            .store
            .manifests_of(room, |id| running.iter().any(|r| r == id))
            .await;
        out.extend(stored);
        out.sort_by_key(|r| std::cmp::Reverse(r.started_at_ms));
        Ok(out)
    }

    /// The recordings of `room` that record now (starting or active, no stop asked).
    pub fn running_in(&self, room: &str) -> Vec<Recording> {
        self.lock()
            .values()
            .filter(|e| e.room == room && !e.stopping)
            .map(|e| e.snapshot.borrow().clone())
            .filter(|r| matches!(r.state, State::Starting | State::Active))
            .collect()
    }

    /// Where to download `stream` of `rec` (default: the composite, or its only file).
    pub async fn download(
        &self,
        rec: &Recording,
        stream: Option<&str>,
    ) -> Result<Download, RecorderError> {
        let file = match stream {
            Some(s) => rec.files.iter().find(|f| f.stream == s),
            None if rec.files.len() == 1 => rec.files.first(),
            None => rec
                .files
                .iter()
                .find(|f| f.stream == crate::args::COMPOSITE),
        };
        let file = file.filter(|f| f.uploaded).ok_or_else(|| {
            RecorderError::NoFile(format!(
                "recording {} has no such file in storage yet",
                rec.id
            ))
        })?;
        self.shared
            .store
            .download(&file.key)
            .await
            .map_err(|e| RecorderError::Storage(e.message))
    }

    /// Tells every recording that tern is shutting down (each stops, marked `interrupted`) and
    /// waits, up to `limit`, until their sidecars have finished and their room taps ended. Call
    /// it before the workers end the rooms, so the sidecars are fed while they finish.
    pub async fn begin_shutdown(&self, limit: Duration) {
        let flags: Vec<Arc<std::sync::atomic::AtomicBool>> = self
            .lock()
            .values()
            .map(|e| {
                let _ = e.stop.try_send(StopReason::Interrupted);
                e.untapped.clone()
            })
            .collect();
        let deadline = tokio::time::Instant::now() + limit;
        while flags
            .iter()
            .any(|f| !f.load(std::sync::atomic::Ordering::Relaxed))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `limit` for the recordings to reach storage, then drops them; what storage
    /// has not taken stays in the spool for the next start.
    pub async fn finish_shutdown(&self, limit: Duration) {
        let tasks: Vec<tokio::task::AbortHandle> = self
            .lock()
            .values()
            .map(|e| e.task.abort_handle())
            .collect();
        let deadline = tokio::time::Instant::now() + limit;
        for task in &tasks {
            while !task.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for task in tasks {
            task.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned map still holds valid entries: a panic elsewhere must not stop recording.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
