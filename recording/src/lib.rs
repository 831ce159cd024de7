//! tern's recordings. A recording taps every track of a room (the SFU's room taps), feeds them
//! over loopback RTP to one supervised `ffmpeg` sidecar, and streams the segments it writes to
//! object storage while the meeting runs, spooling on local disk while storage is down.
//!
//! The pure pieces (the sidecar's SDP and command line, the grid, the RTP feed, the manifest,
//! segment lists, joining parts) have no IO and are unit-tested. The `io` feature adds the
//! shell: the sidecar supervisor, the uploader and the [`Recorder`] service the server uses.

pub mod args;
pub mod assemble;
pub mod clock;
pub mod config;
#[cfg(feature = "io")]
mod finals;
pub mod layout;
pub mod manifest;
pub mod rtp;
pub mod sdp;
pub mod segments;
pub mod switch;

#[cfg(feature = "io")]
pub mod feed;
#[cfg(feature = "io")]
mod service;
#[cfg(feature = "io")]
mod session;
#[cfg(feature = "io")]
pub mod sidecar;
#[cfg(feature = "io")]
pub mod store;
#[cfg(feature = "io")]
mod uploader;

pub use args::Mode;
pub use config::{Backend, RecordingConfig, StorageConfig};
pub use manifest::{Recording, State};
#[cfg(feature = "io")]
pub use service::{
    MEDIA_QUEUE, Recorder, RecorderError, StartRequest, TapControl, TapLink, TapMessage, TapSink,
    tap_channel,
};
#[cfg(feature = "io")]
pub use store::Download;
