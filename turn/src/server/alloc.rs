//! Allocation state in compact tables: a slab of allocations indexed by client 5-tuple and by
//! relayed address. No task, thread or socket lives here; the shell owns the sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::ClientId;

/// A channel binding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    pub peer: SocketAddr,
    pub expires: Instant,
}

/// A bandwidth cap in bytes per second with one second of burst.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(now: Instant, rate: f64) -> Self {
        Self {
            tokens: rate,
            at: now,
        }
    }

    /// Takes `bytes` if the cap allows; `rate` 0 means unlimited.
    pub fn take(&mut self, now: Instant, rate: f64, bytes: usize) -> bool {
        if rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

/// One allocation (RFC 8656 section 2.2).
#[derive(Debug)]
pub(crate) struct Allocation {
    pub client: ClientId,
    /// Bound relay addresses: IPv4 first, then IPv6.
    pub relays: [Option<SocketAddr>; 2],
    pub username: Box<str>,
    pub quota_user: Box<str>,
    /// The Allocate transaction, to answer its retransmissions.
    pub transaction: [u8; 12],
    pub expires: Instant,
    pub permissions: HashMap<IpAddr, Instant>,
    pub channels: HashMap<u16, Channel>,
    pub channel_of_peer: HashMap<SocketAddr, u16>,
    pub bucket: Bucket,
}

impl Allocation {
    /// The relay address serving peers of `peer`'s family.
    pub fn relay_for(&self, peer: SocketAddr) -> Option<SocketAddr> {
        self.relays[usize::from(peer.is_ipv6())]
    }

    pub fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|t| *t > now)
    }

    pub fn channel_peer(&self, channel: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .get(&channel)
            .filter(|c| c.expires > now)
            .map(|c| c.peer)
    }

    pub fn peer_channel(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let ch = *self.channel_of_peer.get(&peer)?;
        self.channel_peer(ch, now).map(|_| ch)
    }

    pub fn permit(&mut self, ip: IpAddr, until: Instant) {
        self.permissions.insert(ip, until);
    }

    pub fn bind(&mut self, channel: u16, peer: SocketAddr, until: Instant) {
        self.channels.insert(
            channel,
            Channel {
                peer,
                expires: until,
            },
        );
        self.channel_of_peer.insert(peer, channel);
    }

    /// Forgets expired permissions, and channels once they have also cooled down: an expired
    /// channel's number and peer are not bound to anything else for 5 minutes (RFC 8656 12).
    pub fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|_, t| *t > now);
        let by_peer = &mut self.channel_of_peer;
        self.channels.retain(|_, c| {
            let keep = c.expires + CHANNEL_COOLDOWN > now;
            if !keep {
                by_peer.remove(&c.peer);
            }
            keep
        });
    }

    /// Channels that carry data now.
    pub fn live_channels(&self, now: Instant) -> usize {
        self.channels.values().filter(|c| c.expires > now).count()
    }
}

/// The allocation tables of one worker.
#[derive(Debug, Default)]
pub(crate) struct Allocations {
    slots: Vec<Option<Allocation>>,
    free: Vec<u32>,
    by_client: HashMap<ClientId, u32>,
    by_relay: HashMap<SocketAddr, u32>,
}

impl Allocations {
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn of_client(&self, client: &ClientId) -> Option<u32> {
        self.by_client.get(client).copied()
    }

    pub fn of_relay(&self, relay: &SocketAddr) -> Option<u32> {
        self.by_relay.get(relay).copied()
    }

    pub fn relay_in_use(&self, relay: &SocketAddr) -> bool {
        self.by_relay.contains_key(relay)
    }

    pub fn get(&self, idx: u32) -> Option<&Allocation> {
        self.slots.get(idx as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, idx: u32) -> Option<&mut Allocation> {
        self.slots.get_mut(idx as usize)?.as_mut()
    }

    pub fn insert(&mut self, a: Allocation) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_client.insert(a.client, idx);
        for r in a.relays.iter().flatten() {
            self.by_relay.insert(*r, idx);
        }
        self.slots[idx as usize] = Some(a);
        idx
    }

    pub fn remove(&mut self, idx: u32) -> Option<Allocation> {
        let a = self.slots.get_mut(idx as usize)?.take()?;
        self.by_client.remove(&a.client);
        for r in a.relays.iter().flatten() {
            self.by_relay.remove(r);
        }
        self.free.push(idx);
        Some(a)
    }

    /// Indices of allocations whose lifetime has passed.
    pub fn expired(&self, now: Instant) -> Vec<u32> {
        self.iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(i, _)| i)
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Allocation)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().map(|a| (i as u32, a)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Allocation> {
        self.slots.iter_mut().flatten()
    }
}

/// Lifetime of a permission (RFC 8656 section 9).
pub(crate) const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Lifetime of a channel binding (RFC 8656 section 12).
pub(crate) const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// How long an expired channel's number and peer stay reserved.
const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);
