//! Per-subscription RTP sequence number and timestamp rewriting.
//!
//! Each subscriber stream owns its numbering. The first forwarded packet is numbered `FIRST_SEQ`
//! whatever the publisher's extended sequence number is, so a late joiner's SRTP rollover counter
//! starts at zero. When the subscription switches source (another simulcast layer, which has its
//! own SSRC, sequence numbers and timestamp base), the new source is spliced on so the subscriber
//! sees one stream: the next sequence number, and a timestamp advanced by the time that passed.

/// The first outgoing sequence number of every subscription.
pub const FIRST_SEQ: u64 = 1;

/// How one source's numbering maps onto the subscriber's.
#[derive(Debug, Clone, Copy)]
struct Splice {
    /// The source's first forwarded extended sequence number and timestamp.
    seq_in: u64,
    ts_in: u32,
    /// What they became.
    seq_out: u64,
    ts_out: u32,
}

/// Maps a publisher's extended sequence numbers and RTP timestamps to a subscriber's.
#[derive(Debug, Default, Clone)]
pub struct RtpRewriter {
    /// The mapping of the current source, once its first packet was forwarded.
    splice: Option<Splice>,
    /// The first packet of the next source, and how far its timestamp moves on from the last
    /// one sent (see [`RtpRewriter::switch_source`]).
    pending_switch: Option<u32>,
    /// Timestamp of the first outgoing packet.
    ts_start: u32,
    /// The highest outgoing sequence number so far, and its timestamp.
    highest: Option<(u64, u32)>,
}

impl RtpRewriter {
    /// A rewriter whose first outgoing timestamp will be `ts_start`.
    pub fn new(ts_start: u32) -> Self {
        Self {
            ts_start,
            ..Self::default()
        }
    }

    /// True once the first packet has been forwarded.
    pub fn started(&self) -> bool {
        self.highest.is_some()
    }

    /// The next packet given to [`RtpRewriter::rewrite`] starts a new source (its sequence
    /// numbers and timestamps are unrelated to the old one's). It is numbered right after the
    /// highest sequence number sent, with a timestamp `ts_advance` after that packet's.
    /// `ts_advance` is the time since that packet in RTP clock units; at least 1, so a
    /// jitter buffer never sees two frames share a timestamp.
    pub fn switch_source(&mut self, ts_advance: u32) {
        self.pending_switch = Some(ts_advance.max(1));
    }

    /// Rewrites one packet. Returns `None` for a packet older than its source's first one
    /// forwarded (a late retransmission that the subscriber never had a number for).
    pub fn rewrite(&mut self, seq: u64, timestamp: u32) -> Option<(u64, u32)> {
        let splice = match (self.splice, self.pending_switch.take()) {
            (Some(s), None) => s,
            (_, advance) => {
                let (seq_out, ts_out) = match (self.highest, advance) {
                    (Some((seq, ts)), Some(advance)) => (seq + 1, ts.wrapping_add(advance)),
                    (Some((seq, ts)), None) => (seq + 1, ts.wrapping_add(1)),
                    (None, _) => (FIRST_SEQ, self.ts_start),
                };
                let s = Splice {
                    seq_in: seq,
                    ts_in: timestamp,
                    seq_out,
                    ts_out,
                };
                self.splice = Some(s);
                s
            }
        };
        let out_seq = seq.checked_sub(splice.seq_in)? + splice.seq_out;
        let out_ts = timestamp
            .wrapping_sub(splice.ts_in)
            .wrapping_add(splice.ts_out);
        if self.highest.is_none_or(|(h, _)| out_seq > h) {
            self.highest = Some((out_seq, out_ts));
        }
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

    #[test]
    fn a_new_source_continues_the_numbering_of_the_old_one() {
        let mut r = RtpRewriter::new(0);
        r.rewrite(100, 9000);
        r.rewrite(101, 12_000);
        // A reordered packet of the old source does not move the splice point back.
        r.rewrite(99, 6000);
        // The other layer starts 33 ms (2970 ticks at 90 kHz) after the last packet sent.
        r.switch_source(2970);
        assert_eq!(
            r.rewrite(70_000, 555_555),
            Some((FIRST_SEQ + 2, 3000 + 2970))
        );
        assert_eq!(
            r.rewrite(70_001, 558_555),
            Some((FIRST_SEQ + 3, 3000 + 5970))
        );
        // The new source's packets from before the switch were never numbered.
        assert_eq!(r.rewrite(69_999, 552_555), None);
    }

    #[test]
    fn a_switch_never_repeats_a_timestamp() {
        let mut r = RtpRewriter::new(0);
        r.rewrite(1, 0);
        r.switch_source(0);
        assert_eq!(r.rewrite(500, 77), Some((FIRST_SEQ + 1, 1)));
    }

    #[test]
    fn a_switch_before_the_first_packet_starts_at_the_beginning() {
        let mut r = RtpRewriter::new(40);
        r.switch_source(3000);
        assert_eq!(r.rewrite(9, 9), Some((FIRST_SEQ, 40)));
    }
}
