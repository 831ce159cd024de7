//! Data messages through tern: each participant opens two data channels on its publisher
//! connection (see [`crate::data_message`]); what arrives on one is checked (size, grant, rate),
//! stamped with its sender and written to each recipient's channel of the same kind.

use std::time::Instant;

use str0m::channel::{ChannelData, ChannelId};

use crate::data_message::{self, DataMessage, DataRefusal, LOSSY_LABEL, RELIABLE_LABEL, Sender};
use crate::error::SfuError;
use crate::ids::ParticipantId;
use crate::sfu::{PcKey, Sfu};
use crate::signal::PcRole;

/// A recipient whose channel holds more than this unsent is skipped (and counted): one slow
/// reader cannot make tern buffer without bound. (str0m refuses writes beyond 128 KiB per
/// connection anyway; those count the same.)
const MAX_BUFFERED: usize = 64 * 1024;

/// The largest data message at all: each copy is written whole into the recipient's SCTP send
/// buffer, which str0m caps at 128 KiB per connection.
const MAX_SCTP_MESSAGE: usize = 64 * 1024;

/// A participant's two channels, and its sending budget.
#[derive(Debug, Default)]
pub(crate) struct DataChannels {
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    budget: RateBudget,
}

impl DataChannels {
    /// The channel a message sent reliably (or not) goes out on. A participant without a lossy
    /// channel gets lossy messages on its reliable one.
    fn for_delivery(&self, reliable: bool) -> Option<ChannelId> {
        if reliable {
            self.reliable
        } else {
            self.lossy.or(self.reliable)
        }
    }
}

/// A token bucket: `rate` tokens a second on average, bursts of twice that. A message costs a
/// token per started KiB, so large messages cannot pour out at the rate of small ones.
#[derive(Debug, Default)]
struct RateBudget {
    /// Tokens in thousandths.
    milli: u64,
    last: Option<Instant>,
}

/// What a message of `len` bytes costs: a token per started KiB, at least one.
fn cost(len: usize) -> u64 {
    len.div_ceil(1024).max(1) as u64
}

impl RateBudget {
    fn take(&mut self, now: Instant, rate: u32, tokens: u64) -> bool {
        let burst = u64::from(rate) * 2 * 1000;
        let refill = self.last.map_or(burst, |t| {
            let us = now.saturating_duration_since(t).as_micros() as u64;
            us.saturating_mul(u64::from(rate)) / 1000
        });
        self.last = Some(now);
        self.milli = (self.milli + refill).min(burst);
        let needed = tokens.saturating_mul(1000);
        if self.milli < needed {
            return false;
        }
        self.milli -= needed;
        true
    }
}

impl Sfu {
    /// A data channel opened on a participant's publisher connection.
    pub(crate) fn on_channel_open(&mut self, id: ParticipantId, channel: ChannelId, label: &str) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        match label {
            RELIABLE_LABEL => p.data.reliable = Some(channel),
            LOSSY_LABEL => p.data.lossy = Some(channel),
            // Other channels are the application's own business with nobody: ignored.
            _ => {}
        }
    }

    /// A data channel closed.
    pub(crate) fn on_channel_close(&mut self, id: ParticipantId, channel: ChannelId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        for slot in [&mut p.data.reliable, &mut p.data.lossy] {
            if *slot == Some(channel) {
                *slot = None;
            }
        }
    }

    /// A message from a participant: delivered, or refused with an error on its channel.
    pub(crate) fn on_channel_data(&mut self, now: Instant, from: ParticipantId, d: ChannelData) {
        let (max, rate) = (self.max_data_bytes(), self.config.data_messages_per_sec);
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        let reliable = if p.data.reliable == Some(d.id) {
            true
        } else if p.data.lossy == Some(d.id) {
            false
        } else {
            return;
        };
        self.stats.data_messages_in += 1;
        let checked = if d.data.len() > max {
            Err(DataRefusal {
                code: "data_too_large",
                message: format!(
                    "a message may have at most {max} bytes, this one has {}",
                    d.data.len()
                ),
            })
        } else if !p.permissions.publish_data {
            Err(DataRefusal {
                code: "permission_denied",
                message: "the token does not grant publish_data".into(),
            })
        } else if !p
            .data
            .budget
            .take(now, rate, cost(d.data.len()).min(2 * u64::from(rate)))
        {
            Err(DataRefusal {
                code: "rate_limited",
                message: format!(
                    "more than {} messages (or KiB) a second",
                    self.config.data_messages_per_sec
                ),
            })
        } else {
            data_message::parse(d.binary, &d.data)
        };
        let message = match checked {
            Ok(m) => m,
            Err(refusal) => {
                self.stats.data_messages_refused += 1;
                let id = data_message::message_id(d.binary, &d.data);
                self.tell_sender(from, d.id, &refusal, id);
                return;
            }
        };
        let (room, identity) = (p.room.clone(), p.info.identity.clone());
        let sender = Sender {
            participant: Some((from, &identity)),
        };
        let missing = self.deliver(&room, sender, &message, reliable);
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
            let refusal = DataRefusal {
                code: "participant_not_found",
                message: format!("not in the room: {}", names.join(", ")),
            };
            self.tell_sender(from, d.id, &refusal, message.id);
        }
    }

    /// A message from the server's API into `room`. Returns how many it was written to.
    pub(crate) fn send_data(
        &mut self,
        room: &str,
        message: &DataMessage,
        reliable: bool,
    ) -> Result<usize, SfuError> {
        let room: std::sync::Arc<str> = self
            .rooms
            .get_key_value(room)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| SfuError::RoomNotFound(room.to_string()))?;
        let sender = Sender { participant: None };
        let size = data_message::encode_delivery(sender, message, reliable)
            .1
            .len();
        if size > self.max_data_bytes() {
            return Err(SfuError::DataTooLarge(self.max_data_bytes()));
        }
        let before = self.stats.data_deliveries;
        self.deliver(&room, sender, message, reliable);
        Ok((self.stats.data_deliveries - before) as usize)
    }

    /// The largest data message: the configured limit, at most what SCTP here carries.
    fn max_data_bytes(&self) -> usize {
        self.config.data_max_message_bytes.min(MAX_SCTP_MESSAGE)
    }

    /// Writes `message` to its recipients in `room`; returns the named ones not in it.
    fn deliver(
        &mut self,
        room: &str,
        sender: Sender<'_>,
        message: &DataMessage,
        reliable: bool,
    ) -> Vec<ParticipantId> {
        let from = sender.participant.map(|(id, _)| id);
        let (in_room, missing): (Vec<ParticipantId>, Vec<ParticipantId>) =
            match self.rooms.get(room) {
                None => (Vec::new(), message.to.clone()),
                Some(r) if message.to.is_empty() => (
                    r.participants
                        .iter()
                        .copied()
                        .filter(|p| Some(*p) != from)
                        .collect(),
                    Vec::new(),
                ),
                Some(r) => message
                    .to
                    .iter()
                    .copied()
                    .partition(|p| r.participants.contains(p)),
            };
        // Each recipient once, and never the sender.
        let mut in_room = in_room;
        in_room.sort_unstable();
        in_room.dedup();
        in_room.retain(|p| Some(*p) != from);
        let mut missing = missing;
        missing.sort_unstable();
        missing.dedup();
        let (binary, bytes) = data_message::encode_delivery(sender, message, reliable);
        for to in in_room {
            let Some(p) = self.participants.get_mut(&to) else {
                continue;
            };
            let Some(channel) = p.data.for_delivery(reliable) else {
                // It opened no data channel: it does not take messages.
                continue;
            };
            let Some(mut ch) = p.publisher.rtc.channel(channel) else {
                continue;
            };
            let written = ch.buffered_amount() <= MAX_BUFFERED
                && matches!(ch.write(binary, &bytes), Ok(true));
            if written {
                self.stats.data_deliveries += 1;
            } else {
                self.stats.data_messages_dropped += 1;
            }
            self.drain(PcKey {
                participant: to,
                role: PcRole::Publisher,
            });
        }
        missing
    }

    /// Tells a sender why its message `id` was refused, on the channel it came on.
    fn tell_sender(
        &mut self,
        to: ParticipantId,
        channel: ChannelId,
        refusal: &DataRefusal,
        id: Option<u64>,
    ) {
        let Some(p) = self.participants.get_mut(&to) else {
            return;
        };
        if let Some(mut ch) = p.publisher.rtc.channel(channel) {
            let _ = ch.write(false, &data_message::encode_refusal(refusal, id));
        }
        self.drain(PcKey {
            participant: to,
            role: PcRole::Publisher,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_budget_allows_a_burst_then_the_rate_and_large_messages_cost_more() {
        let start = Instant::now();
        let mut b = RateBudget::default();
        let taken = (0..50).filter(|_| b.take(start, 10, 1)).count();
        assert_eq!(taken, 20, "a burst of twice the rate");
        assert!(!b.take(start, 10, 1));
        let half = start + Duration::from_millis(50);
        assert!(!b.take(half, 10, 1), "half a token");
        let one = start + Duration::from_millis(110);
        assert!(b.take(one, 10, 1), "one token after 0.1 s");
        let later = start + Duration::from_secs(100);
        let refilled = (0..50).filter(|_| b.take(later, 10, 1)).count();
        assert_eq!(refilled, 20, "never more than the burst");
        let much_later = later + Duration::from_secs(100);
        assert!(b.take(much_later, 10, 16), "a 16 KiB message takes 16");
        assert!(!b.take(much_later, 10, 5), "4 are left");
        assert_eq!(
            (cost(0), cost(1024), cost(1025), cost(16_384)),
            (1, 1, 2, 16)
        );
    }
}
