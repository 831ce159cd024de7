//! Sharing one subscriber's downlink among the video it receives. Pure: a function of the
//! bandwidth estimate, the subscriptions, their layers' bitrates, priorities and the previous
//! allocation.
//!
//! Audio is reserved first and never competes. Then every video gets its lowest layer, in
//! priority order, before any gets a higher one; a video whose lowest layer does not fit is
//! paused. Then layers rise one step at a time, highest priority first, up to what each
//! subscriber asked for. Rising above the previous allocation needs headroom, and what was
//! granted is kept until the estimate falls well short of it, so a layer does not go up and down
//! on every small change of the estimate.

/// What a subscription may forward, as the allocator decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Layers up to this one.
    UpTo(u8),
    /// No video: even the lowest layer does not fit.
    Paused,
}

/// One video subscription, as the allocator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoDemand {
    /// Higher goes first: screen share, then the active speaker, then the rest.
    pub priority: u8,
    /// The highest layer the subscriber wants (from its tile size), or `None` when it wants
    /// none (paused by the subscriber: it costs nothing).
    pub wanted: Option<u8>,
    /// The bitrate of each layer in bit/s, lowest layer first (measured, or nominal before
    /// measured); 0 for a layer that does not arrive (it cannot be granted).
    pub layer_bps: [u64; 4],
    /// How many layers the track has.
    pub layers: u8,
    /// The previous grant, if any.
    pub previous: Option<Grant>,
}

/// Going above the previous grant needs the total to stay under this share of the budget...
const HEADROOM_PERCENT: u64 = 85;
/// ...and what was granted before is kept until the total exceeds this share of it. An
/// estimate that only follows what is sent (nothing is congested) wanders a few percent either
/// side of it; congestion takes it far below.
const KEEP_PERCENT: u64 = 115;

/// The grant of each demand, in the order given. `estimate` is the subscriber's downlink in
/// bit/s; `audio_bps` is reserved out of it first.
pub fn allocate(estimate: u64, audio_bps: u64, demands: &[VideoDemand]) -> Vec<Grant> {
    let budget = estimate.saturating_sub(audio_bps);
    let mut order: Vec<usize> = (0..demands.len()).collect();
    // Stable: equal priorities keep their given order.
    order.sort_by_key(|i| std::cmp::Reverse(demands[*i].priority));
    let mut grants: Vec<Option<u8>> = vec![None; demands.len()];
    let mut total = 0u64;

    // Every video's lowest arriving layer first.
    for &i in &order {
        let d = &demands[i];
        let Some(lowest) = d.lowest_arriving() else {
            continue;
        };
        let cost = d.layer_bps[usize::from(lowest)];
        if fits(total + cost, budget, d.rises_to(lowest)) {
            grants[i] = Some(lowest);
            total += cost;
        }
    }
    // Then one step up at a time, highest priority first, until nothing more fits.
    loop {
        let mut raised = false;
        for &i in &order {
            let d = &demands[i];
            let Some(current) = grants[i] else {
                continue;
            };
            let Some(next) = d.next_above(current) else {
                continue;
            };
            let cost =
                d.layer_bps[usize::from(next)].saturating_sub(d.layer_bps[usize::from(current)]);
            if fits(total + cost, budget, d.rises_to(next)) {
                grants[i] = Some(next);
                total += cost;
                raised = true;
            }
        }
        if !raised {
            break;
        }
    }
    grants
        .into_iter()
        .zip(demands)
        .map(|(g, d)| match (g, d.lowest_arriving()) {
            (Some(layer), _) => Grant::UpTo(layer),
            // Wanting nothing, or nothing arriving yet, is not a lack of bandwidth: start low.
            (None, None) => Grant::UpTo(0),
            (None, Some(_)) => Grant::Paused,
        })
        .collect()
}

/// Whether `total` fits in the budget: with headroom for more, with tolerance for what was
/// granted before.
fn fits(total: u64, budget: u64, rising: bool) -> bool {
    let share = if rising {
        HEADROOM_PERCENT
    } else {
        KEEP_PERCENT
    };
    total.saturating_mul(100) <= budget.saturating_mul(share)
}

impl VideoDemand {
    fn arriving(&self, layer: u8) -> bool {
        self.layer_bps[usize::from(layer)] > 0
    }

    /// The lowest layer that arrives, if the subscriber wants any.
    fn lowest_arriving(&self) -> Option<u8> {
        self.wanted?;
        (0..self.layers).find(|l| self.arriving(*l))
    }

    /// The next arriving layer above `layer`, up to what is wanted.
    fn next_above(&self, layer: u8) -> Option<u8> {
        let wanted = self.wanted?;
        (layer + 1..=wanted.min(self.layers.saturating_sub(1))).find(|l| self.arriving(*l))
    }

    /// True when granting `layer` goes above the previous grant.
    fn rises_to(&self, layer: u8) -> bool {
        match self.previous {
            Some(Grant::UpTo(prev)) => layer > prev,
            Some(Grant::Paused) | None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Grant::{Paused, UpTo};
    use super::*;

    /// (estimate, audio, demands, expected grants, what the viewer sees).
    type Case = (u64, u64, Vec<VideoDemand>, Vec<Grant>, &'static str);

    /// A simulcast camera: q 150k, h 500k, f 1.5M.
    const CAMERA: [u64; 4] = [150_000, 500_000, 1_500_000, 0];

    fn video(priority: u8, wanted: Option<u8>, previous: Option<Grant>) -> VideoDemand {
        VideoDemand {
            priority,
            wanted,
            layer_bps: CAMERA,
            layers: 3,
            previous,
        }
    }

    #[test]
    fn allocations_table() {
        let big = video(0, Some(2), None);
        let small = video(0, Some(0), None);
        let screen = VideoDemand {
            priority: 2,
            wanted: Some(0),
            layer_bps: [1_200_000, 0, 0, 0],
            layers: 1,
            previous: None,
        };
        let no_f = VideoDemand {
            layer_bps: [150_000, 500_000, 0, 0],
            ..big
        };
        // (estimate, audio, demands, expected grants, what the viewer sees)
        let cases: Vec<Case> = vec![
            (
                5_000_000,
                40_000,
                vec![big],
                vec![UpTo(2)],
                "plenty: the full layer",
            ),
            (
                1_000_000,
                40_000,
                vec![big],
                vec![UpTo(1)],
                "1 Mbit/s: the half layer",
            ),
            (
                300_000,
                40_000,
                vec![big],
                vec![UpTo(0)],
                "300 kbit/s: the quarter layer",
            ),
            (
                150_000,
                40_000,
                vec![big],
                vec![Paused],
                "below the lowest layer: video pauses, audio goes on",
            ),
            (
                850_000,
                40_000,
                vec![big, big],
                vec![UpTo(1), UpTo(0)],
                "two tiles: both get video before either gets more; the first goes up a step",
            ),
            (
                2_100_000,
                40_000,
                vec![big, screen],
                vec![UpTo(1), UpTo(0)],
                "the screen share is served first; the camera gets what is left",
            ),
            (
                1_500_000,
                40_000,
                vec![big, screen],
                vec![Paused, UpTo(0)],
                "too little for both: the screen share keeps playing",
            ),
            (
                5_000_000,
                40_000,
                vec![small],
                vec![UpTo(0)],
                "a thumbnail never gets more than it asked",
            ),
            (
                5_000_000,
                40_000,
                vec![no_f],
                vec![UpTo(1)],
                "a layer that does not arrive is skipped",
            ),
            (
                100_000,
                40_000,
                vec![video(0, None, None)],
                vec![UpTo(0)],
                "a paused tile costs nothing and is not marked as starved",
            ),
            (
                100_000,
                40_000,
                vec![VideoDemand {
                    layer_bps: [0; 4],
                    ..big
                }],
                vec![UpTo(0)],
                "nothing arrives yet: not starved, it starts on the lowest layer",
            ),
        ];
        for (estimate, audio, demands, want, what) in cases {
            assert_eq!(allocate(estimate, audio, &demands), want, "{what}");
        }
    }

    #[test]
    fn hysteresis_keeps_a_layer_until_it_no_longer_fits() {
        // 700 kbit/s after audio: enough to keep the half layer (500k) granted before...
        let kept = video(0, Some(2), Some(UpTo(1)));
        assert_eq!(allocate(740_000, 40_000, &[kept]), vec![UpTo(1)]);
        // ...and 550k still keeps it (no oscillation around the edge)...
        assert_eq!(allocate(590_000, 40_000, &[kept]), vec![UpTo(1)]);
        // ...but rising to it from the quarter layer needs headroom (500k <= 85 % of budget).
        let rising = video(0, Some(2), Some(UpTo(0)));
        assert_eq!(allocate(590_000, 40_000, &[rising]), vec![UpTo(0)]);
        assert_eq!(allocate(640_000, 40_000, &[rising]), vec![UpTo(1)]);
        // An estimate a few percent under what flows keeps it (it only follows what is sent)...
        assert_eq!(allocate(500_000, 40_000, &[kept]), vec![UpTo(1)]);
        // ...well under it, congestion, steps down.
        assert_eq!(allocate(450_000, 40_000, &[kept]), vec![UpTo(0)]);
    }
}
