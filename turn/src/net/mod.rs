//! The relay's shell: worker threads, each with its own mio poll, its own SO_REUSEPORT UDP and
//! TCP/TLS listeners, the relay sockets of its allocations and one sans-IO [`Server`]. No task
//! or thread per allocation: a relay socket is a slab entry and a poll registration.

mod relays;
mod stream;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

use crate::server::{Server, ServerConfig, Shared, Stats};

/// Sockets and threads.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// UDP and TCP listening addresses (port 0 picks a free one, shared by all workers).
    pub listen: Vec<SocketAddr>,
    /// TLS listening addresses; used only with `tls`.
    pub tls_listen: Vec<SocketAddr>,
    /// The TLS certificate and key, if TLS is offered.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Receive and send buffer of each listening UDP socket, in bytes (0 keeps the OS default).
    pub socket_buffer: usize,
    /// Receive and send buffer of each relay socket, in bytes (0 keeps the OS default).
    pub relay_socket_buffer: usize,
    /// Batch UDP I/O with `recvmmsg`/`sendmmsg` (Linux); false, or another OS, takes the
    /// portable path of one `recv_from`/`send_to` per datagram.
    pub batch: bool,
}

/// A running relay. Dropping it stops the workers.
#[derive(Debug)]
pub struct Relay {
    stop: Arc<AtomicBool>,
    wakers: Vec<Arc<mio::Waker>>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<Vec<Mutex<Stats>>>,
    shared: Arc<Shared>,
    /// Bound UDP listening addresses.
    pub udp_addrs: Vec<SocketAddr>,
    /// Bound TCP listening addresses.
    pub tcp_addrs: Vec<SocketAddr>,
    /// Bound TLS listening addresses.
    pub tls_addrs: Vec<SocketAddr>,
}

/// One worker's listening sockets.
struct Listeners {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<(std::net::TcpListener, bool)>,
}

impl Relay {
    /// Binds every listener on every worker and starts the workers.
    pub fn start(config: ServerConfig, net: NetConfig) -> io::Result<Self> {
        let workers = match net.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut per_worker: Vec<Listeners> = (0..workers)
            .map(|_| Listeners {
                udp: Vec::new(),
                tcp: Vec::new(),
            })
            .collect();
        let (mut udp_addrs, mut tcp_addrs, mut tls_addrs) = (Vec::new(), Vec::new(), Vec::new());
        for addr in &net.listen {
            let (udp, tcp) = bind_udp_and_tcp(*addr, &mut per_worker, net.socket_buffer)?;
            udp_addrs.push(udp);
            tcp_addrs.push(tcp);
        }
        if net.tls.is_some() {
            for addr in &net.tls_listen {
                tls_addrs.push(bind_all(*addr, &mut per_worker, |a| {
                    tcp_listener(a).map(|s| Bound::Tcp(s, true))
                })?);
            }
        }
        let config = Arc::new(config);
        let shared = Arc::new(Shared::new(&config));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(
            (0..workers)
                .map(|_| Mutex::new(Stats::default()))
                .collect::<Vec<_>>(),
        );
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (mut wakers, mut threads) = (Vec::new(), Vec::new());
        for (i, listeners) in per_worker.into_iter().enumerate() {
            let server = Server::new(config.clone(), shared.clone(), Instant::now(), unix);
            let w = worker::Worker::new(i, server, listeners, &net, stop.clone(), stats.clone())?;
            wakers.push(w.waker());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("tern-turn-{i}"))
                    .spawn(move || w.run())?,
            );
        }
        Ok(Self {
            stop,
            wakers,
            threads,
            stats,
            shared,
            udp_addrs,
            tcp_addrs,
            tls_addrs,
        })
    }

    /// Counters summed over the workers (gauges as of their last second).
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for s in self.stats.iter() {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            total.allocations += s.allocations;
            total.permissions += s.permissions;
            total.channels += s.channels;
            total.to_peer_packets += s.to_peer_packets;
            total.to_peer_bytes += s.to_peer_bytes;
            total.to_client_packets += s.to_client_packets;
            total.to_client_bytes += s.to_client_bytes;
            for (k, v) in &s.dropped {
                *total.dropped.entry(*k).or_default() += v;
            }
            for (k, v) in &s.auth_failures {
                *total.auth_failures.entry(k).or_default() += v;
            }
            for (k, v) in &s.refused_peers {
                *total.refused_peers.entry(k).or_default() += v;
            }
            for (k, v) in &s.errors {
                *total.errors.entry(*k).or_default() += v;
            }
        }
        total
    }

    /// Revokes `user` (the `user` of REST `expiry:user` names) until Unix time `until`: its
    /// credentials are refused and its allocations end within a second.
    pub fn revoke_user(&self, user: &str, until: u64) {
        self.shared.revoke(user, until);
    }

    /// Allocations alive now on every worker.
    pub fn allocations(&self) -> u32 {
        self.shared.allocations()
    }

    /// Stops the workers and waits for them; every allocation is released.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Tells the workers to stop (they release every allocation) without waiting for them.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.wakers {
            let _ = w.wake();
        }
    }

    fn shutdown(&mut self) {
        self.signal_stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Bound {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener, bool),
}

/// Binds UDP on `addr` and TCP on the port UDP got, so `:0` still gives one port for both. With
/// `:0`, a port whose TCP side another socket holds is given back and another one tried.
fn bind_udp_and_tcp(
    addr: SocketAddr,
    workers: &mut [Listeners],
    buffer: usize,
) -> io::Result<(SocketAddr, SocketAddr)> {
    let tries = if addr.port() == 0 { 16 } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before: Vec<(usize, usize)> =
            workers.iter().map(|w| (w.udp.len(), w.tcp.len())).collect();
        let udp = bind_all(addr, workers, |a| udp_listener(a, buffer).map(Bound::Udp))?;
        match bind_all(udp, workers, |a| {
            tcp_listener(a).map(|s| Bound::Tcp(s, false))
        }) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < tries => {
                for (w, (u, t)) in workers.iter_mut().zip(before) {
                    w.udp.truncate(u);
                    w.tcp.truncate(t);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Binds `addr` once per worker with SO_REUSEPORT; the first bind fixes the port.
fn bind_all(
    addr: SocketAddr,
    workers: &mut [Listeners],
    bind: impl Fn(SocketAddr) -> io::Result<Bound>,
) -> io::Result<SocketAddr> {
    let mut actual = addr;
    for (i, w) in workers.iter_mut().enumerate() {
        let bound = bind(actual)?;
        let local = match &bound {
            Bound::Udp(s) => s.local_addr()?,
            Bound::Tcp(s, _) => s.local_addr()?,
        };
        if i == 0 {
            actual = local;
        }
        match bound {
            Bound::Udp(s) => w.udp.push(s),
            Bound::Tcp(s, tls) => w.tcp.push((s, tls)),
        }
    }
    Ok(actual)
}

fn socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn udp_listener(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP)?;
    if buffer > 0 {
        s.set_recv_buffer_size(buffer)?;
        s.set_send_buffer_size(buffer)?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// rustls's aws-lc-rs provider with the hybrid post-quantum key exchange X25519MLKEM768 first,
/// then X25519, P-256 and P-384 for clients that do not offer it.
pub fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![
        kx_group::X25519MLKEM768,
        kx_group::X25519,
        kx_group::SECP256R1,
        kx_group::SECP384R1,
    ];
    Arc::new(provider)
}

/// A certificate chain and its private key from PEM files, ready to sign handshakes.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("reading {}: {e}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("reading {}: {e}", key.display()))?;
    let signing = tls_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("TLS private key: {e}"))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, signing)))
}

/// A TLS server config from PEM files: a certificate chain and its private key.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certified = load_certified_key(cert, key)?;
    let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(certified));
    let config = rustls::ServerConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}
