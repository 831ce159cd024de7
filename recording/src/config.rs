//! `[recording]`: the sidecar, the spool and storage. Documented in docs/configuration.md and
//! docs/recording.md.

use std::path::PathBuf;

use serde::Deserialize;

/// `[recording]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// The ffmpeg binary: a name looked up on `PATH`, or a path. Default `ffmpeg`.
    pub ffmpeg: PathBuf,
    /// Where recordings are written, and kept until storage confirms them (the spool). A
    /// restarted tern finishes whatever it finds here. Default `tern-data/spool`.
    pub spool_dir: PathBuf,
    /// Bytes the spool may hold that storage has not confirmed, over all recordings. Past it,
    /// running recordings stop with state `failed` (reason `spool_full`); what they hold is
    /// still uploaded. Default 10 GiB.
    pub spool_max_bytes: u64,
    /// Recordings running at once; one more is refused with `limit_reached`. Default 4.
    pub max_concurrent: usize,
    /// A recording of a room everyone left stops after this many seconds, unless someone comes
    /// back. Default 30.
    pub empty_room_grace_secs: u64,
    /// Target length of a segment, in seconds: a sidecar crash loses at most about this much.
    /// Default 4.
    pub segment_secs: u32,
    /// Seconds a sidecar has to start recording before it counts as failed. Default 15.
    pub sidecar_start_timeout_secs: u64,
    /// Sidecar runs in a row that fail to start before the recording fails. Default 4.
    pub sidecar_max_failures: u32,
    /// `[recording.storage]`: where recordings go.
    pub storage: StorageConfig,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            spool_dir: PathBuf::from("tern-data/spool"),
            spool_max_bytes: 10 << 30,
            max_concurrent: 4,
            empty_room_grace_secs: 30,
            segment_secs: 4,
            sidecar_start_timeout_secs: 15,
            sidecar_max_failures: 4,
            storage: StorageConfig::default(),
        }
    }
}

/// Which object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A local directory (`local_dir`).
    #[default]
    Local,
    /// Amazon S3 or any S3-compatible store: `bucket`, optional `endpoint` and `region`;
    /// credentials from the standard `AWS_*` environment variables.
    S3,
    /// Google Cloud Storage: `bucket`; credentials from `GOOGLE_*` variables.
    Gcs,
    /// Azure Blob Storage: `bucket` is the container; account and key from `AZURE_*` variables.
    Azure,
}

/// `[recording.storage]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` (default), `s3`, `gcs` or `azure`.
    pub backend: Backend,
    /// The directory of the `local` backend. Default `tern-data/recordings`.
    pub local_dir: PathBuf,
    /// The bucket (container for Azure).
    pub bucket: String,
    /// An S3-compatible endpoint URL (MinIO, SeaweedFS, R2...); path-style requests. Default:
    /// `AWS_ENDPOINT_URL`, else AWS itself.
    pub endpoint: Option<String>,
    /// The S3 region. Default: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The S3 access key id. Default: `AWS_ACCESS_KEY_ID` (prefer the environment: keys in
    /// a config file are easier to leak).
    pub access_key_id: Option<String>,
    /// The S3 secret access key. Default: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Key prefix of every object. Default `recordings`.
    pub prefix: String,
    /// Lifetime of a presigned download URL, in seconds. Default 3600.
    pub url_ttl_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            local_dir: PathBuf::from("tern-data/recordings"),
            bucket: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            prefix: "recordings".into(),
            url_ttl_secs: 3600,
        }
    }
}
