//! Batched datagram I/O for tern's UDP sockets: the SFU workers' media sockets and the TURN
//! relay's listening and relay sockets. On Linux, `recvmmsg` fills a batch of slots in one call
//! and `sendmmsg` sends what has been queued in one call; elsewhere, or with batching off, it is
//! one `recvfrom` or `sendto` per datagram.
//!
//! Works on any non-blocking socket that lends its file descriptor (`mio`'s, `tokio`'s, std's).
//! A caller that uses a readiness-based runtime reports `WouldBlock` to it as usual.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::time::SystemTime;

use rustix::net::{RecvFlags, SendFlags};

/// Datagrams per `recvmmsg` or `sendmmsg`.
pub const BATCH: usize = 32;
/// The largest UDP payload: with slots this size, nothing is ever truncated.
pub const MAX_DATAGRAM: usize = 65_536;

const NOWHERE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));

mod batch;

/// Receive slots and what the last receive put in them.
pub struct Inbox {
    /// One slot after the other, `slot` bytes each.
    slots: Box<[u8]>,
    slot: usize,
    received: [(usize, SocketAddr); BATCH],
    /// The kernel's receive time of each datagram, when the inbox asks for it.
    received_at: [Option<SystemTime>; BATCH],
    #[cfg(target_os = "linux")]
    headers: Option<nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>>,
}

impl Inbox {
    /// Slots for one batch (`batch`, on Linux) or for one datagram, each holding `slot`
    /// bytes: a longer datagram is cut to that length (take [`MAX_DATAGRAM`] to never cut).
    ///
    /// The batch headers hold raw pointers, so an inbox stays on the thread that made it.
    pub fn new(batch: bool, slot: usize) -> Self {
        let batch = batch && cfg!(target_os = "linux");
        let slots = if batch { BATCH } else { 1 };
        Self {
            slots: vec![0u8; slots * slot].into_boxed_slice(),
            slot,
            received: [(0, NOWHERE); BATCH],
            received_at: [None; BATCH],
            #[cfg(target_os = "linux")]
            headers: batch.then(|| nix::sys::socket::MultiHeaders::preallocate(BATCH, None)),
        }
    }

    /// Makes a batched inbox keep the kernel's receive time of each datagram
    /// ([`Inbox::received_at`]), for a socket on which [`enable_receive_times`] was called.
    /// The portable path keeps none.
    pub fn with_receive_times(mut self) -> Self {
        #[cfg(target_os = "linux")]
        if self.headers.is_some() {
            let space = nix::cmsg_space!(nix::sys::time::TimeSpec);
            self.headers = Some(nix::sys::socket::MultiHeaders::preallocate(
                BATCH,
                Some(space),
            ));
        }
        self
    }

    /// Datagrams one receive can return. A receive that returns fewer has emptied the queue.
    pub fn capacity(&self) -> usize {
        self.slots.len() / self.slot
    }

    /// Receives what `socket` has queued, up to [`Inbox::capacity`] datagrams, without
    /// blocking; they are then [`Inbox::datagram`] `0..n`. An error other than `WouldBlock` or
    /// `Interrupted` cannot come from an unconnected UDP socket without `IP_RECVERR` (ICMP
    /// errors are not queued).
    pub fn recv(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Some(headers) = &mut self.headers {
            return batch::recv(
                socket,
                headers,
                &mut self.slots,
                self.slot,
                (&mut self.received, &mut self.received_at),
            );
        }
        let (_, n, from) = rustix::net::recvfrom(socket, &mut self.slots[..], RecvFlags::DONTWAIT)?;
        let from = from.and_then(|a| SocketAddr::try_from(a).ok());
        // A datagram without an IP source cannot be answered; it is left as an empty one.
        self.received[0] = (
            from.map_or(0, |_| n.min(self.slot)),
            from.unwrap_or(NOWHERE),
        );
        Ok(1)
    }

    /// When the kernel received datagram `i` of the last receive (its `SO_TIMESTAMPNS` time,
    /// on the real-time clock), if the inbox keeps receive times and the kernel gave one.
    pub fn received_at(&self, i: usize) -> Option<SystemTime> {
        self.received_at.get(i).copied().flatten()
    }

    /// Datagram `i` of the last receive and its source.
    pub fn datagram(&self, i: usize) -> (&[u8], SocketAddr) {
        let (len, from) = self.received[i];
        let start = i * self.slot;
        (&self.slots[start..start + len], from)
    }
}

/// Datagrams waiting to leave through one socket.
pub struct Outbox {
    bytes: Vec<u8>,
    queued: Vec<(usize, usize, SocketAddr)>,
    batch: bool,
    /// Datagrams the socket refused (full buffer, unroutable destination).
    pub drops: u64,
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// System calls made to send them.
    pub calls: u64,
}

impl Outbox {
    /// A queue that batches (`batch`, on Linux) or sends each datagram at once.
    pub fn new(batch: bool) -> Self {
        Self {
            bytes: Vec::with_capacity(BATCH * 1500),
            queued: Vec::with_capacity(BATCH),
            batch: batch && cfg!(target_os = "linux"),
            drops: 0,
            sent: 0,
            calls: 0,
        }
    }

    /// Datagrams queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Sends `data` to `to` now, or queues it and sends the batch once it is full.
    pub fn send(&mut self, socket: &impl AsFd, data: &[u8], to: SocketAddr) {
        if !self.batch {
            let sent = send_to(socket, data, to);
            self.count_one(sent);
            return;
        }
        self.queued.push((self.bytes.len(), data.len(), to));
        self.bytes.extend_from_slice(data);
        if self.queued.len() == BATCH {
            self.flush(socket);
        }
    }

    /// Sends everything queued. Datagrams the socket refuses are counted in `drops`; the ones
    /// after a refused one still go.
    pub fn flush(&mut self, socket: &impl AsFd) {
        let queued = std::mem::take(&mut self.queued);
        match queued.as_slice() {
            [] => {}
            [(start, len, to)] => {
                let sent = send_to(socket, &self.bytes[*start..start + len], *to);
                self.count_one(sent);
            }
            #[cfg(target_os = "linux")]
            many => {
                let (refused, calls) = batch::send(socket, &self.bytes, many);
                self.drops += refused;
                self.sent += many.len() as u64 - refused;
                self.calls += calls;
            }
            #[cfg(not(target_os = "linux"))]
            many => {
                for (start, len, to) in many {
                    let sent = send_to(socket, &self.bytes[*start..start + len], *to);
                    self.count_one(sent);
                }
            }
        }
        self.queued = queued;
        self.queued.clear();
        self.bytes.clear();
    }

    fn count_one(&mut self, sent: bool) {
        self.calls += 1;
        if sent {
            self.sent += 1;
        } else {
            self.drops += 1;
        }
    }
}

/// Asks the kernel to time-stamp each datagram `socket` receives (`SO_TIMESTAMPNS`), for an
/// inbox made [`Inbox::with_receive_times`]. Unsupported off Linux.
pub fn enable_receive_times(socket: &impl AsFd) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    return nix::sys::socket::setsockopt(
        socket,
        nix::sys::socket::sockopt::ReceiveTimestampns,
        &true,
    )
    .map_err(io::Error::from);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// One `sendto`; whether the socket took the datagram.
fn send_to(socket: &impl AsFd, data: &[u8], to: SocketAddr) -> bool {
    rustix::net::sendto(socket, data, SendFlags::DONTWAIT, &to).is_ok()
}

#[cfg(test)]
mod tests;

/// Sends `bytes` to `to` as datagrams of `segment` bytes each (the last may be shorter) in one
/// system call, with UDP generic segmentation offload (`UDP_SEGMENT`, Linux 4.18 and later):
/// the kernel builds and routes one buffer and cuts it into datagrams as late as it can. At
/// most 64 segments.
#[cfg(target_os = "linux")]
pub fn send_segments(
    socket: &impl AsFd,
    bytes: &[u8],
    segment: u16,
    to: SocketAddr,
) -> io::Result<()> {
    batch::send_segments(socket, bytes, segment, to)
}
