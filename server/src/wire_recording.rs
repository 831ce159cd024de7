//! Recordings on the wire (docs/recording.md): the REST view of a recording, and the status
//! participants see in `joined` and `recording` messages. Converted from the recorder's record
//! field by field, so a new field there does not change the API until someone says so.

use serde::{Deserialize, Serialize};
use tern_recording::Recording;
use tern_recording::clock::rfc3339_ms as rfc3339;
use tern_recording::manifest::{FinalFile, Part, PartEnd};

/// A recording as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingView {
    /// `RC_...`.
    pub id: String,
    /// The room.
    pub room: String,
    /// `starting`, `active`, `stopping`, `complete` or `failed`.
    pub state: String,
    /// Why it failed, or why it stopped by itself (`room empty`, `room closed`).
    pub reason: Option<String>,
    /// `composite` or `per_track`.
    pub mode: String,
    /// The composite's layout.
    pub layout: String,
    /// When it was started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// From its first media to its end (or to now), seconds.
    pub duration_secs: f64,
    /// Bytes written: segments and final files.
    pub bytes: u64,
    /// tern stopped or died while it ran; it was finished from the spool.
    pub interrupted: bool,
    /// The last storage error while uploads are retried (what waits is in the spool).
    pub storage_error: Option<String>,
    /// The storage key of its manifest (JSON beside the media).
    pub manifest_key: String,
    /// Its parts: one per sidecar run.
    pub parts: Vec<PartView>,
    /// Its final files.
    pub files: Vec<FileView>,
    /// Where to download the composite (or the only file) once it has ended: presigned for S3,
    /// GCS and Azure, or tern's own URL (same admin token) for the local store.
    pub download_url: Option<String>,
}

/// One part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartView {
    /// 0, 1, 2...
    pub index: u32,
    /// When its media started.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Why it ended: `layout_changed`, `sidecar_exited`, `stopped`, `interrupted`.
    pub end: Option<String>,
    /// How long it plays, seconds.
    pub duration_secs: f64,
    /// Its segments' storage keys, in order.
    pub segments: Vec<String>,
    /// Its segments' bytes.
    pub bytes: u64,
}

/// One final file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileView {
    /// `composite`, or a track id.
    pub stream: String,
    /// The track's publisher, for a per-track file.
    pub identity: Option<String>,
    /// Its storage key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// How long it plays, seconds.
    pub duration_secs: f64,
    /// Where to download it, once in storage.
    pub download_url: Option<String>,
}

/// A recording's status as participants see it: `{"id","state"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// `RC_...`.
    pub id: String,
    /// Its state.
    pub state: String,
}

impl RecordingView {
    /// The view of `rec`, with each final file's download URL (in `rec.files` order).
    pub fn new(rec: &Recording, urls: Vec<Option<String>>) -> Self {
        let now = unix_ms_now();
        let Recording {
            id,
            room,
            mode,
            layout,
            state,
            reason,
            storage_error,
            started_at_ms,
            ended_at_ms,
            interrupted,
            key_prefix: _,
            parts,
            files,
        } = rec;
        let files: Vec<FileView> = files
            .iter()
            .zip(urls.into_iter().chain(std::iter::repeat(None)))
            .map(|(f, url)| file_view(f, url))
            .collect();
        let main = files
            .iter()
            .find(|f| f.stream == "composite")
            .or(if files.len() == 1 {
                files.first()
            } else {
                None
            });
        // Once the recording has ended (complete, or failed after recording something).
        let download_url = match state {
            tern_recording::State::Complete | tern_recording::State::Failed => {
                main.and_then(|f| f.download_url.clone())
            }
            _ => None,
        };
        Self {
            id: id.clone(),
            room: room.clone(),
            state: state.as_str().into(),
            reason: reason.clone(),
            mode: match mode {
                tern_recording::Mode::Composite => "composite",
                tern_recording::Mode::PerTrack => "per_track",
            }
            .into(),
            layout: layout.clone(),
            started_at: rfc3339(*started_at_ms),
            ended_at: ended_at_ms.map(rfc3339),
            duration_secs: (rec.duration_secs(now) * 1000.0).round() / 1000.0,
            bytes: rec.bytes(),
            interrupted: *interrupted,
            storage_error: storage_error.clone(),
            manifest_key: rec.manifest_key(),
            parts: parts.iter().map(part_view).collect(),
            files,
            download_url,
        }
    }
}

fn part_view(p: &Part) -> PartView {
    let Part {
        index,
        started_at_ms,
        ended_at_ms,
        end,
        pid: _,
        streams: _,
        segments,
    } = p;
    PartView {
        index: *index,
        started_at: (*started_at_ms > 0).then(|| rfc3339(*started_at_ms)),
        ended_at: ended_at_ms.map(rfc3339),
        end: end.map(|e| {
            match e {
                PartEnd::LayoutChanged => "layout_changed",
                PartEnd::SidecarExited => "sidecar_exited",
                PartEnd::Stopped => "stopped",
                PartEnd::Interrupted => "interrupted",
            }
            .into()
        }),
        duration_secs: (p.duration_secs() * 1000.0).round() / 1000.0,
        segments: segments
            .iter()
            .filter(|s| !s.lost)
            .map(|s| s.key.clone())
            .collect(),
        bytes: segments.iter().map(|s| s.bytes).sum(),
    }
}

fn file_view(f: &FinalFile, download_url: Option<String>) -> FileView {
    let FinalFile {
        stream,
        key,
        bytes,
        sha256,
        duration_secs,
        started_at_ms: _,
        identity,
        uploaded: _,
        lost: _,
    } = f;
    FileView {
        stream: stream.clone(),
        identity: identity.clone(),
        key: key.clone(),
        bytes: *bytes,
        sha256: sha256.clone(),
        duration_secs: (duration_secs * 1000.0).round() / 1000.0,
        download_url,
    }
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
