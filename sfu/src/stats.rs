//! Counters the core keeps; the shell exports them as metrics.

/// Monotonic counters of one SFU core. Read them with [`crate::Sfu::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// Datagrams handed to the core.
    pub datagrams_in: u64,
    /// Bytes handed to the core.
    pub bytes_in: u64,
    /// Datagrams the core asked to send.
    pub datagrams_out: u64,
    /// Bytes the core asked to send.
    pub bytes_out: u64,
    /// RTP packets written to subscribers.
    pub rtp_forwarded: u64,
    /// Datagrams dropped because they are not STUN, DTLS or RTP, or do not parse.
    pub dropped_malformed: u64,
    /// Datagrams dropped because no participant owns their 5-tuple or ICE username.
    pub dropped_unrouted: u64,
    /// RTP packets dropped because their SSRC belongs to no published track.
    pub dropped_unknown_ssrc: u64,
    /// RTP packets not forwarded to a subscriber (no common codec, stream not ready).
    pub forward_errors: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests_sent: u64,
    /// Keyframe requests coalesced by the per-track throttle.
    pub keyframe_requests_coalesced: u64,
    /// Subscriber bandwidth estimators restarted because their estimate stayed locked under
    /// what tern sends (see `StallWatch`).
    pub bwe_restarts: u64,
    /// Errors returned by str0m for one connection (the connection is then closed).
    pub rtc_errors: u64,
    /// Subscriptions dropped because the subscriber cannot receive the track's codec.
    pub subscriptions_refused: u64,
    /// Dynacast messages telling a publisher which video layers to send.
    pub dynacast_updates: u64,
    /// Data messages received from participants on tern's channels.
    pub data_messages_in: u64,
    /// Of those, refused (malformed, too large, not granted, over the rate).
    pub data_messages_refused: u64,
    /// Data messages written to a recipient's channel.
    pub data_deliveries: u64,
    /// Data messages not written to a recipient (its channel too far behind, or closing).
    pub data_messages_dropped: u64,
}
