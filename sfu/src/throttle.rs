//! Coalescing and throttling of keyframe requests on their way to a publisher.

use std::time::{Duration, Instant};

/// At most one keyframe request per `interval`; requests in between are coalesced into one that
/// is sent when the interval has passed.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// A throttle that lets one request through per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: None,
            pending: false,
        }
    }

    /// Records a request. True means send it now; false means it was coalesced.
    pub fn request(&mut self, now: Instant) -> bool {
        if self.ready(now) {
            self.last_sent = Some(now);
            self.pending = false;
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// True when a coalesced request is due now (and marks it sent).
    pub fn poll_due(&mut self, now: Instant) -> bool {
        if self.pending && self.ready(now) {
            self.pending = false;
            self.last_sent = Some(now);
            true
        } else {
            false
        }
    }

    /// When a coalesced request will be due, if one is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        let last = self.last_sent?;
        self.pending.then_some(last + self.interval)
    }

    fn ready(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|last| now >= last + self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_and_the_rest_coalesced() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(Duration::from_secs(1));
        assert!(k.request(t0));
        // Ten subscribers ask within the same second: none goes through now...
        let sent_now = (1..=10)
            .filter(|i| k.request(t0 + Duration::from_millis(i * 50)))
            .count();
        assert_eq!(sent_now, 0);
        assert_eq!(k.deadline(), Some(t0 + Duration::from_secs(1)));
        // ...and exactly one is sent when the second is over.
        assert!(!k.poll_due(t0 + Duration::from_millis(999)));
        assert!(k.poll_due(t0 + Duration::from_secs(1)));
        assert!(!k.poll_due(t0 + Duration::from_secs(5)));
        assert_eq!(k.deadline(), None);
    }
}
