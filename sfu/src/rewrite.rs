//! Per-subscription RTP sequence number and timestamp rewriting.
//!
//! Each subscriber stream owns its numbering. The first forwarded packet is numbered `FIRST_SEQ`
//! whatever the publisher's extended sequence number is, so a late joiner's SRTP rollover counter
//! starts at zero, and later layer switches (simulcast) can splice sources without a gap.

/// The first outgoing sequence number of every subscription.
pub const FIRST_SEQ: u64 = 1;

/// Maps a publisher's extended sequence numbers and RTP timestamps to a subscriber's.
#[derive(Debug, Default, Clone)]
pub struct RtpRewriter {
    /// (first incoming extended seq, first incoming timestamp) once started.
    base: Option<(u64, u32)>,
    /// Timestamp of the first outgoing packet.
    ts_start: u32,
}

impl RtpRewriter {
    /// A rewriter whose first outgoing timestamp will be `ts_start`.
    pub fn new(ts_start: u32) -> Self {
        Self {
            base: None,
            ts_start,
        }
    }

    /// True once the first packet has been forwarded.
    pub fn started(&self) -> bool {
        self.base.is_some()
    }

    /// Rewrites one packet. Returns `None` for a packet older than the first one forwarded
    /// (a late retransmission that the subscriber never had a number for).
    pub fn rewrite(&mut self, seq: u64, timestamp: u32) -> Option<(u64, u32)> {
        let (seq_base, ts_base) = *self.base.get_or_insert((seq, timestamp));
        let out_seq = seq.checked_sub(seq_base)? + FIRST_SEQ;
        let out_ts = timestamp.wrapping_sub(ts_base).wrapping_add(self.ts_start);
        Some((out_seq, out_ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_joiner_starts_at_first_seq_with_no_rollover() {
        let mut r = RtpRewriter::new(1000);
        // The publisher has already wrapped its 16-bit sequence number three times.
        let publisher_seq = 3 * 65_536 + 17;
        assert_eq!(r.rewrite(publisher_seq, 90_000), Some((FIRST_SEQ, 1000)));
        assert_eq!(
            r.rewrite(publisher_seq + 1, 93_000),
            Some((FIRST_SEQ + 1, 4000))
        );
    }

    #[test]
    fn gaps_are_kept_so_nacks_still_name_the_lost_packet() {
        let mut r = RtpRewriter::new(0);
        r.rewrite(500, 0);
        assert_eq!(r.rewrite(503, 0).map(|p| p.0), Some(FIRST_SEQ + 3));
        assert_eq!(r.rewrite(502, 0).map(|p| p.0), Some(FIRST_SEQ + 2));
    }

    #[test]
    fn packets_older_than_the_first_are_dropped() {
        let mut r = RtpRewriter::new(0);
        r.rewrite(500, 0);
        assert_eq!(r.rewrite(499, 0), None);
    }

    #[test]
    fn timestamps_wrap() {
        let mut r = RtpRewriter::new(u32::MAX - 10);
        r.rewrite(1, 5);
        assert_eq!(r.rewrite(2, 25).map(|p| p.1), Some(9));
    }
}
