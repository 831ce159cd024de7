//! A broadcast as the API shows it and storage keeps it (`manifest.json` beside its playlists).

use serde::{Deserialize, Serialize};

/// Where a broadcast is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BroadcastState {
    /// Waiting for its first segments.
    Starting,
    /// Segments are being published.
    Live,
    /// Stopped: the last segments and the final playlists are being written and uploaded.
    Stopping,
    /// Over: the playlists end with `EXT-X-ENDLIST` and play as a VOD.
    Ended,
    /// Its sidecar kept failing (`reason` says why); what was published stays playable.
    Failed,
}

impl BroadcastState {
    /// The state's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Live => "live",
            Self::Stopping => "stopping",
            Self::Ended => "ended",
            Self::Failed => "failed",
        }
    }

    /// It will not change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ended | Self::Failed)
    }
}

/// Where an RTMP push is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// Waiting for the broadcast's first segments.
    Waiting,
    /// Its ffmpeg runs and has not sent media yet.
    Connecting,
    /// Media goes out.
    Live,
    /// It failed (`error` says why) and is tried again after a pause that doubles up to 30 s.
    Retrying,
    /// Removed, or the broadcast ended.
    Stopped,
}

/// An RTMP target of a broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtmpView {
    /// Its id in the broadcast (`RT_1`...).
    pub id: String,
    /// The URL with the stream key (and any user info) replaced by `****`.
    pub url: String,
    /// Where it is.
    pub state: PushState,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Attempts so far (1 once it first ran).
    pub attempts: u32,
    /// Since when media has been going out, while `live` (RFC 3339).
    pub live_since: Option<String>,
}

/// One rendition, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RungView {
    /// Its name (the directory of its playlist), for example `720p`.
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The `BANDWIDTH` the master playlist announces, bit/s.
    pub bandwidth: u64,
}

/// A broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Its id (`BC_...`).
    pub id: String,
    /// The room.
    pub room: String,
    /// Where it is.
    pub state: BroadcastState,
    /// The program's layout: `speaker` or `grid`.
    pub layout: String,
    /// The master playlist, root-relative: `/hls/<id>/master.m3u8`.
    pub hls_url: String,
    /// The ladder.
    pub rungs: Vec<RungView>,
    /// The DVR window in seconds, or `null` for the whole event.
    pub dvr_window_secs: Option<u64>,
    /// The segment length (the playlists' target duration), seconds.
    pub segment_secs: u32,
    /// When it was started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    #[serde(default)]
    pub ended_at: Option<String>,
    /// Why it failed, or the last sidecar failure while it retries.
    #[serde(default)]
    pub reason: Option<String>,
    /// Segments published per rung.
    #[serde(default)]
    pub segments: u64,
    /// Seconds the playlists cover (the DVR depth, or the whole event).
    #[serde(default)]
    pub duration_secs: f64,
    /// The sidecar restarted this many times (each is a discontinuity).
    #[serde(default)]
    pub restarts: u32,
    /// The last storage error, while uploads are retried.
    #[serde(default)]
    pub storage_error: Option<String>,
    /// Its RTMP targets.
    #[serde(default)]
    pub rtmp: Vec<RtmpView>,
    /// The storage key prefix of its playlists and segments.
    pub key_prefix: String,
}

/// Broadcast ids are `BC_` and URL-safe characters.
pub fn valid_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with("BC_")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An HLS path: at most two plain components, known extensions.
pub fn valid_hls_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let plain = |p: &&str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    parts.len() <= 2
        && parts.iter().all(plain)
        && [".m3u8", ".m4s", ".mp4"].iter().any(|e| path.ends_with(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_hls_paths_are_served() {
        assert!(valid_hls_path("master.m3u8"));
        assert!(valid_hls_path("720p/seg-000001.m4s"));
        assert!(valid_hls_path("720p/init-000.mp4"));
        assert!(!valid_hls_path("../state.json"));
        assert!(!valid_hls_path("720p/../../x.m3u8"));
        assert!(!valid_hls_path("a/b/c.m4s"));
        assert!(!valid_hls_path("manifest.json"));
        assert!(!valid_hls_path("720p/.m4s"));
        assert!(valid_id("BC_abc-1"));
        assert!(!valid_id("../BC"));
    }
}
