//! tern's live broadcasts: a room's program feed transcoded into an H.264 ladder by a
//! supervised ffmpeg, published as HLS with a DVR window by tern itself and to object storage.
//!
//! The pure core: the [`ladder`] of renditions, the sidecar's command line ([`args`]), ffmpeg's
//! playlists as tern reads them ([`variant`]), the output that keeps the rungs aligned across
//! sidecar restarts ([`hls`]) and the playlists players see ([`playlist`]). The `io` feature adds
//! the [`Broadcaster`] service the server uses; its sidecars run on recording's feed.

pub mod args;
pub mod config;
pub mod hls;
pub mod ladder;
pub mod model;
pub mod playlist;
pub mod rtmp;
pub mod variant;

#[cfg(feature = "io")]
mod egress;
#[cfg(feature = "io")]
mod resume;
#[cfg(feature = "io")]
mod service;
#[cfg(feature = "io")]
mod session;

pub use config::BroadcastConfig;
pub use model::{Broadcast, BroadcastState};
#[cfg(feature = "io")]
pub use service::{BroadcastError, BroadcastRequest, Broadcaster, HlsFile};
