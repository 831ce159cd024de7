//! tern's selective forwarding unit: a sans-IO core on [str0m] in RTP mode.
//!
//! One [`Sfu`] serves one worker thread: its rooms, their participants (each with a publisher and a
//! subscriber `Rtc`), tracks and subscriptions. The shell feeds it datagrams, commands and time,
//! and carries out what [`Sfu::poll_output`] returns:
//!
//! ```text
//! handle_datagram(now, from, bytes) | handle_command(now, cmd) -> Reply | handle_timeout(now)
//!     then loop { match poll_output() { Transmit | Notice | RoomClosed => act, Timeout(t) => sleep until t } }
//! ```
//!
//! The crate has no sockets, no threads, no locks and never reads the clock.

mod adapt;
mod allocator;
mod config;
mod control;
mod data_channel;
pub mod data_message;
mod demux;
mod dynacast;
mod error;
mod forward;
mod ids;
mod keyframe;
mod negotiate;
mod participant;
mod picture_id;
mod publish;
mod quality;
mod red;
mod resume;
mod rewrite;
mod room;
mod room_tap;
mod sdp;
mod selector;
mod sfu;
mod signal;
mod speaker;
mod stall;
mod stats;
mod subscribe;
mod subscription;
mod tap;
mod throttle;
mod track;

#[cfg(feature = "testkit")]
pub mod testkit;

// The public interface is:
pub use allocator::{Grant, VideoDemand, allocate};
pub use config::SfuConfig;
pub use data_message::{DataMessage, Payload};
pub use demux::{DatagramKind, classify, stun_local_ufrag};
pub use error::{Fault, SfuError};
pub use ids::{ParticipantId, RoomTapId, TapId, TrackId};
pub use keyframe::{VideoCodec, is_keyframe, vp8_keyframe_size};
pub use picture_id::PictureIdRewriter;
pub use rewrite::{FIRST_SEQ, RtpRewriter};
pub use room_tap::{RoomTapEvent, RoomTapKind, RoomTapLabel};
pub use selector::{LayerRequest, LayerSelector, LayerView, Verdict, target_layer, wanted_layer};
pub use sfu::{Output, Sfu};
pub use signal::{
    Command, LayerReport, LeaveReason, Notice, ParticipantDetail, ParticipantInfo, PcRole,
    Permissions, RemoteCandidate, Reply, RoomInfo, SourceSet, TrackHint, TrackInfo, TrackKind,
    TrackSource,
};
pub use speaker::{Speaking, VoiceMeter, next_active};
pub use stats::SfuStats;
pub use tap::{TapCodec, TapPacket};
pub use throttle::{KeyframeNeed, KeyframeThrottle};
