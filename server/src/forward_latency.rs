//! How long a worker takes to forward a media packet: from the kernel's receive time of an
//! RTP datagram to the end of the send that handed the copies written for it to the kernel.
//! A copy that the congestion controller's pacer holds back leaves later; that wait is
//! deliberate and not counted here. A worker counts these in fixed buckets, without
//! allocating, and exports them as a Prometheus histogram (`tern_forward_latency_seconds`).

use std::time::{Duration, SystemTime};

/// Upper bounds of the buckets, in microseconds: fine around the 10 to 100 µs a lightly
/// loaded worker takes, coarse up to the tens of milliseconds a saturated one takes.
pub const BOUNDS_US: [u64; 31] = [
    2, 4, 6, 8, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 100, 125, 150, 200, 250, 300, 400,
    500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// Counts of forwarding latencies, per bucket.
#[derive(Clone, Debug, Default)]
pub struct ForwardLatency {
    /// Latencies in each bucket (not cumulative); the last one is beyond every bound.
    counts: [u64; BOUNDS_US.len() + 1],
    sum: Duration,
    /// Received datagrams that were forwarded and have not left yet: their receive times.
    pending: Vec<SystemTime>,
}

impl ForwardLatency {
    /// Room for the receive times of `datagrams` datagrams before they leave; more still fit
    /// (by allocating).
    pub fn with_capacity(datagrams: usize) -> Self {
        Self {
            pending: Vec::with_capacity(datagrams),
            ..Self::default()
        }
    }

    /// A datagram received at `at` was forwarded; its copies leave at the next [`Self::sent`].
    pub fn forwarded(&mut self, at: SystemTime) {
        self.pending.push(at);
    }

    /// Everything forwarded so far was handed to the kernel at `now`.
    pub fn sent(&mut self, now: SystemTime) {
        for at in self.pending.drain(..) {
            // A clock stepped backwards reads as zero.
            let took = now.duration_since(at).unwrap_or_default();
            let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
            self.counts[BOUNDS_US.partition_point(|&b| b < us)] += 1;
            self.sum += took;
        }
    }

    /// Whether any forwarded datagram waits for [`Self::sent`].
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Cumulative counts: latencies at most each of [`BOUNDS_US`], then all of them.
    pub fn cumulative(&self) -> [u64; BOUNDS_US.len() + 1] {
        let mut total = 0;
        self.counts.map(|c| {
            total += c;
            total
        })
    }

    /// The sum of all latencies counted.
    pub fn sum(&self) -> Duration {
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(at: SystemTime, us: u64) -> SystemTime {
        at + Duration::from_micros(us)
    }

    #[test]
    fn a_latency_on_a_bound_counts_in_that_bucket_and_above() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut h = ForwardLatency::with_capacity(4);
        for at in [t, t, after(t, 6)] {
            h.forwarded(at);
        }
        assert!(h.waiting());
        h.sent(after(t, 50));
        assert!(!h.waiting());
        let c = h.cumulative();
        let at_most = |us: u64| c[BOUNDS_US.iter().position(|&b| b == us).expect("a bound")];
        assert_eq!(
            (at_most(45), at_most(50)),
            (1, 3),
            "44 µs, and two of 50 µs"
        );
        assert_eq!(c[BOUNDS_US.len()], 3);
        assert_eq!(h.sum(), Duration::from_micros(144));
    }

    #[test]
    fn beyond_the_last_bound_and_backwards_clocks_are_still_counted() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut h = ForwardLatency::default();
        h.forwarded(t);
        h.forwarded(after(t, 200_000));
        h.sent(after(t, 150_000));
        let c = h.cumulative();
        assert_eq!(c[0], 1, "the receive time after the send counts as zero");
        assert_eq!(c[BOUNDS_US.len() - 1], 1, "150 ms is beyond 100 ms");
        assert_eq!(c[BOUNDS_US.len()], 2);
    }
}
