//! tern's live broadcasts (work in progress, issue 12): a room's program feed transcoded into an
//! H.264 ladder by a supervised ffmpeg, published as HLS with a DVR window by tern itself and to
//! object storage, and pushed to RTMP.
//!
//! This first part is the pure core of the HLS output: the [`ladder`] of renditions and the
//! playlists tern writes itself ([`playlist`]), so that a sidecar restart becomes a discontinuity
//! instead of a broken stream, and the DVR window and storage stay in step.

pub mod ladder;
pub mod playlist;
