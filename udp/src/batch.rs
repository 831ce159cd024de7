//! The Linux system calls behind [`crate::Inbox`] and [`crate::Outbox`]: `recvmmsg` and
//! `sendmmsg`.
#![cfg(target_os = "linux")]

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, SystemTime};

use super::{BATCH, NOWHERE};

/// Fills up to a batch of `slots` from `socket` in one `recvmmsg`; returns how many. Each
/// datagram's length and source go to `received`, and its kernel receive time, if the headers
/// have room for one and the kernel gave one, to `received_at`.
pub(crate) fn recv(
    socket: &impl AsFd,
    headers: &mut nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    slots: &mut [u8],
    slot: usize,
    (received, received_at): (
        &mut [(usize, SocketAddr); BATCH],
        &mut [Option<SystemTime>; BATCH],
    ),
) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmmsg};
    use std::io::IoSliceMut;
    let mut chunks = slots.chunks_exact_mut(slot);
    let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
        std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or(&mut []))]);
    let results = recvmmsg(
        socket.as_fd().as_raw_fd(),
        headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    let mut n = 0;
    for ((msg, slot), at) in results.zip(received.iter_mut()).zip(received_at.iter_mut()) {
        *at = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmTimestampns(t) => {
                    let since = Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32);
                    SystemTime::UNIX_EPOCH.checked_add(since)
                }
                _ => None,
            })
        });
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

/// Sends `queued` (offset, length, destination in `bytes`) with as few `sendmmsg` calls as the
/// socket allows; returns how many datagrams it refused and how many calls it made.
pub(crate) fn send(
    socket: &impl AsFd,
    bytes: &[u8],
    queued: &[(usize, usize, SocketAddr)],
) -> (u64, u64) {
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
    let (mut next, mut refused, mut calls) = (0, 0, 0);
    while next < n {
        calls += 1;
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
    (refused, calls)
}

/// One `sendmsg` with a `UDP_SEGMENT` control message.
pub(crate) fn send_segments(
    socket: &impl AsFd,
    bytes: &[u8],
    segment: u16,
    to: SocketAddr,
) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
    let to = SockaddrStorage::from(to);
    let iov = [std::io::IoSlice::new(bytes)];
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    sendmsg(
        socket.as_fd().as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_DONTWAIT,
        Some(&to),
    )
    .map(|_| ())
    .map_err(io::Error::from)
}
