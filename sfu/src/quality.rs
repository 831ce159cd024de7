//! What each subscriber is told about the video it receives: the layer forwarded, the one
//! aimed at, whether its bandwidth holds it back, and its downlink estimate. Sent when something
//! changed, at most once a second, so a client can show it (the demo's stats overlay does).

use std::time::{Duration, Instant};

use crate::allocator::Grant;
use crate::ids::ParticipantId;
use crate::selector::wanted_layer;
use crate::sfu::Sfu;
use crate::signal::{LayerReport, Notice};

/// The least time between two reports to one participant.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What was last reported to a participant, and when.
#[derive(Debug, Default)]
pub(crate) struct QualityReported {
    at: Option<Instant>,
    estimate: Option<u64>,
    tracks: Vec<LayerReport>,
}

impl Sfu {
    /// Report to every participant whose video changed (run from housekeeping).
    pub(crate) fn report_quality(&mut self, now: Instant) {
        let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for id in ids {
            let Some((estimate, tracks)) = self.quality_of(id) else {
                continue;
            };
            let Some(p) = self.participants.get_mut(&id) else {
                continue;
            };
            let last = &mut p.quality;
            let due = last.at.is_none_or(|t| now >= t + REPORT_EVERY);
            // The estimate alone is news when it moved by a fifth.
            let moved = match (last.estimate, estimate) {
                (Some(a), Some(b)) => a.abs_diff(b).saturating_mul(5) > a,
                (a, b) => a != b,
            };
            if !due || (last.tracks == tracks && !moved) {
                continue;
            }
            last.at = Some(now);
            last.estimate = estimate;
            last.tracks.clone_from(&tracks);
            self.notify(id, Notice::Quality { estimate, tracks });
        }
    }

    /// A participant's estimate and the state of each video it subscribes to.
    fn quality_of(&self, id: ParticipantId) -> Option<(Option<u64>, Vec<LayerReport>)> {
        let p = self.participants.get(&id)?;
        let mut tracks: Vec<LayerReport> = p
            .subscriptions
            .iter()
            .filter_map(|(track, down)| {
                let (views, n) = self.layer_views(*track)?;
                let t = self.tracks.get(track)?;
                let layer = down.sub.selector.current();
                let wanted = wanted_layer(down.sub.request, &views[..n]);
                // Nothing arriving is the publisher's doing, not the subscriber's bandwidth.
                let arriving = views[..n].iter().any(|v| v.arriving);
                let limited = arriving
                    && match (down.sub.allowed, wanted) {
                        (Some(Grant::Paused), Some(_)) => true,
                        (Some(Grant::UpTo(l)), Some(w)) => l < w,
                        _ => false,
                    };
                Some(LayerReport {
                    track: *track,
                    layer,
                    rid: layer
                        .and_then(|l| t.layers.get(usize::from(l)))
                        .and_then(|l| l.rid.map(|r| r.to_string())),
                    target: down.sub.selector.target(),
                    bandwidth_limited: limited,
                })
            })
            .collect();
        tracks.sort_by_key(|r| r.track.0);
        Some((p.estimate, tracks))
    }
}
