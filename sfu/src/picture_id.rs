//! VP8 picture id and TL0PICIDX rewriting (RFC 7741 section 4.2), per subscription.
//!
//! Each simulcast layer is its own encoder with its own picture ids. A receiver's jitter buffer
//! finds frame references by picture id, so when a subscription switches layer, the new layer's
//! ids are shifted to continue the old ones: the first frame after a switch gets the next id.

/// The picture id is 15 bits on the wire (browsers always use the long form).
const PICTURE_ID_MODULO: u16 = 1 << 15;

/// Shifts one source's VP8 picture ids and TL0PICIDX onto a subscriber's continuous ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct PictureIdRewriter {
    /// What to add to the current source's (picture id, TL0PICIDX); `None` until its first
    /// packet, and after a switch.
    shift: Option<(u16, u8)>,
    /// The last (picture id, TL0PICIDX) sent.
    last: Option<(u16, u8)>,
}

impl PictureIdRewriter {
    /// The next packet starts a new source.
    pub fn switch_source(&mut self) {
        self.shift = None;
    }

    /// The ids to send for a packet carrying `picture_id` and `tl0` (each when present).
    pub fn rewrite(
        &mut self,
        picture_id: Option<u16>,
        tl0: Option<u8>,
    ) -> (Option<u16>, Option<u8>) {
        let (pid_in, tl0_in) = (picture_id.unwrap_or(0), tl0.unwrap_or(0));
        let (pid_shift, tl0_shift) = *self.shift.get_or_insert_with(|| match self.last {
            // The first packet of the new source continues right after the last one sent.
            Some((pid, t)) => (
                pid.wrapping_add(1).wrapping_sub(pid_in) % PICTURE_ID_MODULO,
                t.wrapping_add(1).wrapping_sub(tl0_in),
            ),
            None => (0, 0),
        });
        let pid_out = (pid_in.wrapping_add(pid_shift)) % PICTURE_ID_MODULO;
        let tl0_out = tl0_in.wrapping_add(tl0_shift);
        // Only a newer picture moves `last` (retransmissions and reordering do not).
        let newer = self.last.is_none_or(|(pid, _)| {
            let ahead = pid_out.wrapping_sub(pid) % PICTURE_ID_MODULO;
            ahead != 0 && ahead < PICTURE_ID_MODULO / 2
        });
        if newer {
            self.last = Some((pid_out, tl0_out));
        }
        (picture_id.map(|_| pid_out), tl0.map(|_| tl0_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_source_keeps_its_ids() {
        let mut r = PictureIdRewriter::default();
        assert_eq!(r.rewrite(Some(1234), Some(9)), (Some(1234), Some(9)));
        assert_eq!(r.rewrite(Some(1235), Some(10)), (Some(1235), Some(10)));
    }

    #[test]
    fn a_new_source_continues_after_the_last_id_sent() {
        let mut r = PictureIdRewriter::default();
        r.rewrite(Some(500), Some(7));
        r.rewrite(Some(501), Some(8));
        // A late packet of an older picture does not move the splice point.
        r.rewrite(Some(499), Some(6));
        r.switch_source();
        assert_eq!(r.rewrite(Some(30_000), Some(200)), (Some(502), Some(9)));
        assert_eq!(r.rewrite(Some(30_000), Some(200)), (Some(502), Some(9)));
        assert_eq!(r.rewrite(Some(30_001), Some(201)), (Some(503), Some(10)));
    }

    #[test]
    fn ids_wrap_at_15_bits_and_8_bits() {
        let mut r = PictureIdRewriter::default();
        r.rewrite(Some(32_767), Some(255));
        r.switch_source();
        assert_eq!(r.rewrite(Some(10), Some(3)), (Some(0), Some(0)));
        assert_eq!(r.rewrite(Some(11), Some(4)), (Some(1), Some(1)));
    }

    #[test]
    fn absent_fields_stay_absent() {
        let mut r = PictureIdRewriter::default();
        assert_eq!(r.rewrite(None, None), (None, None));
        assert_eq!(r.rewrite(Some(4), None), (Some(4), None));
    }
}
