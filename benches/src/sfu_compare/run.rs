//! Runs one scenario against one server: publishers join and publish, then subscribers
//! subscribe, then after a warm-up the server's CPU and memory and what the subscribers
//! receive are measured over a window.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::Error;
use super::client::{Client, Report, Shared};
use super::janus_api::JanusTarget;
use super::tern::TernTarget;
use crate::proc_stats;

/// The server under test.
#[derive(Clone, Debug)]
pub enum Target {
    /// tern.
    Tern(TernTarget),
    /// Janus with its VideoRoom plugin.
    Janus(JanusTarget),
}

/// Who does what.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Participants that publish audio and video (indexes `0..publishers`).
    pub publishers: u32,
    /// Whether each publisher also receives every other one (a meeting).
    pub publishers_subscribe: bool,
    /// Receive-only participants, who receive every publisher.
    pub viewers: u32,
    /// Simulcast rids, lowest first; empty for one layer.
    pub rids: Vec<&'static str>,
    /// Time between everyone receiving and the window.
    pub warmup: Duration,
    /// The measurement window.
    pub window: Duration,
    /// Clients setting up at once.
    pub setup_concurrency: usize,
}

impl Plan {
    /// How many participants receive publisher `p`'s media.
    pub fn receivers_of_each(&self) -> u32 {
        let peers = if self.publishers_subscribe {
            self.publishers - 1
        } else {
            0
        };
        peers + self.viewers
    }

    /// The participants that receive.
    pub fn receivers(&self) -> u32 {
        if self.publishers_subscribe {
            self.participants()
        } else {
            self.viewers
        }
    }

    /// Everyone.
    pub fn participants(&self) -> u32 {
        self.publishers + self.viewers
    }

    /// The video layer subscribers get: the top one.
    pub fn forwarded_layer(&self) -> u8 {
        self.rids.len().saturating_sub(1) as u8
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Every client's report, publishers first.
    pub reports: Vec<Report>,
    /// Subscribers that received every stream they expected before the window.
    pub ready: usize,
    /// The window as it was.
    pub window: Duration,
    /// The server's CPU seconds in the window.
    pub server_cpu_s: f64,
    /// This process's (the load generator's) CPU seconds in the window.
    pub generator_cpu_s: f64,
    /// The whole machine's busy share in the window (1.0 = every core busy).
    pub machine_busy: f64,
    /// The server's RSS before any client, and at the end of the window, KiB.
    pub rss_kib: (u64, u64),
    /// Datagrams the kernel dropped for full receive and send buffers in the window.
    pub udp_drops: (u64, u64),
    /// tern's own count of forwarded packets in the window, when the server is tern.
    pub tern_forwarded: Option<f64>,
    /// tern's forwarding latency in the window, when the server is tern: the upper bounds
    /// (µs) of the buckets holding its median and its 99th percentile.
    pub tern_latency_us: Option<(f64, f64)>,
    /// tern's heap (live allocations) before any client and at the end of the window, KiB,
    /// when the server is the `tern` binary (which exports it).
    pub tern_heap_kib: Option<(f64, f64)>,
}

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Phase {
    Publish,
    Subscribe,
    Stop,
}

async fn phase_reached(mut rx: watch::Receiver<Phase>, p: Phase) {
    let _ = rx.wait_for(|x| *x >= p).await;
}

/// Runs `plan` against `target`, whose process is `pid`.
pub async fn run(target: &Target, pid: u32, plan: &Plan) -> Result<Outcome, Error> {
    let window = plan.window;
    run_with(target, pid, plan, Shared::default(), async |_: &Shared| {
        tokio::time::sleep(window).await
    })
    .await
}

/// Like [`run`], with the clients sharing `shared` (its epoch should be now), and with the
/// window lasting as long as `window` runs (rather than `plan.window`); `window` is called as
/// it opens, with the clients' shared state.
pub async fn run_with(
    target: &Target,
    pid: u32,
    plan: &Plan,
    shared: Shared,
    window: impl AsyncFnOnce(&Shared),
) -> Result<Outcome, Error> {
    let idle_rss = proc_stats::rss_kib(pid);
    let idle_heap = match target {
        Target::Tern(t) => super::tern::heap_allocated_kib(t.http).await.ok(),
        Target::Janus(_) => None,
    };
    let shared = Arc::new(shared);
    if let Target::Janus(j) = target {
        let mut admin = Client::janus_connect(j, u32::MAX, shared.clone()).await?;
        admin
            .janus_create_room(j.room, plan.publishers as usize + 1)
            .await?;
    }
    let (phase_tx, phase_rx) = watch::channel(Phase::Publish);
    let published = Arc::new(AtomicUsize::new(0));
    let settled = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(plan.setup_concurrency));
    let mut tasks = Vec::new();
    for index in 0..plan.participants() {
        let (target, plan, shared) = (target.clone(), plan.clone(), shared.clone());
        let (rx, permits) = (phase_rx.clone(), permits.clone());
        let counters = (published.clone(), settled.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            participant(target, plan, index, shared, rx, permits, counters)
                .await
                .map_err(|e| format!("participant {index}: {e}").into())
        }));
    }
    let failed = |tasks: &[tokio::task::JoinHandle<_>]| tasks.iter().any(|t| t.is_finished());
    let setup_limit = Duration::from_secs(30) + Duration::from_millis(100) * plan.participants();
    let deadline = Instant::now() + setup_limit;
    while published.load(Ordering::Relaxed) < plan.publishers as usize {
        if failed(&tasks) || Instant::now() > deadline {
            return Err(first_error(tasks, "publishers did not all connect").await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = phase_tx.send(Phase::Subscribe);
    let receivers = plan.receivers() as usize;
    let deadline = Instant::now() + setup_limit;
    while settled.load(Ordering::Relaxed) < receivers {
        if failed(&tasks) || Instant::now() > deadline {
            return Err(first_error(tasks, "subscribers did not all set up").await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(plan.warmup).await;

    let tern_http = match target {
        Target::Tern(t) => Some(t.http),
        Target::Janus(_) => None,
    };
    let (fwd0, lat0) = match tern_http {
        Some(h) => (
            Some(super::tern::forwarded_total(h).await?),
            super::tern::forward_latency(h).await?,
        ),
        None => (None, Vec::new()),
    };
    let t0 = Instant::now();
    shared
        .window
        .open(t0.duration_since(shared.epoch).as_micros() as u64);
    let (cpu0, gen0) = (proc_stats::cpu_seconds(pid), proc_stats::own_cpu_seconds());
    let (busy0, udp0) = (machine_jiffies(), proc_stats::udp_buffer_errors());
    window(&shared).await;
    let t1 = Instant::now();
    shared
        .window
        .close(t1.duration_since(shared.epoch).as_micros() as u64);
    let (cpu1, gen1) = (proc_stats::cpu_seconds(pid), proc_stats::own_cpu_seconds());
    let (busy1, udp1) = (machine_jiffies(), proc_stats::udp_buffer_errors());
    let loaded_rss = proc_stats::rss_kib(pid);
    let tern_forwarded = match (tern_http, fwd0) {
        (Some(h), Some(f0)) => Some(super::tern::forwarded_total(h).await? - f0),
        _ => None,
    };
    let tern_latency_us = match tern_http {
        Some(h) => {
            let lat1 = super::tern::forward_latency(h).await?;
            let q = |q| super::tern::latency_quantile(&lat0, &lat1, q).map(|s| s * 1e6);
            q(0.5).zip(q(0.99))
        }
        None => None,
    };
    let tern_heap_kib = match (tern_http, idle_heap) {
        (Some(h), Some(idle)) => super::tern::heap_allocated_kib(h)
            .await
            .ok()
            .map(|loaded| (idle, loaded)),
        _ => None,
    };
    let _ = phase_tx.send(Phase::Stop);
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await??);
    }
    Ok(Outcome {
        reports,
        ready: ready.load(Ordering::Relaxed),
        window: t1 - t0,
        server_cpu_s: cpu1 - cpu0,
        generator_cpu_s: gen1 - gen0,
        machine_busy: (busy1.0 - busy0.0) as f64 / (busy1.1 - busy0.1).max(1) as f64,
        rss_kib: (idle_rss, loaded_rss),
        udp_drops: (udp1.0.saturating_sub(udp0.0), udp1.1.saturating_sub(udp0.1)),
        tern_forwarded,
        tern_latency_us,
        tern_heap_kib,
    })
}

async fn first_error(
    tasks: Vec<tokio::task::JoinHandle<Result<Report, Error>>>,
    otherwise: &str,
) -> Error {
    for t in tasks {
        if t.is_finished() {
            match t.await {
                Ok(Err(e)) => return e,
                Err(e) => return e.into(),
                Ok(Ok(_)) => {}
            }
        } else {
            t.abort();
        }
    }
    otherwise.into()
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

type Counters = (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>);

async fn connect(target: &Target, index: u32, shared: Arc<Shared>) -> Result<Client, Error> {
    match target {
        Target::Tern(t) => Client::tern_join(t, index, shared).await,
        Target::Janus(j) => Client::janus_connect(j, index, shared).await,
    }
}

/// One participant's whole life.
async fn participant(
    target: Target,
    plan: Plan,
    index: u32,
    shared: Arc<Shared>,
    phase: watch::Receiver<Phase>,
    permits: Arc<Semaphore>,
    (published, settled, ready): Counters,
) -> Result<Report, Error> {
    let publishes = index < plan.publishers;
    let mut client = None;
    if publishes {
        let permit = permits.acquire().await?;
        let mut c = connect(&target, index, shared.clone()).await?;
        match &target {
            Target::Tern(_) => c.tern_publish(&plan.rids).await?,
            Target::Janus(j) => c.janus_publish(j.room, &plan.rids).await?,
        }
        if !c
            .run_until(Duration::from_secs(20), Client::publisher_connected)
            .await?
        {
            let io = c.publisher.as_ref().map(|p| p.peer.datagrams);
            return Err(
                format!("publisher {index} did not connect (datagrams in, out: {io:?})").into(),
            );
        }
        drop(permit);
        published.fetch_add(1, Ordering::Relaxed);
        c.run_while_pending(phase_reached(phase.clone(), Phase::Subscribe))
            .await?;
        client = Some(c);
    } else {
        phase_reached(phase.clone(), Phase::Subscribe).await;
    }
    let subscribes = !publishes || plan.publishers_subscribe;
    let from: Vec<u32> = (0..plan.publishers).filter(|&p| p != index).collect();
    if subscribes {
        let permit = permits.acquire().await?;
        let mut c = match client.take() {
            Some(c) => c,
            None => connect(&target, index, shared.clone()).await?,
        };
        if let Target::Janus(j) = &target {
            c.janus_subscribe(j.room, &from).await?;
        }
        drop(permit);
        let layers = [plan.forwarded_layer()];
        let limit = Duration::from_secs(20) + Duration::from_millis(50) * plan.participants();
        if c.run_until(limit, |c| c.receives_all(&from, &layers))
            .await?
        {
            ready.fetch_add(1, Ordering::Relaxed);
        }
        settled.fetch_add(1, Ordering::Relaxed);
        client = Some(c);
    }
    let mut c = client.ok_or("a participant that neither publishes nor subscribes")?;
    c.run_while_pending(phase_reached(phase, Phase::Stop))
        .await?;
    Ok(c.report())
}

/// The load generator's runtime: a tokio worker per core. Returns it with the core count.
pub fn generator_runtime() -> (tokio::runtime::Runtime, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    (rt, cores)
}
