//! One video input of a sidecar fed by several tracks in turn: the speaker layout's picture. The
//! feed selects a track; the switch happens on that track's next keyframe, and sequence numbers
//! and timestamps carry on across it, so ffmpeg sees a single stream whose picture changes.

use std::time::Instant;

use tern_sfu::{TapId, TapPacket};

/// Where the last packet out was.
#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    timestamp: u32,
    arrival: Instant,
}

/// Rewrites the packets of whichever track is selected onto one continuous stream.
#[derive(Debug, Default)]
pub struct Switcher {
    source: Option<TapId>,
    next: Option<TapId>,
    seq_offset: u64,
    ts_offset: u32,
    last: Option<Last>,
}

impl Switcher {
    /// The track shown now, or about to be (once its keyframe comes).
    pub fn selected(&self) -> Option<TapId> {
        self.next.or(self.source)
    }

    /// Shows `tap` from its next keyframe on (from its first packet when nothing is shown yet).
    pub fn select(&mut self, tap: TapId) {
        match self.source {
            None => self.source = Some(tap),
            Some(s) if s == tap => self.next = None,
            Some(_) => self.next = Some(tap),
        }
    }

    /// `p` of `tap` as the single stream's packet, or `None` when `tap` is not shown.
    pub fn rewrite(&mut self, tap: TapId, p: &TapPacket) -> Option<TapPacket> {
        if self.next == Some(tap) && p.keyframe {
            self.source = self.next.take();
            if let Some(last) = self.last {
                // Right after the last packet out: the next sequence number, and the time that
                // has passed on the RTP clock (at least one tick).
                let elapsed = p.arrival.saturating_duration_since(last.arrival);
                let ticks = (elapsed.as_micros() * u128::from(p.clock_rate) / 1_000_000) as u32;
                self.seq_offset = (last.seq + 1).wrapping_sub(p.seq);
                self.ts_offset = last
                    .timestamp
                    .wrapping_add(ticks.max(1))
                    .wrapping_sub(p.timestamp);
            }
        }
        if self.source != Some(tap) {
            return None;
        }
        let mut out = p.clone();
        out.seq = p.seq.wrapping_add(self.seq_offset);
        out.timestamp = p.timestamp.wrapping_add(self.ts_offset);
        self.last = Some(Last {
            seq: out.seq,
            timestamp: out.timestamp,
            arrival: p.arrival,
        });
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tern_sfu::{TapCodec, TrackId};

    use super::*;

    fn packet(seq: u64, timestamp: u32, keyframe: bool, at: Instant) -> TapPacket {
        TapPacket {
            track: TrackId(1),
            codec: TapCodec::Vp8,
            clock_rate: 90_000,
            seq,
            timestamp,
            marker: true,
            keyframe,
            payload: Arc::from(&[0u8][..]),
            arrival: at,
        }
    }

    #[test]
    fn the_switch_waits_for_a_keyframe_and_the_stream_runs_on() {
        let (a, b) = (TapId(1), TapId(2));
        let t0 = Instant::now();
        let mut s = Switcher::default();
        s.select(a);
        let out = s
            .rewrite(a, &packet(100, 9000, true, t0))
            .expect("a is shown");
        assert_eq!((out.seq, out.timestamp), (100, 9000));
        assert!(s.rewrite(b, &packet(5000, 1, false, t0)).is_none());
        s.select(b);
        assert_eq!(s.selected(), Some(b));
        // Until b's keyframe, a goes on and b is dropped.
        let t1 = t0 + Duration::from_millis(40);
        assert!(s.rewrite(a, &packet(101, 12_600, false, t1)).is_some());
        assert!(s.rewrite(b, &packet(5001, 2, false, t1)).is_none());
        // b's keyframe, 100 ms after a's last packet: the numbering follows a's.
        let t2 = t1 + Duration::from_millis(100);
        let out = s.rewrite(b, &packet(5002, 3, true, t2)).expect("b now");
        assert_eq!(out.seq, 102);
        assert_eq!(out.timestamp, 12_600 + 9000);
        assert!(out.keyframe);
        assert!(
            s.rewrite(a, &packet(102, 16_200, false, t2)).is_none(),
            "a is off"
        );
        let out = s
            .rewrite(
                b,
                &packet(5003, 3003, false, t2 + Duration::from_millis(33)),
            )
            .expect("b");
        assert_eq!((out.seq, out.timestamp), (103, 12_600 + 9000 + 3000));
    }

    #[test]
    fn selecting_the_source_again_cancels_a_pending_switch() {
        let (a, b) = (TapId(1), TapId(2));
        let t0 = Instant::now();
        let mut s = Switcher::default();
        s.select(a);
        s.rewrite(a, &packet(1, 0, true, t0));
        s.select(b);
        s.select(a);
        assert_eq!(s.selected(), Some(a));
        assert!(s.rewrite(b, &packet(7, 0, true, t0)).is_none(), "no switch");
    }
}
