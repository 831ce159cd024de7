//! A recording as tern keeps it: its state, its parts (one per sidecar run), their segments and
//! the final files. The same record is the manifest stored beside the media (`manifest.json`),
//! and, with the spool's upload flags, the `state.json` a restarted tern resumes from.

use serde::{Deserialize, Serialize};

use crate::args::Mode;

/// Where a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Accepted; the sidecar is not recording yet.
    Starting,
    /// Recording.
    Active,
    /// Stopped; the last segments and the final files are being written and uploaded.
    Stopping,
    /// Everything is in storage.
    Complete,
    /// It ended without a usable recording, or could not go on; `reason` says why. What was
    /// recorded before is still uploaded.
    Failed,
}

impl State {
    /// The word the API and participants see.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Active => "active",
            State::Stopping => "stopping",
            State::Complete => "complete",
            State::Failed => "failed",
        }
    }

    /// True once nothing more will be recorded.
    pub fn is_final(self) -> bool {
        matches!(self, State::Complete | State::Failed)
    }
}

/// Why a part ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartEnd {
    /// Someone joined, left, published or unpublished: the next part has the new layout.
    LayoutChanged,
    /// The sidecar exited on its own (crashed); the next part goes on.
    SidecarExited,
    /// The recording was stopped.
    Stopped,
    /// tern itself stopped or died while it ran.
    Interrupted,
}

/// One stream of a part: the composite, or one track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartStream {
    /// Its name in file names (`composite`, or the track id).
    pub name: String,
    /// The track, for a per-track stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// Its publisher's identity, for a per-track stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `audio` or `video`, for a per-track stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The stream it belongs to.
    pub stream: String,
    /// The file's name in the part's directory.
    pub file: String,
    /// Its storage key.
    pub key: String,
    /// Where it starts in its part, in seconds.
    pub start_secs: f64,
    /// How long it plays.
    pub duration_secs: f64,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// True once storage confirmed it.
    pub uploaded: bool,
    /// Its file was gone or unreadable when its turn to upload came: it is not in storage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
}

/// One sidecar run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// 0, 1, 2...
    pub index: u32,
    /// Wall time of its first media, in Unix milliseconds (0 until media came).
    pub started_at_ms: u64,
    /// Wall time it ended, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<PartEnd>,
    /// Its sidecar's process id while it runs (a restarted tern stops an orphan first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its streams.
    pub streams: Vec<PartStream>,
    /// Its segments, in order.
    pub segments: Vec<Segment>,
}

impl Part {
    /// How long its segments play.
    pub fn duration_secs(&self) -> f64 {
        let mut per_stream: Vec<(&str, f64)> = Vec::new();
        for s in &self.segments {
            match per_stream.iter_mut().find(|(n, _)| *n == s.stream) {
                Some((_, d)) => *d += s.duration_secs,
                None => per_stream.push((&s.stream, s.duration_secs)),
            }
        }
        per_stream.iter().map(|(_, d)| *d).fold(0.0, f64::max)
    }
}

/// A final file: a stream's segments joined into one playable file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalFile {
    /// The stream (`composite`, or a track id).
    pub stream: String,
    /// Its storage key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// How long it plays.
    pub duration_secs: f64,
    /// Wall time where it starts, in Unix milliseconds.
    pub started_at_ms: u64,
    /// The track's publisher, for a per-track file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// True once storage confirmed it.
    pub uploaded: bool,
    /// Its file was gone or unreadable when its turn to upload came.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
}

/// A recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// `RC_` and random characters.
    pub id: String,
    /// The room.
    pub room: String,
    /// Composite or per-track.
    pub mode: Mode,
    /// The composite's layout (`grid`).
    pub layout: String,
    /// Where it is.
    pub state: State,
    /// Why it failed, or what went wrong on the way (for example a storage outage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last storage error, while uploads are being retried (cleared by the next success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_error: Option<String>,
    /// When it was started, Unix milliseconds.
    pub started_at_ms: u64,
    /// When it ended, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// True when tern stopped or died while it ran (it was finished on the next start).
    #[serde(default)]
    pub interrupted: bool,
    /// The storage key prefix of everything it wrote.
    pub key_prefix: String,
    /// Its parts.
    pub parts: Vec<Part>,
    /// Its final files, once stopped.
    pub files: Vec<FinalFile>,
}

impl Recording {
    /// Bytes written, segments and final files.
    pub fn bytes(&self) -> u64 {
        let segments: u64 = self
            .parts
            .iter()
            .flat_map(|p| &p.segments)
            .map(|s| s.bytes)
            .sum();
        segments + self.files.iter().map(|f| f.bytes).sum::<u64>()
    }

    /// From its first media to its end (or to `now_ms` while it runs), in seconds.
    pub fn duration_secs(&self, now_ms: u64) -> f64 {
        let Some(first) = self.parts.iter().map(|p| p.started_at_ms).find(|t| *t > 0) else {
            return 0.0;
        };
        let end = self.ended_at_ms.unwrap_or(now_ms);
        end.saturating_sub(first) as f64 / 1000.0
    }

    /// Bytes on local disk that storage has not confirmed.
    pub fn spooled_bytes(&self) -> u64 {
        let segments: u64 = self
            .parts
            .iter()
            .flat_map(|p| &p.segments)
            .filter(|s| !s.uploaded && !s.lost)
            .map(|s| s.bytes)
            .sum();
        let files = self.files.iter().filter(|f| !f.uploaded && !f.lost);
        segments + files.map(|f| f.bytes).sum::<u64>()
    }

    /// The storage key of its manifest.
    pub fn manifest_key(&self) -> String {
        format!("{}/manifest.json", self.key_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_json_with_snake_case_words() {
        let r = Recording {
            id: "RC_x".into(),
            room: "demo".into(),
            mode: Mode::PerTrack,
            layout: "grid".into(),
            state: State::Active,
            reason: None,
            storage_error: None,
            started_at_ms: 1,
            ended_at_ms: None,
            interrupted: false,
            key_prefix: "recordings/demo/RC_x".into(),
            parts: vec![Part {
                index: 0,
                started_at_ms: 1000,
                ended_at_ms: Some(5000),
                end: Some(PartEnd::LayoutChanged),
                pid: None,
                streams: vec![],
                segments: vec![],
            }],
            files: vec![],
        };
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["mode"], "per_track");
        assert_eq!(json["state"], "active");
        assert_eq!(json["parts"][0]["end"], "layout_changed");
        let back: Recording = serde_json::from_value(json).expect("parses");
        assert_eq!(back, r);
        assert_eq!(r.duration_secs(3500), 2.5);
    }
}
