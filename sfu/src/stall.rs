//! A subscriber's bandwidth estimate locked below what tern sends it.
//!
//! str0m 0.25's loss-based controller can lock: once loss-limited with an estimate under the
//! rate actually sent divided by 1.3, it caps its candidates near that estimate, explains the
//! link's random loss as congestion (driving its inherent-loss estimate to the floor), and then
//! refuses every increase; while loss-limited it also sends no probes. Audio is sent whatever
//! the estimate, so a subscriber of many audio tracks on a lossy link can be left with all its
//! video held for good (docs/performance.md, "Soak"). The estimate is not what the link carries
//! then: the audio above it keeps arriving. [`StallWatch`] spots an estimate that has stayed
//! under what tern sends and says when to restart the estimator, waiting longer after each
//! restart that did not hold, so a link that really is that narrow sees rare, short probes.

use std::time::{Duration, Instant};

/// How long an estimate may stay under what is sent before the first restart.
const FIRST_WAIT: Duration = Duration::from_secs(10);
/// The longest wait between two restarts.
const LONGEST_WAIT: Duration = Duration::from_secs(160);
/// An estimate covering what is sent for this long is trusted again: waits start over.
const HEALTHY: Duration = Duration::from_secs(60);

/// Watches one subscriber connection's estimate against what tern sends it.
#[derive(Debug, Clone)]
pub(crate) struct StallWatch {
    /// Since when the estimate has been under what is sent.
    below_since: Option<Instant>,
    /// Since when it has covered what is sent.
    covering_since: Option<Instant>,
    wait: Duration,
}

impl Default for StallWatch {
    fn default() -> Self {
        Self {
            below_since: None,
            covering_since: None,
            wait: FIRST_WAIT,
        }
    }
}

impl StallWatch {
    /// At each allocation: the estimate and the rate tern sends (bit/s). Returns the estimate
    /// to restart the estimator from, twice what is sent, when it is time to.
    pub fn check(&mut self, now: Instant, estimate: u64, sending: u64) -> Option<u64> {
        // str0m's controller can raise its estimate by at most 1.3x what it last had while it
        // is loss-limited; an estimate that lets the sent rate fit within that is not locked.
        if estimate.saturating_mul(13) >= sending.saturating_mul(10) {
            self.below_since = None;
            let since = *self.covering_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= HEALTHY {
                self.wait = FIRST_WAIT;
            }
            return None;
        }
        self.covering_since = None;
        let since = *self.below_since.get_or_insert(now);
        if now.saturating_duration_since(since) < self.wait {
            return None;
        }
        self.below_since = Some(now);
        self.wait = (self.wait * 2).min(LONGEST_WAIT);
        Some(sending.saturating_mul(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENDING: u64 = 1_000_000;
    const LOCKED: u64 = 500_000;

    /// Feeds `check` every half second (as reallocation does) from `start` for `secs`, and
    /// returns the times (seconds from `start`) it asked for a restart.
    fn run(w: &mut StallWatch, start: Instant, secs: u64, estimate: u64) -> Vec<f64> {
        let mut restarts = Vec::new();
        for half in 0..secs * 2 {
            let now = start + Duration::from_millis(500 * half);
            if let Some(init) = w.check(now, estimate, SENDING) {
                assert_eq!(init, 2 * SENDING, "restarts at twice what is sent");
                restarts.push(half as f64 / 2.0);
            }
        }
        restarts
    }

    #[test]
    fn an_estimate_that_covers_what_is_sent_is_never_restarted() {
        let mut w = StallWatch::default();
        let start = Instant::now();
        assert!(run(&mut w, start, 600, SENDING).is_empty());
        // Within str0m's 1.3x step of what is sent: not locked either.
        assert!(run(&mut w, start, 600, SENDING * 10 / 13 + 1).is_empty());
    }

    #[test]
    fn an_estimate_locked_under_what_is_sent_is_restarted_with_growing_waits() {
        let mut w = StallWatch::default();
        let restarts = run(&mut w, Instant::now(), 400, LOCKED);
        assert_eq!(restarts, vec![10.0, 30.0, 70.0, 150.0, 310.0]);
    }

    #[test]
    fn a_restart_that_holds_for_a_minute_brings_the_short_wait_back() {
        let mut w = StallWatch::default();
        let start = Instant::now();
        assert_eq!(run(&mut w, start, 40, LOCKED), vec![10.0, 30.0]);
        // The restart held: the estimate covered what was sent for a minute.
        let later = start + Duration::from_secs(40);
        assert!(run(&mut w, later, 61, SENDING).is_empty());
        let locked_again = later + Duration::from_secs(61);
        assert_eq!(run(&mut w, locked_again, 15, LOCKED), vec![10.0]);
    }

    #[test]
    fn a_short_dip_under_what_is_sent_is_left_alone() {
        let mut w = StallWatch::default();
        let start = Instant::now();
        for k in 0..100u64 {
            let now = start + Duration::from_secs(k);
            // Nine seconds under, one over, again and again.
            let estimate = if k % 10 == 9 { SENDING } else { LOCKED };
            assert_eq!(w.check(now, estimate, SENDING), None, "at {k} s");
        }
    }
}
