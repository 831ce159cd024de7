//! Relay sockets of one worker: a slab of UDP sockets registered with the worker's poll. The
//! sans-IO server opens and closes them through [`Host`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use crate::server::Host;

/// Tokens from here on are relay sockets.
pub(super) const RELAY_BASE: usize = 1 << 20;
/// Tokens from here on are stream connections.
pub(super) const CONN_BASE: usize = 1 << 40;

pub(super) struct Relays {
    registry: Registry,
    sockets: Vec<Option<(UdpSocket, SocketAddr)>>,
    free: Vec<usize>,
    by_addr: HashMap<SocketAddr, usize>,
    buffer: usize,
    /// Datagrams a full socket buffer refused.
    pub send_drops: u64,
}

impl Relays {
    pub fn new(registry: Registry, buffer: usize) -> Self {
        Self {
            registry,
            sockets: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            buffer,
            send_drops: 0,
        }
    }

    /// The socket behind a token, with the address it is bound to.
    pub fn by_token(&self, token: Token) -> Option<&(UdpSocket, SocketAddr)> {
        self.sockets.get(token.0.checked_sub(RELAY_BASE)?)?.as_ref()
    }

    /// Sends `data` from the relay socket bound to `relay` to `peer`.
    pub fn send(&mut self, relay: SocketAddr, peer: SocketAddr, data: &[u8]) {
        let sent = self
            .by_addr
            .get(&relay)
            .and_then(|i| self.sockets.get(*i)?.as_ref())
            .map(|(s, _)| s.send_to(data, peer));
        if !matches!(sent, Some(Ok(_))) {
            self.send_drops += 1;
        }
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        if self.buffer > 0 {
            s.set_recv_buffer_size(self.buffer)?;
            s.set_send_buffer_size(self.buffer)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        Ok(s.into())
    }
}

impl Host for Relays {
    fn random(&mut self, buf: &mut [u8]) {
        aws_lc_rs::rand::fill(buf).expect("the system CSPRNG is available");
    }

    fn open_relay(&mut self, addr: SocketAddr) -> bool {
        let Ok(std_socket) = self.bind(addr) else {
            return false;
        };
        let mut socket = UdpSocket::from_std(std_socket);
        let idx = self.free.pop().unwrap_or(self.sockets.len());
        if self
            .registry
            .register(&mut socket, Token(RELAY_BASE + idx), Interest::READABLE)
            .is_err()
        {
            if idx < self.sockets.len() {
                self.free.push(idx);
            }
            return false;
        }
        if idx == self.sockets.len() {
            self.sockets.push(None);
        }
        self.sockets[idx] = Some((socket, addr));
        self.by_addr.insert(addr, idx);
        true
    }

    fn close_relay(&mut self, addr: SocketAddr) {
        if let Some(idx) = self.by_addr.remove(&addr)
            && let Some((mut socket, _)) = self.sockets[idx].take()
        {
            let _ = self.registry.deregister(&mut socket);
            self.free.push(idx);
        }
    }
}
