//! `[broadcast]`: the ladder, the DVR window, the spool and storage. Documented in
//! docs/configuration.md and docs/broadcast.md.

use std::path::PathBuf;

use serde::Deserialize;
use tern_recording::StorageConfig;

/// `[broadcast]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BroadcastConfig {
    /// Segment length in seconds, and the GOP (every segment starts with a keyframe). Default 2.
    pub segment_secs: u32,
    /// The DVR window in seconds: viewers can seek back this far, and older segments are
    /// deleted. 0 keeps the whole event (and the finished broadcast is a full VOD). Default 7200.
    pub dvr_window_secs: u64,
    /// The program's height: 1080 adds a 1080p rung to 720p/360p/180p. Default 720.
    pub program_height: u32,
    /// Broadcasts running at once; one more is refused with `limit_reached`. Default 2.
    pub max_concurrent: usize,
    /// A broadcast of a room everyone left stops after this many seconds. Default 30.
    pub empty_room_grace_secs: u64,
    /// Where the ladder sidecar writes, and where tern serves live HLS from. Default
    /// `tern-data/broadcasts`.
    pub spool_dir: PathBuf,
    /// Seconds a sidecar has to start encoding before it counts as failed. Default 15.
    pub sidecar_start_timeout_secs: u64,
    /// Sidecar runs in a row that fail to start before the broadcast fails. Default 4.
    pub sidecar_max_failures: u32,
    /// `[broadcast.storage]`: where segments and playlists are uploaded. Default: the
    /// recordings' storage, under the key prefix `broadcasts`.
    pub storage: Option<StorageConfig>,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            segment_secs: 2,
            dvr_window_secs: 7200,
            program_height: 720,
            max_concurrent: 2,
            empty_room_grace_secs: 30,
            spool_dir: PathBuf::from("tern-data/broadcasts"),
            sidecar_start_timeout_secs: 15,
            sidecar_max_failures: 4,
            storage: None,
        }
    }
}

impl BroadcastConfig {
    /// The storage broadcasts use, given the recordings'.
    pub fn storage_or(&self, recording: &StorageConfig) -> StorageConfig {
        self.storage.clone().unwrap_or_else(|| StorageConfig {
            prefix: "broadcasts".into(),
            ..recording.clone()
        })
    }
}
