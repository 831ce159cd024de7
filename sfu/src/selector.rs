//! Which of a track's layers one subscription forwards, packet by packet. Pure: no I/O, no time.
//!
//! Layers are numbered from 0 (the lowest simulcast encoding, or the only stream of a track that
//! does not simulcast) upwards. A subscription forwards its *current* layer and moves to its
//! *target* only on a keyframe of the target, so the decoder never gets a frame that refers to
//! one it never saw.

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
