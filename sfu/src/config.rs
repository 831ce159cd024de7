//! Configuration of one SFU core (one worker).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// Settings of the SFU core. The server fills `public_addr` per worker; the rest comes from the
/// `[sfu]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SfuConfig {
    /// The address this worker advertises as its ICE host candidate (filled in by the server).
    #[serde(skip)]
    pub public_addr: Option<SocketAddr>,
    /// The address of this worker's ICE-TCP listener, advertised as a passive TCP host candidate
    /// (filled in by the server; `None` when ICE-TCP is off).
    #[serde(skip)]
    pub public_tcp_addr: Option<SocketAddr>,
    /// A keyframe request goes to the publisher at once unless one is already on its way; one
    /// that no keyframe answered in this many milliseconds is sent again. Default 1000.
    pub keyframe_interval_ms: u64,
    /// Keyframe requests from subscribers that already had video (after loss) are spaced by at
    /// least this many milliseconds; a new subscriber's first request is not. Default 500.
    pub keyframe_min_gap_ms: u64,
    /// A participant whose media connection stays disconnected this long is removed. Default 15000.
    pub disconnect_timeout_ms: u64,
    /// The downlink bandwidth assumed for a new subscriber connection until its estimate (TWCC,
    /// RFC 8888-style feedback) says otherwise, in kbit/s. Default 1000.
    pub bwe_initial_kbps: u64,
    /// Estimate each subscriber's downlink and fit its video into it (simulcast layers down,
    /// video paused before audio suffers). Off: every subscriber gets the layers it asks for,
    /// whatever its network. Default true.
    pub congestion_control: bool,
    /// Largest data message (its JSON header included), in bytes. Default 16384, the size every
    /// browser's data channels carry.
    pub data_max_message_bytes: usize,
    /// Data messages a participant may send per second on average (bursts of twice that);
    /// beyond, they are refused with `rate_limited`. Default 100.
    pub data_messages_per_sec: u32,
    /// Largest number of participants in one room. Default 100.
    pub max_participants_per_room: usize,
    /// Largest number of tracks one participant may publish. Default 16.
    pub max_tracks_per_participant: usize,
    /// How long each video subscription keeps what it sent, to answer retransmission requests
    /// (NACK, RFC 4585), in milliseconds. A client asks within a round trip or two of a loss,
    /// so 1 s covers round trips up to about 300 ms with a retry. Default 1000.
    pub rtx_buffer_ms: u64,
    /// The most packets one video subscription keeps for retransmission, whatever their age:
    /// 512 is 1 s of a 5 Mbit/s stream. This bounds the buffer's memory at about 600 KiB per
    /// video subscription. Audio is never resent and keeps no resend history. Default 512.
    pub rtx_buffer_packets: usize,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            public_addr: None,
            public_tcp_addr: None,
            keyframe_interval_ms: 1000,
            keyframe_min_gap_ms: 500,
            disconnect_timeout_ms: 15_000,
            bwe_initial_kbps: 1000,
            congestion_control: true,
            data_max_message_bytes: 16_384,
            data_messages_per_sec: 100,
            max_participants_per_room: 100,
            max_tracks_per_participant: 16,
            rtx_buffer_ms: 1000,
            rtx_buffer_packets: 512,
        }
    }
}

impl SfuConfig {
    pub(crate) fn keyframe_interval(&self) -> Duration {
        Duration::from_millis(self.keyframe_interval_ms)
    }

    pub(crate) fn keyframe_min_gap(&self) -> Duration {
        Duration::from_millis(self.keyframe_min_gap_ms)
    }

    pub(crate) fn disconnect_timeout(&self) -> Duration {
        Duration::from_millis(self.disconnect_timeout_ms)
    }

    /// The retransmission buffer of a new video subscription: at most this many packets, this
    /// old. Audio keeps none: its packets are sent not nackable (a late resend of 20 ms of
    /// speech is worth less than its bandwidth; Opus conceals the loss, RED carries redundancy).
    pub(crate) fn video_rtx_buffer(&self) -> (usize, Duration) {
        (
            self.rtx_buffer_packets.max(1),
            Duration::from_millis(self.rtx_buffer_ms),
        )
    }
}
