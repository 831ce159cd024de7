//! Datagram I/O for a worker's UDP sockets. On Linux, `recvmmsg` fills a batch of slots in one
//! call and `sendmmsg` sends what a listening socket has queued in one call; elsewhere, or with
//! batching off, it is one `recv_from` or `send_to` per datagram.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use mio::net::UdpSocket;

/// Datagrams per `recvmmsg` or `sendmmsg`.
pub(super) const BATCH: usize = 32;
/// A receive slot holds the largest UDP payload, so nothing is ever truncated.
const SLOT: usize = 65_536;

/// Receive slots and what the last receive put in them.
pub(super) struct Inbox {
    slots: Box<[[u8; SLOT]]>,
    received: [(usize, SocketAddr); BATCH],
    #[cfg(target_os = "linux")]
    headers: Option<nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>>,
}

const NOWHERE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));

impl Inbox {
    /// Slots for one batch (`batch`, on Linux) or for one datagram.
    pub fn new(batch: bool) -> Self {
        let batch = batch && cfg!(target_os = "linux");
        let slots = if batch { BATCH } else { 1 };
        Self {
            // Zeroed memory from the allocator: pages cost RSS only once a datagram lands there.
            slots: vec![[0u8; SLOT]; slots].into_boxed_slice(),
            received: [(0, NOWHERE); BATCH],
            #[cfg(target_os = "linux")]
            headers: batch.then(|| nix::sys::socket::MultiHeaders::preallocate(BATCH, None)),
        }
    }

    /// Datagrams one receive can return. A receive that returns fewer has emptied the queue.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Receives what `socket` has queued, up to [`Inbox::capacity`] datagrams; they are then
    /// [`Inbox::datagram`] `0..n`. An error other than `WouldBlock` or `Interrupted` cannot
    /// come from an unconnected UDP socket without `IP_RECVERR` (ICMP errors are not queued).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Some(headers) = &mut self.headers {
            return recv_batch(socket, headers, &mut self.slots, &mut self.received);
        }
        let (n, from) = socket.recv_from(&mut self.slots[0])?;
        self.received[0] = (n, from);
        Ok(1)
    }

    /// Datagram `i` of the last receive and its source.
    pub fn datagram(&self, i: usize) -> (&[u8], SocketAddr) {
        let (len, from) = self.received[i];
        (&self.slots[i][..len], from)
    }
}

#[cfg(target_os = "linux")]
fn recv_batch(
    socket: &UdpSocket,
    headers: &mut nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    slots: &mut [[u8; SLOT]],
    received: &mut [(usize, SocketAddr); BATCH],
) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, recvmmsg};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    let slots: &mut [[u8; SLOT]; BATCH] = slots
        .try_into()
        .map_err(|_| io::Error::other("receive slots are one batch"))?;
    let mut iovs = slots.each_mut().map(|s| [IoSliceMut::new(s)]);
    let results = recvmmsg(
        socket.as_raw_fd(),
        headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    let mut n = 0;
    for (msg, slot) in results.zip(received.iter_mut()) {
        let from = msg.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::V4(SocketAddrV4::from(*v4)))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
                })
        });
        // A datagram without an IP source cannot be answered; it is left as an empty one.
        *slot = (from.map_or(0, |_| msg.bytes), from.unwrap_or(NOWHERE));
        n += 1;
    }
    Ok(n)
}

/// Datagrams waiting to leave through one listening socket.
pub(super) struct Outbox {
    bytes: Vec<u8>,
    queued: Vec<(usize, usize, SocketAddr)>,
    batch: bool,
    /// Datagrams the socket refused (full buffer, unroutable destination).
    pub drops: u64,
}

impl Outbox {
    /// A queue that batches (`batch`, on Linux) or sends each datagram at once.
    pub fn new(batch: bool) -> Self {
        Self {
            bytes: Vec::with_capacity(BATCH * 1500),
            queued: Vec::with_capacity(BATCH),
            batch: batch && cfg!(target_os = "linux"),
            drops: 0,
        }
    }

    /// Sends `data` to `to` now, or queues it and sends the batch once it is full.
    pub fn send(&mut self, socket: &UdpSocket, data: &[u8], to: SocketAddr) {
        if !self.batch {
            if socket.send_to(data, to).is_err() {
                self.drops += 1;
            }
            return;
        }
        self.queued.push((self.bytes.len(), data.len(), to));
        self.bytes.extend_from_slice(data);
        if self.queued.len() == BATCH {
            self.flush(socket);
        }
    }

    /// Sends everything queued. Datagrams the socket refuses are counted in `drops`.
    pub fn flush(&mut self, socket: &UdpSocket) {
        match self.queued.as_slice() {
            [] => {}
            [(start, len, to)] => {
                if socket
                    .send_to(&self.bytes[*start..start + len], *to)
                    .is_err()
                {
                    self.drops += 1;
                }
            }
            #[cfg(target_os = "linux")]
            queued => self.drops += send_batch(socket, &self.bytes, queued),
            #[cfg(not(target_os = "linux"))]
            queued => {
                for (start, len, to) in queued {
                    if socket
                        .send_to(&self.bytes[*start..start + len], *to)
                        .is_err()
                    {
                        self.drops += 1;
                    }
                }
            }
        }
        self.queued.clear();
        self.bytes.clear();
    }
}

/// Sends `queued` (offset, length, destination in `bytes`) with as few `sendmmsg` calls as the
/// socket allows; returns how many datagrams it refused.
#[cfg(target_os = "linux")]
fn send_batch(socket: &UdpSocket, bytes: &[u8], queued: &[(usize, usize, SocketAddr)]) -> u64 {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
    use std::io::IoSlice;
    let n = queued.len().min(BATCH);
    let entry = |i: usize| queued.get(i).copied().unwrap_or((0, 0, NOWHERE));
    let addrs: [SocketAddrAny; BATCH] = std::array::from_fn(|i| SocketAddrAny::from(entry(i).2));
    let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
        let (start, len, _) = entry(i);
        [IoSlice::new(&bytes[start..start + len])]
    });
    let mut controls: [SendAncillaryBuffer<'_, '_, '_>; BATCH] =
        std::array::from_fn(|_| SendAncillaryBuffer::default());
    let mut i = 0;
    let mut msgs = controls.each_mut().map(|control| {
        let m = MMsgHdr::new_with_addr(&addrs[i], &iovs[i], control);
        i += 1;
        m
    });
    let (mut next, mut refused) = (0, 0);
    while next < n {
        match sendmmsg(socket, &mut msgs[next..n], SendFlags::DONTWAIT) {
            Ok(0) | Err(rustix::io::Errno::AGAIN) => {
                // The send buffer is full: what is left is dropped, as a lossy link would.
                refused += (n - next) as u64;
                break;
            }
            Ok(sent) => next += sent,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                // This datagram cannot be sent (unroutable, too big): skip it, send the rest.
                refused += 1;
                next += 1;
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sockets on loopback; the receiver's buffer holds a whole test's datagrams.
    fn pair() -> (UdpSocket, UdpSocket) {
        let bind = || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .expect("socket");
            s.set_recv_buffer_size(4 << 20).expect("buffer");
            s.set_nonblocking(true).expect("non-blocking");
            let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            s.bind(&addr.into()).expect("bind");
            UdpSocket::from_std(s.into())
        };
        (bind(), bind())
    }

    /// Waits until `socket` has a datagram queued (mio sockets are non-blocking).
    fn wait_readable(socket: &UdpSocket) {
        let mut buf = [0u8; 1];
        for _ in 0..1000 {
            if socket.peek_from(&mut buf).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// 70 datagrams of different sizes (up to the largest IPv4 UDP payload) go out through an
    /// outbox and come in through an inbox, in order, whole, with the right source; a short
    /// batch means the queue is empty.
    fn round_trip(batch: bool) {
        let (a, b) = pair();
        let to = b.local_addr().expect("addr");
        let from = a.local_addr().expect("addr");
        let sizes: Vec<usize> = (0..70).map(|i| [1, 120, 1200, 65_507][i % 4]).collect();
        let mut outbox = Outbox::new(batch);
        for (i, size) in sizes.iter().enumerate() {
            outbox.send(&a, &vec![i as u8; *size], to);
        }
        outbox.flush(&a);
        assert_eq!(outbox.drops, 0);
        let mut inbox = Inbox::new(batch);
        let mut got = Vec::new();
        while got.len() < sizes.len() {
            wait_readable(&b);
            let n = inbox.recv(&b).expect("datagrams are queued");
            for i in 0..n {
                let (data, source) = inbox.datagram(i);
                assert_eq!(source, from);
                got.push((data.len(), data.first().copied()));
            }
        }
        let want: Vec<_> = (0..70).map(|i| (sizes[i], Some(i as u8))).collect();
        assert_eq!(got, want);
        let empty = inbox.recv(&b);
        assert!(empty.is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock));
    }

    #[test]
    fn batched_datagrams_arrive_whole_and_in_order() {
        round_trip(true);
    }

    #[test]
    fn portable_datagrams_arrive_whole_and_in_order() {
        round_trip(false);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_batch_receive_takes_up_to_a_batch_in_one_call() {
        let (a, b) = pair();
        let to = b.local_addr().expect("addr");
        for i in 0..(BATCH + 5) {
            a.send_to(&[i as u8; 10], to).expect("send");
        }
        let mut inbox = Inbox::new(true);
        wait_readable(&b);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(inbox.recv(&b).expect("first batch"), BATCH);
        assert_eq!(inbox.recv(&b).expect("the rest"), 5);
        assert_eq!(inbox.datagram(4).0, &[(BATCH + 4) as u8; 10]);
    }

    #[test]
    fn an_unsendable_datagram_is_counted_and_the_rest_still_go() {
        let (a, b) = pair();
        let to = b.local_addr().expect("addr");
        let mut outbox = Outbox::new(true);
        outbox.send(&a, b"first", to);
        // An IPv6 destination on an IPv4 socket cannot be sent to.
        outbox.send(&a, b"lost", "[::1]:9".parse().expect("addr"));
        outbox.send(&a, b"third", to);
        outbox.flush(&a);
        assert_eq!(outbox.drops, 1);
        let mut inbox = Inbox::new(false);
        let mut got = Vec::new();
        for _ in 0..2 {
            wait_readable(&b);
            inbox.recv(&b).expect("datagram");
            got.push(inbox.datagram(0).0.to_vec());
        }
        assert_eq!(got, [b"first".to_vec(), b"third".to_vec()]);
    }
}
