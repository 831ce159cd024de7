//! Coalescing of keyframe requests on their way to a publisher.

use std::time::{Duration, Instant};

/// One keyframe request in flight per track. A request goes to the publisher at once unless one
/// is already on its way; the keyframe that answers it satisfies every request made before it
/// arrived. A request left unanswered for `retry` (a lost PLI) is sent again.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    retry: Duration,
    /// When the request now in flight was sent; `None` once a keyframe answered it.
    in_flight: Option<Instant>,
}

impl KeyframeThrottle {
    /// A throttle that re-sends an unanswered request after `retry`.
    pub fn new(retry: Duration) -> Self {
        Self {
            retry,
            in_flight: None,
        }
    }

    /// Records a request. True means send it now; false means a keyframe is already on its way.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.in_flight {
            Some(sent) if now < sent + self.retry => false,
            _ => {
                self.in_flight = Some(now);
                true
            }
        }
    }

    /// A keyframe arrived from the publisher: every request made so far is satisfied.
    pub fn keyframe_arrived(&mut self) {
        self.in_flight = None;
    }

    /// True when the request in flight went unanswered for `retry` and must be sent again now
    /// (and marks it sent).
    pub fn poll_due(&mut self, now: Instant) -> bool {
        match self.in_flight {
            Some(sent) if now >= sent + self.retry => {
                self.in_flight = Some(now);
                true
            }
            _ => false,
        }
    }

    /// When the request in flight will be sent again, if one is in flight.
    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.map(|sent| sent + self.retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_while_one_is_in_flight_are_coalesced() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(Duration::from_secs(1));
        assert!(k.request(t0));
        // Ten subscribers ask before the keyframe comes: none of them sends another PLI.
        let sent_now = (1..=10).filter(|i| k.request(t0 + ms(i * 5))).count();
        assert_eq!(sent_now, 0);
        k.keyframe_arrived();
        assert_eq!(k.deadline(), None);
        // Nothing is left to send once the keyframe answered them all.
        assert!(!k.poll_due(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_request_after_the_keyframe_goes_out_at_once() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(Duration::from_secs(1));
        assert!(k.request(t0));
        k.keyframe_arrived();
        // A late joiner 100 ms later does not wait for the rest of the second.
        assert!(k.request(t0 + ms(100)));
    }

    #[test]
    fn an_unanswered_request_is_sent_again_after_the_retry_interval() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(Duration::from_secs(1));
        assert!(k.request(t0));
        assert_eq!(k.deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(!k.poll_due(t0 + ms(999)));
        assert!(k.poll_due(t0 + ms(1000)));
        assert!(!k.poll_due(t0 + ms(1500)));
        assert!(k.poll_due(t0 + ms(2000)));
        k.keyframe_arrived();
        assert!(!k.poll_due(t0 + ms(5000)));
    }
}
