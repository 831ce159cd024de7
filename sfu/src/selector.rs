//! Which of a track's layers one subscription forwards, packet by packet. Pure: no I/O, no time.
//!
//! Layers are numbered from 0 (the lowest simulcast encoding, or the only stream of a track that
//! does not simulcast) upwards. A subscription forwards its *current* layer and moves to its
//! *target* only on a keyframe of the target, so the decoder never gets a frame that refers to
//! one it never saw.

/// What a subscriber asked of one video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerRequest {
    /// Send nothing (a hidden tab, an off-screen tile).
    pub paused: bool,
    /// The size, in device pixels, at which the video is shown; `None`: as large as there is.
    pub size: Option<(u32, u32)>,
}

/// What the selector knows about one layer of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerView {
    /// Packets of it arrive now.
    pub arriving: bool,
    /// Its picture size, when known.
    pub size: Option<(u16, u16)>,
}

/// The picture size assumed for the top layer of a track whose sizes are unknown (a camera's
/// usual 720p).
const ASSUMED_TOP: (u32, u32) = (1280, 720);

/// The layer a subscription should forward, or `None` for none (paused): the smallest layer
/// that covers the requested size (every layer when no size is asked), no higher than
/// `allowed` (what the subscriber's bandwidth allows), and among the layers that arrive, the
/// best one at or below that; the lowest arriving one when none below does.
///
/// Layer sizes not known from the stream are estimated from a known one, each layer half the
/// size of the next (simulcast's usual 1/4, 1/2, 1), or from a 1280x720 top layer.
pub fn target_layer(
    request: LayerRequest,
    layers: &[LayerView],
    allowed: Option<u8>,
) -> Option<u8> {
    let wanted = wanted_layer(request, layers)?;
    let top = (layers.len() - 1) as u8;
    let cap = allowed.map_or(wanted, |a| a.min(wanted));
    let arriving = |i: &u8| layers[usize::from(*i)].arriving;
    (0..=cap)
        .rev()
        .find(arriving)
        .or_else(|| (cap..=top).find(arriving))
        .or(Some(cap))
}

/// The layer the subscriber's request asks for, whatever arrives and whatever its bandwidth:
/// the smallest that covers the requested size, the top one when no size is given or none is
/// large enough; `None` when paused.
pub fn wanted_layer(request: LayerRequest, layers: &[LayerView]) -> Option<u8> {
    if request.paused || layers.is_empty() {
        return None;
    }
    let top = (layers.len() - 1) as u8;
    Some(match request.size {
        None => top,
        Some((w, h)) => (0..=top)
            .find(|i| {
                let (lw, lh) = layer_size(layers, *i);
                // A layer within 10 % of the tile is sharp enough.
                let covers = |l: u32, t: u32| u64::from(l) * 10 >= u64::from(t) * 9;
                covers(lw, w) && covers(lh, h)
            })
            .unwrap_or(top),
    })
}

/// The size of layer `i`, known or estimated.
fn layer_size(layers: &[LayerView], i: u8) -> (u32, u32) {
    if let Some((w, h)) = layers[usize::from(i)].size {
        return (u32::from(w), u32::from(h));
    }
    let top = layers.len() - 1;
    let known = layers
        .iter()
        .enumerate()
        .find_map(|(k, l)| l.size.map(|(w, h)| (k, u32::from(w), u32::from(h))));
    let (k, w, h) = known.unwrap_or((top, ASSUMED_TOP.0, ASSUMED_TOP.1));
    let i = usize::from(i);
    if i < k {
        (w >> (k - i), h >> (k - i))
    } else {
        (w << (i - k).min(8), h << (i - k).min(8))
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it: it belongs to the current layer.
    Forward,
    /// Forward it as the first packet of a new source: the subscription switched to its layer.
    Switch,
    /// Drop it.
    Drop,
}

/// The layer choice of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSelector {
    /// The layer forwarded now; `None` before the first keyframe and while paused.
    current: Option<u8>,
    /// The layer wanted; `None` means paused (nothing is forwarded).
    target: Option<u8>,
}

impl LayerSelector {
    /// A selector that wants `target` and forwards nothing yet.
    pub fn new(target: Option<u8>) -> Self {
        Self {
            current: None,
            target,
        }
    }

    /// A selector that forwards `layer` from its first packet on (audio: every packet can start).
    pub fn flowing(layer: u8) -> Self {
        Self {
            current: Some(layer),
            target: Some(layer),
        }
    }

    /// The layer forwarded now.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// The layer wanted.
    pub fn target(&self) -> Option<u8> {
        self.target
    }

    /// Wants another layer from now on (`None`: pause). The current layer keeps flowing until a
    /// keyframe of the target arrives; pausing takes effect at once.
    pub fn set_target(&mut self, target: Option<u8>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// The layer whose keyframe this subscription waits for, if it waits for one.
    pub fn awaiting_keyframe(&self) -> Option<u8> {
        self.target.filter(|t| self.current != Some(*t))
    }

    /// Decides about one packet of `layer`. `keyframe` is true on the first packet of a
    /// keyframe (and on every audio packet: any audio packet can start a stream).
    pub fn on_packet(&mut self, layer: u8, keyframe: bool) -> Verdict {
        let Some(target) = self.target else {
            return Verdict::Drop;
        };
        if layer == target && self.current != Some(target) {
            if !keyframe {
                // Keep the current layer (if any) until the target can be decoded.
                return Verdict::Drop;
            }
            self.current = Some(target);
            return Verdict::Switch;
        }
        if self.current == Some(layer) {
            Verdict::Forward
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::{Drop, Forward, Switch};
    use super::*;

    /// (request, layers, allowed, expected, what the viewer sees).
    type Case<'a> = (
        LayerRequest,
        &'a [LayerView],
        Option<u8>,
        Option<u8>,
        &'static str,
    );

    fn view(arriving: bool, size: Option<(u16, u16)>) -> LayerView {
        LayerView { arriving, size }
    }

    #[test]
    fn target_layers_table() {
        let sized = [
            view(true, Some((320, 180))),
            view(true, Some((640, 360))),
            view(true, Some((1280, 720))),
        ];
        let unsized_ = [view(true, None), view(true, None), view(true, None)];
        let top_lost = [view(true, None), view(true, None), view(false, None)];
        let only_top = [view(false, None), view(false, None), view(true, None)];
        let silent = [view(false, None), view(false, None), view(false, None)];
        let single = [view(true, Some((1280, 720)))];
        let ask = |w, h| LayerRequest {
            paused: false,
            size: Some((w, h)),
        };
        let any = LayerRequest::default();
        let paused = LayerRequest {
            paused: true,
            size: None,
        };
        // (request, layers, allowed, expected, what the viewer sees)
        let cases: [Case; 13] = [
            (
                any,
                &sized,
                None,
                Some(2),
                "no size said: the best there is",
            ),
            (
                ask(200, 112),
                &sized,
                None,
                Some(0),
                "a thumbnail gets the quarter layer",
            ),
            (
                ask(320, 180),
                &sized,
                None,
                Some(0),
                "exactly the quarter layer",
            ),
            (
                ask(330, 186),
                &sized,
                None,
                Some(0),
                "within 10 % is sharp enough",
            ),
            (
                ask(480, 270),
                &sized,
                None,
                Some(1),
                "a mid tile gets the half layer",
            ),
            (
                ask(1920, 1080),
                &sized,
                None,
                Some(2),
                "bigger than any layer: the top one",
            ),
            (
                ask(1280, 720),
                &sized,
                Some(1),
                Some(1),
                "the bandwidth allows the half layer only",
            ),
            (
                ask(600, 300),
                &unsized_,
                None,
                Some(1),
                "sizes estimated from a 720p top",
            ),
            (
                any,
                &top_lost,
                None,
                Some(1),
                "the top layer stopped: the next one down",
            ),
            (
                ask(100, 50),
                &only_top,
                None,
                Some(2),
                "only the top arrives: it, not nothing",
            ),
            (
                any,
                &silent,
                None,
                Some(2),
                "nothing arrives yet: wait for the wanted layer",
            ),
            (
                ask(100, 50),
                &single,
                None,
                Some(0),
                "a track that does not simulcast",
            ),
            (paused, &sized, None, None, "a hidden tile gets no video"),
        ];
        for (request, layers, allowed, want, what) in cases {
            assert_eq!(target_layer(request, layers, allowed), want, "{what}");
        }
    }

    #[test]
    fn decisions_packet_by_packet() {
        // (layer, keyframe, verdict): what the subscriber gets, packet after packet.
        let mut s = LayerSelector::new(Some(1));
        let cases = [
            // Joined mid-GOP: nothing to decode yet, so nothing is sent.
            (1, false, Drop),
            // Other layers are never forwarded.
            (0, true, Drop),
            (2, true, Drop),
            // The target's keyframe starts the picture.
            (1, true, Switch),
            (1, false, Forward),
            (0, false, Drop),
        ];
        for (i, (layer, key, want)) in cases.into_iter().enumerate() {
            assert_eq!(s.on_packet(layer, key), want, "case {i}");
        }
        assert_eq!(s.awaiting_keyframe(), None);
    }

    #[test]
    fn a_switch_keeps_the_old_layer_until_the_new_one_can_be_decoded() {
        let mut s = LayerSelector::new(Some(0));
        assert_eq!(s.on_packet(0, true), Switch);
        s.set_target(Some(2));
        assert_eq!(s.awaiting_keyframe(), Some(2));
        // The viewer keeps seeing the low layer without a freeze...
        assert_eq!(s.on_packet(0, false), Forward);
        assert_eq!(s.on_packet(2, false), Drop);
        // ...until the high layer's keyframe, after which the low layer stops.
        assert_eq!(s.on_packet(2, true), Switch);
        assert_eq!(s.on_packet(0, false), Drop);
        assert_eq!(s.on_packet(2, false), Forward);
        assert_eq!(s.current(), Some(2));
    }

    #[test]
    fn paused_forwards_nothing_and_resumes_on_a_keyframe() {
        let mut s = LayerSelector::new(Some(0));
        s.on_packet(0, true);
        s.set_target(None);
        // A hidden tile: no video at all.
        assert_eq!(s.on_packet(0, true), Drop);
        assert_eq!(s.awaiting_keyframe(), None);
        s.set_target(Some(0));
        // Visible again: the picture resumes on the next keyframe, not mid-GOP.
        assert_eq!(s.on_packet(0, false), Drop);
        assert_eq!(s.on_packet(0, true), Switch);
    }

    #[test]
    fn going_back_to_the_current_layer_cancels_a_pending_switch() {
        let mut s = LayerSelector::new(Some(1));
        s.on_packet(1, true);
        s.set_target(Some(2));
        s.set_target(Some(1));
        assert_eq!(s.awaiting_keyframe(), None);
        assert_eq!(s.on_packet(1, false), Forward);
    }
}
