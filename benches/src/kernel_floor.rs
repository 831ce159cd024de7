//! The kernel floor: what sending a media server's datagrams costs the sending thread with
//! nothing else to do, so that no user-space server can beat it on this machine. A bare loop
//! sends the traffic a scenario's server forwards (the same destinations, rates, sizes and
//! bursts) to receivers that wait in epoll like real clients, with each way of sending:
//! one `sendto` per datagram, `sendmmsg` batches, and UDP GSO for each destination's burst.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tern_udp::Outbox;

/// What the server of a scenario sends each receiver.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    /// Receivers (subscriber connections).
    pub destinations: usize,
    /// Video datagrams per second each receiver gets, in bursts of `video_burst` (a frame).
    pub video_per_sec: u32,
    /// Datagrams per video burst.
    pub video_burst: u32,
    /// Bytes per video datagram (SRTP included).
    pub video_bytes: usize,
    /// Audio datagrams per second each receiver gets, one at a time.
    pub audio_per_sec: u32,
    /// Bytes per audio datagram.
    pub audio_bytes: usize,
}

impl Traffic {
    /// What tern's load benches send: audio 50 packets/s of about 150 bytes, video 90 packets/s
    /// of about 1,150 bytes in bursts of three (one frame), per publisher a receiver gets.
    fn per_publisher(destinations: usize, publishers: u32) -> Traffic {
        Traffic {
            destinations,
            video_per_sec: 90 * publishers,
            video_burst: 3,
            video_bytes: 1150,
            audio_per_sec: 50 * publishers,
            audio_bytes: 150,
        }
    }

    /// A meeting of `n`: everyone receives everyone else.
    pub fn meeting(n: usize) -> Traffic {
        Self::per_publisher(n, n.saturating_sub(1) as u32)
    }

    /// A livestream: `n` subscribers receive one publisher.
    pub fn livestream(n: usize) -> Traffic {
        Self::per_publisher(n, 1)
    }

    /// Datagrams per second over all receivers.
    pub fn rate(&self) -> f64 {
        self.destinations as f64 * f64::from(self.video_per_sec + self.audio_per_sec)
    }
}

/// A way of sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One `sendto` per datagram.
    SendTo,
    /// Batches of up to [`tern_udp::BATCH`] datagrams per `sendmmsg`.
    SendMmsg,
    /// A burst to one receiver in one `sendmsg` with `UDP_SEGMENT`; the rest by `sendmmsg`.
    Gso,
}

/// The sending thread's CPU per datagram with one method.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// The method.
    pub method: Method,
    /// Nanoseconds of the sending thread's CPU per datagram.
    pub ns_per_datagram: f64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the receivers got (fewer means the kernel dropped some: the figure is then
    /// too low to trust).
    pub received: u64,
}

/// Measures every method for `secs` each; the floor is the cheapest.
pub fn measure(traffic: Traffic, secs: f64) -> Vec<Cost> {
    [Method::SendTo, Method::SendMmsg, Method::Gso]
        .into_iter()
        .map(|m| run(traffic, m, Duration::from_secs_f64(secs)))
        .collect()
}

/// The cheapest cost among `costs` whose datagrams all arrived.
pub fn floor(costs: &[Cost]) -> Option<Cost> {
    costs
        .iter()
        .filter(|c| c.received >= c.sent)
        .min_by(|a, b| a.ns_per_datagram.total_cmp(&b.ns_per_datagram))
        .copied()
}

fn run(traffic: Traffic, method: Method, length: Duration) -> Cost {
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let (addrs, receivers) = receivers(traffic.destinations, stop.clone(), received.clone());
    let sender = std::thread::spawn(move || send(traffic, method, &addrs, length));
    let (sent, cpu) = sender.join().expect("sender");
    // Let the receivers take what is in flight before counting.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let _ = receivers.join();
    Cost {
        method,
        ns_per_datagram: cpu.as_nanos() as f64 / sent.max(1) as f64,
        sent,
        received: received.load(Ordering::Relaxed),
    }
}

/// Receivers on loopback, each a task waiting for readiness on one thread (like clients).
fn receivers(
    n: usize,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> (Vec<SocketAddr>, std::thread::JoinHandle<()>) {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .expect("socket");
            let _ = s.set_recv_buffer_size(1 << 20);
            s.set_nonblocking(true).expect("non-blocking");
            let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            s.bind(&any.into()).expect("bind");
            s.into()
        })
        .collect();
    let addrs = sockets
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let tasks: Vec<_> = sockets
                .into_iter()
                .map(|s| {
                    let (stop, received) = (stop.clone(), received.clone());
                    tokio::spawn(async move {
                        let s = tokio::net::UdpSocket::from_std(s).expect("tokio socket");
                        let mut buf = [0u8; 2048];
                        while !stop.load(Ordering::Relaxed) {
                            let wait = tokio::time::timeout(
                                Duration::from_millis(50),
                                s.recv_from(&mut buf),
                            );
                            if let Ok(Ok(_)) = wait.await {
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        });
    });
    (addrs, thread)
}

/// CPU time this thread has run (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Sends `traffic` for `length`, a millisecond's worth at a time; returns the datagrams sent and
/// the CPU the sending took.
fn send(traffic: Traffic, method: Method, to: &[SocketAddr], length: Duration) -> (u64, Duration) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("non-blocking");
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(4 << 20);
    let mut outbox = Outbox::new(method != Method::SendTo);
    let video = vec![0x80u8; traffic.video_bytes * traffic.video_burst as usize];
    let audio = vec![0x80u8; traffic.audio_bytes];
    let start = Instant::now();
    let (mut cpu, mut sent) = (Duration::ZERO, 0u64);
    let mut tick = 0u32;
    // Receivers are spread over each period so that bursts do not all fall in one millisecond.
    let frame_ms = 1000 * traffic.video_burst / traffic.video_per_sec.max(1);
    let audio_ms = 1000 / traffic.audio_per_sec.max(1);
    while start.elapsed() < length {
        let cpu0 = thread_cpu();
        for (i, dest) in to.iter().enumerate() {
            let i = i as u32;
            if traffic.video_per_sec > 0 && (tick + i).is_multiple_of(frame_ms.max(1)) {
                let burst = traffic.video_burst as usize;
                if method == Method::Gso && burst > 1 {
                    let ok =
                        tern_udp::send_segments(&socket, &video, traffic.video_bytes as u16, *dest);
                    if ok.is_ok() {
                        sent += burst as u64;
                    }
                } else {
                    for k in 0..burst {
                        let chunk = &video[k * traffic.video_bytes..(k + 1) * traffic.video_bytes];
                        outbox.send(&socket, chunk, *dest);
                    }
                }
            }
            if traffic.audio_per_sec > 0 && (tick + i).is_multiple_of(audio_ms.max(1)) {
                outbox.send(&socket, &audio, *dest);
            }
        }
        outbox.flush(&socket);
        // The sending only: the timer wake-ups between milliseconds are the loop's, not the
        // datagrams'.
        cpu += thread_cpu().saturating_sub(cpu0);
        tick += 1;
        let next = start + Duration::from_millis(u64::from(tick));
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    (sent + outbox.sent, cpu)
}
