//! The data path: ChannelData and Send indications from clients, datagrams from peers. No heap
//! allocation: lookups are hash probes and answers are written into the caller's buffer.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Action, ClientId, DropReason, Server};
use crate::{ChannelData, Class, Message, MessageWriter, Method, attr};

impl Server {
    pub(super) fn client_channel_data<'a>(
        &mut self,
        now: Instant,
        client: ClientId,
        input: &'a [u8],
    ) -> Action<'a> {
        let Some(cd) = ChannelData::parse(input) else {
            return Action::Drop(DropReason::Malformed);
        };
        let Some(idx) = self.allocations.of_client(&client) else {
            return Action::Drop(DropReason::NoAllocation);
        };
        let peer = self
            .allocations
            .get(idx)
            .and_then(|a| a.channel_peer(cd.channel, now));
        match peer {
            // A channel's peer passed the port check at ChannelBind.
            Some(peer) => self.relay_to_peer(now, idx, peer, cd.data, false),
            None => Action::Drop(DropReason::NoChannel),
        }
    }

    /// A Send indication (RFC 8656 section 11.2). Indications get no answer, so every problem
    /// is a silent drop.
    pub(super) fn send_indication<'a>(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &Message<'a>,
    ) -> Action<'a> {
        let (Some(peer), Some(data)) = (
            msg.xor_address(attr::XOR_PEER_ADDRESS),
            msg.value(attr::DATA),
        ) else {
            return Action::Drop(DropReason::Malformed);
        };
        if msg.get(attr::DONT_FRAGMENT).is_some() {
            return Action::Drop(DropReason::Malformed);
        }
        match self.allocations.of_client(&client) {
            Some(idx) => self.relay_to_peer(now, idx, peer, data, true),
            None => Action::Drop(DropReason::NoAllocation),
        }
    }

    /// Relays `data` to `peer`; `check_port` when no ChannelBind has judged the peer's port.
    fn relay_to_peer<'a>(
        &mut self,
        now: Instant,
        idx: u32,
        peer: SocketAddr,
        data: &'a [u8],
        check_port: bool,
    ) -> Action<'a> {
        let rate = self.config.bandwidth_bytes_per_sec as f64;
        let Some(a) = self.allocations.get_mut(idx) else {
            return Action::Drop(DropReason::NoAllocation);
        };
        if !a.permitted(peer.ip(), now) {
            return Action::Drop(DropReason::NoPermission);
        }
        if check_port && let Err(reason) = self.config.peer_policy.check_port(peer) {
            *self.stats.refused_peers.entry(reason).or_default() += 1;
            return Action::Drop(DropReason::PeerRefused);
        }
        let Some(relay) = a.relay_for(peer) else {
            return Action::Drop(DropReason::NoPermission);
        };
        if !a.bucket.take(now, rate, data.len()) {
            return Action::Drop(DropReason::Bandwidth);
        }
        Action::ToPeer { relay, peer, data }
    }

    pub(super) fn peer_data(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        input: &[u8],
        out: &mut [u8],
    ) -> Action<'static> {
        let rate = self.config.bandwidth_bytes_per_sec as f64;
        let Some(a) = self
            .allocations
            .of_relay(&relay)
            .and_then(|i| self.allocations.get_mut(i))
        else {
            return Action::Drop(DropReason::NoAllocation);
        };
        if !a.permitted(peer.ip(), now) {
            return Action::Drop(DropReason::NoPermission);
        }
        // A channel's peer passed the port check at ChannelBind; anyone else is checked here.
        let channel = a.peer_channel(peer, now);
        if channel.is_none()
            && let Err(reason) = self.config.peer_policy.check_port(peer)
        {
            *self.stats.refused_peers.entry(reason).or_default() += 1;
            return Action::Drop(DropReason::PeerRefused);
        }
        if !a.bucket.take(now, rate, input.len()) {
            return Action::Drop(DropReason::Bandwidth);
        }
        let client = a.client;
        let len = match channel {
            Some(ch) => ChannelData::write(ch, input, out, client.transport.is_stream()),
            None => {
                self.indication_seq += 1;
                data_indication(self.indication_seq, peer, input, out)
            }
        };
        let Some(len) = len else {
            return Action::Drop(DropReason::TooLarge);
        };
        self.stats.to_client_packets += 1;
        self.stats.to_client_bytes += input.len() as u64;
        Action::ToClient { client, len }
    }
}

/// A Data indication carrying `data` from `peer`. Its transaction id need not be unpredictable
/// (indications are never answered), so it is a counter.
fn data_indication(seq: u64, peer: SocketAddr, data: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut tid = [0u8; 12];
    tid[4..].copy_from_slice(&seq.to_be_bytes());
    let mut w = MessageWriter::new(out, Method::DATA, Class::Indication, tid).ok()?;
    w.xor_address(attr::XOR_PEER_ADDRESS, peer).ok()?;
    w.attr(attr::DATA, data).ok()?;
    Some(w.finish())
}
