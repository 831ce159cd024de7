//! Redundant audio (RFC 2198 RED, Opus in RED as browsers send it) towards each subscriber in
//! the form its m-line negotiated: passed through when both ends speak RED, unwrapped to plain
//! Opus for a subscriber that does not, and wrapped (each packet carrying the previous one) for
//! a subscriber that does when the publisher does not. With RED a subscriber recovers any single
//! lost packet from the next one, so 5 % random loss is inaudible.
//!
//! Browser to browser is the common case and passes the payload through untouched. Unwrapping
//! and wrapping copy the payload (a bot or native publisher, or a subscriber without RED): a
//! measured, per-subscriber cost of audio rates only.

use std::sync::Arc;

use str0m::rtp::{RedDecoder, RedEncoder, RedundantBlock};

/// How one audio packet reaches one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudioForm {
    /// As it came (both RED, or both plain).
    AsIs,
    /// RED in, plain out: the primary block only.
    Unwrap,
    /// Plain in, RED out: with the previous packet as redundancy.
    Wrap,
}

impl AudioForm {
    /// The form for a packet that is RED or not, to a subscriber that negotiated RED or not.
    pub fn of(packet_red: bool, subscriber_red: bool) -> Self {
        match (packet_red, subscriber_red) {
            (true, false) => AudioForm::Unwrap,
            (false, true) => AudioForm::Wrap,
            _ => AudioForm::AsIs,
        }
    }
}

/// What a subscription keeps to wrap plain audio in RED: the last primary sent and its RTP
/// timestamp.
#[derive(Debug, Default, Clone)]
pub(crate) struct RedWrapper {
    last: Option<(Arc<[u8]>, u32)>,
}

impl RedWrapper {
    /// A RED payload for `primary` (timestamp `ts`, Opus payload type `pt`), carrying the
    /// previous primary when RFC 2198's fields can hold it.
    pub fn wrap(&mut self, pt: u8, primary: &Arc<[u8]>, ts: u32) -> Vec<u8> {
        let redundant = self.last.as_ref().and_then(|(payload, last_ts)| {
            let block = RedundantBlock {
                pt,
                timestamp_offset: ts.wrapping_sub(*last_ts),
                payload: payload.to_vec(),
            };
            // A reordered or repeated packet, or a long gap: no redundancy.
            (block.timestamp_offset > 0 && block.fits()).then_some(block)
        });
        self.last = Some((primary.clone(), ts));
        RedEncoder::encode(pt, primary, redundant.as_slice())
    }
}

/// The primary block of a RED payload; `None` when it does not parse (network input).
pub(crate) fn primary(payload: &[u8]) -> Option<&[u8]> {
    let blocks = RedDecoder::decode(payload).ok()?;
    blocks.into_iter().find(|b| b.is_primary).map(|b| b.payload)
}

/// A RED payload whose blocks name payload type `from` relabelled `to` (the publisher's and the
/// subscriber's Opus numbers differ); `None` when it does not parse.
pub(crate) fn relabel(payload: &[u8], from: u8, to: u8) -> Option<Vec<u8>> {
    let blocks = RedDecoder::decode(payload).ok()?;
    let (primary, redundant) = blocks.split_last()?;
    let pt = |p: u8| if p == from { to } else { p };
    let redundant: Vec<RedundantBlock> = redundant
        .iter()
        .map(|b| RedundantBlock {
            pt: pt(b.pt),
            timestamp_offset: b.timestamp_offset,
            payload: b.payload.to_vec(),
        })
        .collect();
    Some(RedEncoder::encode(
        pt(primary.pt),
        primary.payload,
        &redundant,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_packets_carry_the_previous_one_and_unwrap_to_themselves() {
        let mut w = RedWrapper::default();
        let first: Arc<[u8]> = Arc::from(&[1u8, 2, 3][..]);
        let second: Arc<[u8]> = Arc::from(&[4u8, 5][..]);
        let a = w.wrap(111, &first, 960);
        assert_eq!(primary(&a), Some(&[1u8, 2, 3][..]));
        let b = w.wrap(111, &second, 1920);
        let blocks = RedDecoder::decode(&b).expect("RED");
        assert_eq!(blocks.len(), 2, "the previous packet rides along");
        assert_eq!(
            (blocks[0].payload, blocks[0].timestamp_offset),
            (&[1u8, 2, 3][..], 960)
        );
        assert_eq!(primary(&b), Some(&[4u8, 5][..]));
    }

    #[test]
    fn relabelling_changes_only_the_named_payload_type() {
        let mut w = RedWrapper::default();
        w.wrap(111, &Arc::from(&[9u8][..]), 0);
        let red = w.wrap(111, &Arc::from(&[8u8][..]), 960);
        let out = relabel(&red, 111, 109).expect("relabelled");
        let blocks = RedDecoder::decode(&out).expect("RED");
        assert!(blocks.iter().all(|b| b.pt == 109));
        assert_eq!(primary(&out), Some(&[8u8][..]));
    }

    #[test]
    fn garbage_is_not_red() {
        assert_eq!(primary(&[]), None);
        assert_eq!(primary(&[0x80, 0, 0]), None);
        assert_eq!(relabel(&[0xff], 1, 2), None);
    }

    #[test]
    fn forms() {
        assert_eq!(AudioForm::of(true, true), AudioForm::AsIs);
        assert_eq!(AudioForm::of(false, false), AudioForm::AsIs);
        assert_eq!(AudioForm::of(true, false), AudioForm::Unwrap);
        assert_eq!(AudioForm::of(false, true), AudioForm::Wrap);
    }
}
