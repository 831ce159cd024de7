//! Coalescing of keyframe requests on their way to a publisher.

use std::time::{Duration, Instant};

/// One keyframe request in flight per track. A request goes to the publisher at once unless one
/// is already on its way; the keyframe that answers it satisfies every request made before it
/// arrived. A request left unanswered for `retry` (a lost PLI) is sent again.
///
/// Requests from subscribers that already had video (a PLI after loss) keep at least `min_gap`
/// between two requests, so many lossy viewers cannot make the publisher send keyframes back to
/// back; a new subscriber's first request skips the gap.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    retry: Duration,
    min_gap: Duration,
    /// When the request now in flight was sent; `None` once a keyframe answered it.
    in_flight: Option<Instant>,
    /// When the last request was sent.
    last_sent: Option<Instant>,
    /// A request held back by the gap, sent when it has passed.
    held: bool,
}

/// Who asks for a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeNeed {
    /// A subscriber that has no picture yet: it waits on this keyframe.
    NewSubscriber,
    /// A subscriber that had video asks again (loss, a decoder error).
    Repair,
}

impl KeyframeThrottle {
    /// A throttle that re-sends an unanswered request after `retry` and spaces repair requests
    /// by `min_gap`.
    pub fn new(retry: Duration, min_gap: Duration) -> Self {
        Self {
            retry,
            min_gap,
            in_flight: None,
            last_sent: None,
            held: false,
        }
    }

    /// Records a request. True means send it now; false means a keyframe is already on its way,
    /// or the request is held until the gap has passed.
    pub fn request(&mut self, now: Instant, need: KeyframeNeed) -> bool {
        if self.in_flight.is_some_and(|sent| now < sent + self.retry) {
            return false;
        }
        let gap_open = self.last_sent.is_none_or(|last| now >= last + self.min_gap);
        if need == KeyframeNeed::Repair && !gap_open {
            self.held = true;
            return false;
        }
        self.sent(now);
        true
    }

    /// A keyframe arrived from the publisher: every request made so far is satisfied.
    pub fn keyframe_arrived(&mut self) {
        self.in_flight = None;
        self.held = false;
    }

    /// True when a request must be sent now (and marks it sent): one in flight went unanswered
    /// for `retry`, or one held back by the gap may go.
    pub fn poll_due(&mut self, now: Instant) -> bool {
        let due = match self.in_flight {
            Some(sent) => now >= sent + self.retry,
            None => self.held && self.last_sent.is_none_or(|l| now >= l + self.min_gap),
        };
        if due {
            self.sent(now);
        }
        due
    }

    /// When [`KeyframeThrottle::poll_due`] will next say yes, if anything waits.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.in_flight, self.held, self.last_sent) {
            (Some(sent), _, _) => Some(sent + self.retry),
            (None, true, Some(last)) => Some(last + self.min_gap),
            _ => None,
        }
    }

    fn sent(&mut self, now: Instant) {
        self.in_flight = Some(now);
        self.last_sent = Some(now);
        self.held = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeyframeNeed::{NewSubscriber, Repair};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn throttle() -> KeyframeThrottle {
        KeyframeThrottle::new(Duration::from_secs(1), ms(500))
    }

    #[test]
    fn requests_while_one_is_in_flight_are_coalesced() {
        let t0 = Instant::now();
        let mut k = throttle();
        assert!(k.request(t0, NewSubscriber));
        // Ten subscribers ask before the keyframe comes: none of them sends another PLI.
        let sent_now = (1..=10)
            .filter(|i| k.request(t0 + ms(i * 5), NewSubscriber))
            .count();
        assert_eq!(sent_now, 0);
        k.keyframe_arrived();
        assert_eq!(k.deadline(), None);
        // Nothing is left to send once the keyframe answered them all.
        assert!(!k.poll_due(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_new_subscribers_request_after_the_keyframe_goes_out_at_once() {
        let t0 = Instant::now();
        let mut k = throttle();
        assert!(k.request(t0, NewSubscriber));
        k.keyframe_arrived();
        // A late joiner 100 ms later does not wait for the rest of the second.
        assert!(k.request(t0 + ms(100), NewSubscriber));
    }

    #[test]
    fn repair_requests_keep_the_gap_and_the_held_one_goes_when_it_passes() {
        let t0 = Instant::now();
        let mut k = throttle();
        assert!(k.request(t0, Repair));
        k.keyframe_arrived();
        // Lossy viewers ask right after the keyframe: held, not sent.
        assert!(!k.request(t0 + ms(50), Repair));
        assert!(!k.request(t0 + ms(200), Repair));
        assert_eq!(k.deadline(), Some(t0 + ms(500)));
        assert!(!k.poll_due(t0 + ms(499)));
        assert!(k.poll_due(t0 + ms(500)));
        // A keyframe that comes by itself answers a held request too.
        k.keyframe_arrived();
        assert!(!k.request(t0 + ms(600), Repair));
        k.keyframe_arrived();
        assert!(!k.poll_due(t0 + ms(2000)));
    }

    #[test]
    fn an_unanswered_request_is_sent_again_after_the_retry_interval() {
        let t0 = Instant::now();
        let mut k = throttle();
        assert!(k.request(t0, NewSubscriber));
        assert_eq!(k.deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(!k.poll_due(t0 + ms(999)));
        assert!(k.poll_due(t0 + ms(1000)));
        assert!(!k.poll_due(t0 + ms(1500)));
        assert!(k.poll_due(t0 + ms(2000)));
        k.keyframe_arrived();
        assert!(!k.poll_due(t0 + ms(5000)));
    }
}
