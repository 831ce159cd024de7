//! A subscription: one track delivered to one sink, whatever the sink is (a participant's
//! subscriber connection today, a recording or broadcast tap next). It chooses the layer, keeps
//! the outgoing numbering continuous across layer switches, and knows whether it waits for a
//! keyframe. It never touches a connection: the caller delivers what it returns.

use std::time::Instant;

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

use crate::allocator::Grant;
use crate::picture_id::PictureIdRewriter;
use crate::rewrite::RtpRewriter;
use crate::selector::{LayerRequest, LayerSelector, LayerView, Verdict, target_layer};
use crate::signal::TrackKind;

/// One incoming packet, as a subscription sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming {
    /// Its layer.
    pub layer: u8,
    /// True on the first packet of a keyframe, and on every audio packet.
    pub keyframe: bool,
    /// The publisher's extended sequence number.
    pub seq: u64,
    /// The publisher's RTP timestamp.
    pub timestamp: u32,
    /// When it arrived.
    pub arrival: Instant,
    /// Its RTP clock rate.
    pub clock_rate: u32,
    /// Its VP8 payload descriptor, for VP8.
    pub vp8: Option<Vp8Descriptor>,
}

/// A packet to send: its numbering for the sink.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing {
    pub seq: u64,
    pub timestamp: u32,
    /// The VP8 picture id and TL0PICIDX to write, when they change.
    pub vp8: Option<Vp8Patch>,
}

/// One track delivered to one sink.
pub(crate) struct Subscription {
    /// What the subscriber asked for (size, paused).
    pub request: LayerRequest,
    /// What its bandwidth allows, once the allocator has said.
    pub allowed: Option<Grant>,
    pub selector: LayerSelector,
    pub rewriter: RtpRewriter,
    pictures: PictureIdRewriter,
    /// When the last forwarded packet arrived: on a switch, the new layer's timestamps continue
    /// from there by the time that passed.
    last_forwarded: Option<Instant>,
}

impl Subscription {
    /// A subscription to a track of `kind`. Video starts on its first keyframe; audio on any
    /// packet.
    pub fn new(kind: TrackKind) -> Self {
        let selector = match kind {
            TrackKind::Audio => LayerSelector::flowing(0),
            TrackKind::Video => LayerSelector::new(Some(0)),
        };
        Self {
            request: LayerRequest::default(),
            allowed: None,
            selector,
            rewriter: RtpRewriter::new(0),
            pictures: PictureIdRewriter::default(),
            last_forwarded: None,
        }
    }

    /// Aims at the layer its request, its bandwidth and what arrives allow. Returns the layer
    /// whose keyframe it now waits for, if that changed.
    pub fn retarget(&mut self, layers: &[LayerView]) -> Option<u8> {
        let before = self.selector.awaiting_keyframe();
        let target = match self.allowed {
            Some(Grant::Paused) => None,
            Some(Grant::UpTo(layer)) => target_layer(self.request, layers, Some(layer)),
            None => target_layer(self.request, layers, None),
        };
        self.selector.set_target(target);
        let after = self.selector.awaiting_keyframe();
        after.filter(|_| after != before)
    }

    /// The layer whose keyframe this subscription waits for, if any.
    pub fn awaiting_keyframe(&self) -> Option<u8> {
        self.selector.awaiting_keyframe()
    }

    /// Forward the packet, numbered for the sink, or drop it (`None`).
    pub fn decide(&mut self, p: &Incoming) -> Option<Outgoing> {
        match self.selector.on_packet(p.layer, p.keyframe) {
            Verdict::Drop => return None,
            Verdict::Forward => {}
            Verdict::Switch => {
                let elapsed = self
                    .last_forwarded
                    .map_or(0, |t| p.arrival.saturating_duration_since(t).as_micros());
                let ticks = elapsed * u128::from(p.clock_rate) / 1_000_000;
                self.rewriter
                    .switch_source(ticks.min(u128::from(u32::MAX)) as u32);
                self.pictures.switch_source();
            }
        }
        let (seq, timestamp) = self.rewriter.rewrite(p.seq, p.timestamp)?;
        self.last_forwarded = Some(p.arrival);
        let vp8 = p.vp8.and_then(|d| {
            let (pid_in, tl0_in) = (d.picture_id(), d.tl0_pic_idx());
            let (pid, tl0) = self.pictures.rewrite(pid_in, tl0_in);
            if (pid, tl0) == (pid_in, tl0_in) {
                return None;
            }
            let mut patch = d.patch();
            if let Some(pid) = pid {
                patch = patch.picture_id(pid);
            }
            if let Some(tl0) = tl0 {
                patch = patch.tl0_pic_idx(tl0);
            }
            // A 7-bit picture id that the shift overflows stays as it was.
            patch.build().ok()
        });
        Some(Outgoing {
            seq,
            timestamp,
            vp8,
        })
    }
}
