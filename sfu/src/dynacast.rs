//! Dynacast: a publisher sends only the encodings someone needs. A layer no subscription needs
//! for a while is turned off at the publisher, over signaling ([`Notice::SendLayers`]); it is
//! turned on again as soon as one does. Audio is never turned off.

use std::time::{Duration, Instant};

use crate::ids::TrackId;
use crate::selector::wanted_layer;
use crate::sfu::Sfu;
use crate::signal::{Notice, TrackKind};
use crate::track::Track;

/// A layer unneeded for this long is turned off: tiles resized back and forth, or a subscriber
/// that leaves and rejoins, do not make the publisher's encoders stop and start.
pub(crate) const TURN_OFF_AFTER: Duration = Duration::from_secs(3);

impl Sfu {
    /// Tell publishers which of their video layers are needed now (run from housekeeping).
    pub(crate) fn update_dynacast(&mut self, now: Instant) {
        let ids: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.info.kind == TrackKind::Video && !t.layers.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let needed = self.highest_needed(id);
            let Some(t) = self.tracks.get_mut(&id) else {
                continue;
            };
            if decide(t, needed, now) {
                let layers = t
                    .layers
                    .iter()
                    .map(|l| (l.rid.map(|r| r.to_string()), l.sending))
                    .collect();
                let notice = Notice::SendLayers {
                    track: id,
                    mid: t.mid.to_string(),
                    layers,
                };
                tracing::debug!(track = %id, ?notice, "dynacast");
                let publisher = t.info.participant;
                self.stats.dynacast_updates += 1;
                self.notify(publisher, notice);
            }
        }
    }

    /// The highest layer of `track` any subscription asks for (from its tile's size), whether
    /// or not it arrives now. `None`: none asks for any. Bandwidth is left out: a subscriber
    /// whose estimate is still ramping up must be able to grow into the layer it asks for.
    fn highest_needed(&self, track: TrackId) -> Option<u8> {
        let t = self.tracks.get(&track)?;
        let (views, n) = self.layer_views(track)?;
        t.subscribers
            .iter()
            .filter_map(|s| self.participants.get(s)?.subscriptions.get(&track))
            .filter_map(|d| wanted_layer(d.sub.request, &views[..n]))
            .max()
    }
}

/// Turn on every layer up to `needed` at once, and off those above it once unneeded for
/// [`TURN_OFF_AFTER`]; the layers below stay on (subscribers fall back to them), and all of them
/// go off when nobody asks for the track (`needed` is `None`). True when what the publisher
/// sends changes.
fn decide(t: &mut Track, needed: Option<u8>, now: Instant) -> bool {
    let mut changed = false;
    for (i, layer) in t.layers.iter_mut().enumerate() {
        let need = needed.is_some_and(|n| i <= usize::from(n));
        if need {
            layer.unneeded_since = None;
            changed |= !layer.sending;
            layer.sending = true;
            continue;
        }
        let since = *layer.unneeded_since.get_or_insert(now);
        if layer.sending && now >= since + TURN_OFF_AFTER {
            layer.sending = false;
            changed = true;
        }
    }
    changed
}
