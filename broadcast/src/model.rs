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
    /// The program's layout (`grid`).
    pub layout: String,
    /// The master playlist, root-relative: `/hls/<id>/master.m3u8`.
    pub hls_url: String,
    /// The ladder.
    pub rungs: Vec<RungView>,
    /// The DVR window in seconds, or `null` for the whole event.
    pub dvr_window_secs: Option<u64>,
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
    /// The storage key prefix of its playlists and segments.
    pub key_prefix: String,
}
