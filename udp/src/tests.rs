//! Batched and portable datagram I/O over real loopback sockets.

use super::*;
use std::net::UdpSocket;

/// Two non-blocking sockets on loopback; the receiver's buffer holds a whole test's datagrams.
fn pair() -> (UdpSocket, UdpSocket) {
    let bind = || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        s.set_recv_buffer_size(4 << 20).expect("buffer");
        s.set_nonblocking(true).expect("non-blocking");
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        s.bind(&addr.into()).expect("bind");
        UdpSocket::from(s)
    };
    (bind(), bind())
}

/// Waits until `socket` has a datagram queued.
fn wait_readable(socket: &UdpSocket) {
    let mut buf = [0u8; 1];
    for _ in 0..1000 {
        if socket.peek_from(&mut buf).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Everything queued at `socket` now, payloads in arrival order.
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut inbox = Inbox::new(false, MAX_DATAGRAM);
    let mut got = Vec::new();
    while inbox.recv(socket).is_ok() {
        got.push(inbox.datagram(0).0.to_vec());
    }
    got
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
    assert_eq!((outbox.drops, outbox.sent), (0, 70));
    let mut inbox = Inbox::new(batch, MAX_DATAGRAM);
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
    let mut inbox = Inbox::new(true, MAX_DATAGRAM);
    wait_readable(&b);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(inbox.recv(&b).expect("first batch"), BATCH);
    assert_eq!(inbox.recv(&b).expect("the rest"), 5);
    assert_eq!(inbox.datagram(4).0, &[(BATCH + 4) as u8; 10]);
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_batch_leaves_in_one_call_without_a_flush() {
    let (a, b) = pair();
    let to = b.local_addr().expect("addr");
    let mut outbox = Outbox::new(true);
    for i in 0..BATCH {
        assert_eq!(outbox.calls, 0, "nothing goes before the batch is full");
        outbox.send(&a, &[i as u8; 100], to);
    }
    assert_eq!(
        (outbox.calls, outbox.sent, outbox.queued()),
        (1, BATCH as u64, 0)
    );
    let want: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![i as u8; 100]).collect();
    assert_eq!(drain(&b), want);
}

#[cfg(target_os = "linux")]
#[test]
fn a_partial_batch_waits_for_the_flush() {
    let (a, b) = pair();
    let to = b.local_addr().expect("addr");
    let mut outbox = Outbox::new(true);
    for i in 0..5u8 {
        outbox.send(&a, &[i; 1200], to);
    }
    assert_eq!((outbox.calls, outbox.queued()), (0, 5));
    assert!(drain(&b).is_empty(), "a partial batch is held");
    outbox.flush(&a);
    assert_eq!((outbox.calls, outbox.sent, outbox.drops), (1, 5, 0));
    let want: Vec<Vec<u8>> = (0..5).map(|i| vec![i; 1200]).collect();
    assert_eq!(drain(&b), want);
    outbox.flush(&a);
    assert_eq!(outbox.calls, 1, "an empty flush makes no call");
}

/// One datagram the kernel refuses in the middle of a full batch is counted; the ones before
/// and after it all go, in order.
fn refused_in_the_middle(batch: bool) {
    let (a, b) = pair();
    let to = b.local_addr().expect("addr");
    // An IPv6 destination on an IPv4 socket cannot be sent to.
    let unsendable: SocketAddr = "[::1]:9".parse().expect("addr");
    let mut outbox = Outbox::new(batch);
    for i in 0..BATCH {
        let dest = if i == BATCH / 2 { unsendable } else { to };
        outbox.send(&a, &[i as u8; 50], dest);
    }
    outbox.flush(&a);
    assert_eq!((outbox.drops, outbox.sent), (1, BATCH as u64 - 1));
    let want: Vec<Vec<u8>> = (0..BATCH)
        .filter(|i| *i != BATCH / 2)
        .map(|i| vec![i as u8; 50])
        .collect();
    assert_eq!(drain(&b), want);
}

#[test]
fn a_refused_datagram_in_the_middle_of_a_batch_is_counted_and_the_rest_go() {
    refused_in_the_middle(true);
}

#[test]
fn a_refused_datagram_on_the_portable_path_is_counted_and_the_rest_go() {
    refused_in_the_middle(false);
}

/// A datagram longer than the slots is cut to their length; the next one is whole.
fn cut_to_the_slot(batch: bool) {
    let (a, b) = pair();
    let to = b.local_addr().expect("addr");
    a.send_to(&[7u8; 3000], to).expect("send");
    a.send_to(&[8u8; 100], to).expect("send");
    wait_readable(&b);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut inbox = Inbox::new(batch, 2048);
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = inbox.recv(&b).expect("datagrams are queued");
        got.extend((0..n).map(|i| inbox.datagram(i).0.to_vec()));
    }
    assert_eq!(got, [vec![7u8; 2048], vec![8u8; 100]]);
}

#[test]
fn a_datagram_longer_than_a_slot_is_cut_batched() {
    cut_to_the_slot(true);
}

#[test]
fn a_datagram_longer_than_a_slot_is_cut_portable() {
    cut_to_the_slot(false);
}

#[cfg(target_os = "linux")]
#[test]
fn segments_arrive_as_separate_datagrams() {
    let (a, b) = pair();
    let to = b.local_addr().expect("addr");
    let mut bytes = Vec::new();
    for i in 0..4u8 {
        bytes.extend_from_slice(&[i; 1000]);
    }
    bytes.extend_from_slice(&[9u8; 300]);
    send_segments(&a, &bytes, 1000, to).expect("GSO send");
    let mut want: Vec<Vec<u8>> = (0..4).map(|i| vec![i; 1000]).collect();
    want.push(vec![9; 300]);
    assert_eq!(drain(&b), want);
}

#[cfg(target_os = "linux")]
#[test]
fn a_batch_receive_keeps_each_datagrams_kernel_receive_time() {
    let (a, b) = pair();
    enable_receive_times(&b).expect("SO_TIMESTAMPNS");
    // The kernel switches receive time-stamping on a moment later (a static key flipped from
    // a workqueue); until then a datagram carries the time it was read, not when it arrived.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = SystemTime::now();
    for i in 0..5u8 {
        a.send_to(&[i], b.local_addr().expect("addr"))
            .expect("send");
    }
    wait_readable(&b);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let after = SystemTime::now();
    let mut inbox = Inbox::new(true, 2048).with_receive_times();
    assert_eq!(inbox.recv(&b).expect("datagrams are queued"), 5);
    let times: Vec<SystemTime> = (0..5)
        .map(|i| inbox.received_at(i).expect("a receive time"))
        .collect();
    assert!(
        times.iter().all(|t| (before..=after).contains(t)),
        "{times:?}"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in arrival order");
}

#[test]
fn an_inbox_without_receive_times_reports_none() {
    let (a, b) = pair();
    a.send_to(&[1], b.local_addr().expect("addr"))
        .expect("send");
    wait_readable(&b);
    let mut inbox = Inbox::new(true, 2048);
    assert_eq!(inbox.recv(&b).expect("a datagram is queued"), 1);
    assert_eq!(inbox.received_at(0), None);
}
