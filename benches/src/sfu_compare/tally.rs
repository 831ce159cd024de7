//! Counts per interval for long runs (the soak bench): packets the publishers sent, packets the
//! subscribers' str0m delivered, and the streams that delivered anything. A packet counts in
//! the interval it was *sent* in (its probe says when), so one that a retransmission restores
//! after its interval ended still counts there, and an interval's figures are final once
//! retransmissions have had their time. It also keeps what tern last said of each subscriber's
//! downlink (its `quality` message).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::probe::{Probe, Stream};

/// The index of a stream's kind in the per-kind counts: 0 audio, 1 video (every layer).
pub fn kind(stream: Stream) -> usize {
    match stream {
        Stream::Audio => 0,
        Stream::Video(_) => 1,
    }
}

#[derive(Debug, Default)]
struct Slot {
    sent: [AtomicU64; 2],
    delivered: [AtomicU64; 2],
    streams: [AtomicU64; 2],
}

/// One interval's counts, per kind (audio, video).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Packets the publishers sent (each counts once, whatever its receivers).
    pub sent: [u64; 2],
    /// Packets the subscribers' str0m delivered, after any recovery (str0m delivers each once).
    pub delivered: [u64; 2],
    /// (subscriber, publisher) streams that delivered at least one packet.
    pub streams: [u64; 2],
}

/// What tern last said of a subscriber's downlink.
#[derive(Clone, Copy, Debug, Default)]
pub struct Downlink {
    /// Its bandwidth estimate, bit/s (`None`: no estimate, congestion control off).
    pub estimate_bps: Option<f64>,
    /// Its video subscriptions that bandwidth holds below what they ask for (or pauses).
    pub limited: usize,
}

/// Per-interval counts from [`Tally::start`] on, shared by all the clients of a run.
#[derive(Debug)]
pub struct Tally {
    start_us: AtomicU64,
    interval_us: u64,
    slots: Vec<Slot>,
    downlinks: Mutex<HashMap<u32, Downlink>>,
}

impl Tally {
    /// Counts for `intervals` intervals of `interval` each, once started.
    pub fn new(interval: Duration, intervals: usize) -> Tally {
        Tally {
            start_us: u64::MAX.into(),
            interval_us: (interval.as_micros() as u64).max(1),
            slots: (0..intervals).map(|_| Slot::default()).collect(),
            downlinks: Mutex::default(),
        }
    }

    /// Starts the first interval at `us` (microseconds since the run's epoch).
    pub fn start(&self, us: u64) {
        self.start_us.store(us, Relaxed);
    }

    fn slot_of(&self, us: u64) -> Option<usize> {
        let i = (us.checked_sub(self.start_us.load(Relaxed))? / self.interval_us) as usize;
        (i < self.slots.len()).then_some(i)
    }

    /// Counts a packet a publisher sent.
    pub fn sent(&self, probe: &Probe) {
        if let Some(i) = self.slot_of(probe.sent_us) {
            self.slots[i].sent[kind(probe.stream)].fetch_add(1, Relaxed);
        }
    }

    /// Counts a packet a subscriber's str0m delivered; `last` is that subscriber's record of
    /// the latest interval each stream was counted in as delivering.
    pub fn delivered(&self, probe: &Probe, last: &mut HashMap<(u32, Stream), usize>) {
        let Some(i) = self.slot_of(probe.sent_us) else {
            return;
        };
        let k = kind(probe.stream);
        self.slots[i].delivered[k].fetch_add(1, Relaxed);
        let newest = last
            .entry((probe.publisher, probe.stream))
            .or_insert(usize::MAX);
        if *newest == usize::MAX || i > *newest {
            *newest = i;
            self.slots[i].streams[k].fetch_add(1, Relaxed);
        }
    }

    /// Keeps what tern said of participant `index`'s downlink.
    pub fn downlink(&self, index: u32, d: Downlink) {
        if let Ok(mut m) = self.downlinks.lock() {
            m.insert(index, d);
        }
    }

    /// What tern last said of each participant's downlink, by index.
    pub fn downlinks(&self) -> Vec<(u32, Downlink)> {
        let mut v: Vec<_> = self
            .downlinks
            .lock()
            .map_or(Vec::new(), |m| m.iter().map(|(i, d)| (*i, *d)).collect());
        v.sort_by_key(|(i, _)| *i);
        v
    }

    /// The counts of interval `i` so far (zero past the last).
    pub fn counts(&self, i: usize) -> Counts {
        let Some(s) = self.slots.get(i) else {
            return Counts::default();
        };
        let read = |a: &[AtomicU64; 2]| [a[0].load(Relaxed), a[1].load(Relaxed)];
        Counts {
            sent: read(&s.sent),
            delivered: read(&s.delivered),
            streams: read(&s.streams),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_count_in_the_interval_they_were_sent_in() {
        let t = Tally::new(Duration::from_secs(1), 2);
        t.start(10_000_000);
        let probe = |stream, sent_us| Probe {
            publisher: 3,
            stream,
            seq: 0,
            sent_us,
        };
        let mut last = HashMap::new();
        for (stream, us) in [(Stream::Audio, 10_500_000), (Stream::Video(0), 11_200_000)] {
            t.sent(&probe(stream, us));
        }
        t.sent(&probe(Stream::Audio, 9_000_000)); // before the start: not counted
        t.delivered(&probe(Stream::Video(0), 11_200_000), &mut last);
        t.delivered(&probe(Stream::Audio, 10_500_000), &mut last);
        t.delivered(&probe(Stream::Audio, 10_600_000), &mut last);
        // A late retransmission from interval 0 after interval 1 counted: no second stream.
        t.delivered(&probe(Stream::Video(0), 10_900_000), &mut last);
        let (a, b) = (t.counts(0), t.counts(1));
        assert_eq!((a.sent, a.delivered, a.streams), ([1, 0], [2, 1], [1, 0]));
        assert_eq!((b.sent, b.delivered, b.streams), ([0, 1], [0, 1], [0, 1]));
    }
}
