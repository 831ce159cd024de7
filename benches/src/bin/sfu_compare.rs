//! tern beside Janus 1.1 (VideoRoom): the same publishers (Opus-framed audio at 50 packets/s,
//! VP8-framed video at 30 frames/s of 3 packets, ~0.8 Mbit/s, a keyframe every 2 s; synthetic
//! payloads that the subscribers verify byte for byte, nothing is encoded or decoded) fanned
//! out to the same receive-only subscribers, through tern and then through Janus, on
//! loopback. Per scenario a table: server CPU per forwarded packet (schedstat), forwarded
//! packets per second per core, subscriber loss, jitter and transit (publisher's send to
//! subscriber's receive, p50 and p99), server RSS, the load generator's own CPU, and the
//! ratios; for tern also its heap and its own forwarding latency histogram (`/metrics`). Then the kernel floor for the same traffic (see
//! `tern_benches::kernel_floor`) and each server's CPU per forwarded packet as a multiple of it.
//!
//! Scenarios: `meeting N` (N participants, each publishes and receives all the others) and
//! `live N` (one publisher, N receive-only subscribers). Default: meeting 4 10 25 and live 50
//! 200 500. `--simulcast`: every camera sends three layers (q, h, f; each at the full rate and
//! size, so publishers send three times the video) and subscribers get f.
//! `--window S`: seconds measured (default 10). `--only tern|janus`.
//!
//! cargo build --release -p tern-server && \
//!   cargo run --release -p tern-benches --bin sfu_compare -- meeting 4 live 50
//!
//! Needs root (it runs in a network namespace of its own, see `sfu_compare::netns`) and
//! Debian's `janus` package.

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;
#[path = "shared/tern_process.rs"]
#[allow(dead_code)] // each bench uses a different part
mod tern_process;

use std::time::Duration;

use tern_benches::kernel_floor::{self, Traffic};
use tern_benches::sfu_compare::figures::{Figures, table};
use tern_benches::sfu_compare::janus::Janus;
use tern_benches::sfu_compare::janus_api::JanusTarget;
use tern_benches::sfu_compare::run::{Plan, Target, run};
use tern_benches::sfu_compare::tern::TernTarget;
use tern_benches::sfu_compare::{Error, netns};

/// Media threads of each server: tern's workers and Janus's event loops, one per core here.
const MEDIA_THREADS: usize = 2;

struct Args {
    scenarios: Vec<(&'static str, u32)>,
    simulcast: bool,
    window: Duration,
    tern: bool,
    janus: bool,
}

fn args() -> Args {
    let mut a = Args {
        scenarios: Vec::new(),
        simulcast: false,
        window: Duration::from_secs(10),
        tern: true,
        janus: true,
    };
    let mut kind = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "meeting" => kind = Some("meeting"),
            "live" => kind = Some("live"),
            "--simulcast" => a.simulcast = true,
            "--window" => {
                let s = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--window SECONDS");
                a.window = Duration::from_secs(s);
            }
            "--only" => match it.next().as_deref() {
                Some("tern") => a.janus = false,
                Some("janus") => a.tern = false,
                other => panic!("--only tern|janus, not {other:?}"),
            },
            n => {
                let n: u32 = n.parse().unwrap_or_else(|_| panic!("unknown argument {n}"));
                let kind = kind.expect("meeting N or live N");
                a.scenarios.push((kind, n));
            }
        }
    }
    if a.scenarios.is_empty() {
        a.scenarios = vec![
            ("meeting", 4),
            ("meeting", 10),
            ("meeting", 25),
            ("live", 50),
            ("live", 200),
            ("live", 500),
        ];
    }
    a
}

fn plan(kind: &str, n: u32, a: &Args) -> Plan {
    let (publishers, viewers) = if kind == "meeting" { (n, 0) } else { (1, n) };
    Plan {
        publishers,
        publishers_subscribe: kind == "meeting",
        viewers,
        rids: if a.simulcast {
            vec!["q", "h", "f"]
        } else {
            Vec::new()
        },
        warmup: Duration::from_secs(2),
        window: a.window,
        setup_concurrency: 8,
    }
}

async fn through_tern(plan: &Plan) -> Result<Figures, Error> {
    let workers = MEDIA_THREADS.to_string();
    let server = tern_process::start_server(&[
        "--rtc-workers",
        &workers,
        // Janus's VideoRoom forwards everything whatever the subscriber's downlink; so does
        // tern with this off. Both then do the same work per packet.
        "--sfu-congestion-control",
        "false",
        "--sfu-max-participants-per-room",
        "2000",
        "--http-max-connections-per-ip",
        "4096",
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let target = Target::Tern(TernTarget {
        http: server.http,
        key: common::KEY.into(),
        secret: common::SECRET.into(),
        room: "compare".into(),
    });
    let outcome = run(&target, server.child.id(), plan).await?;
    Ok(Figures::of(plan, &outcome))
}

async fn through_janus(plan: &Plan) -> Result<Figures, Error> {
    let janus = Janus::start(MEDIA_THREADS, netns::CANDIDATE_IP).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let target = Target::Janus(JanusTarget {
        ws_url: janus.ws_url.clone(),
        room: 1000,
    });
    match run(&target, janus.pid(), plan).await {
        Ok(outcome) => Ok(Figures::of(plan, &outcome)),
        Err(e) => Err(format!("{e}\nJanus log:\n{}", janus.log_tail()).into()),
    }
}

fn keep(server: &str, r: Result<Figures, Error>) -> Option<Figures> {
    r.map_err(|e| println!("\n{server} failed: {e}\n")).ok()
}

fn main() {
    netns::reexec_in_own_netns();
    let a = args();
    let (rt, cores) = tern_benches::sfu_compare::run::generator_runtime();
    println!(
        "# tern vs Janus {}: {cores} cores; tern --rtc-workers {MEDIA_THREADS}, congestion \
         control off; Janus event_loops = {MEDIA_THREADS}; the load generator is this process \
         ({cores} tokio workers); {}; {} s windows after everyone receives",
        if Janus::installed() {
            "1.1"
        } else {
            "(not installed)"
        },
        if a.simulcast {
            "simulcast q/h/f, subscribers get f"
        } else {
            "one video layer"
        },
        a.window.as_secs()
    );
    for &(kind, n) in &a.scenarios {
        let plan = plan(kind, n, &a);
        let tern = a
            .tern
            .then(|| keep("tern", rt.block_on(through_tern(&plan))))
            .flatten();
        let janus = (a.janus && Janus::installed())
            .then(|| keep("Janus", rt.block_on(through_janus(&plan))))
            .flatten();
        let who = if kind == "meeting" {
            format!(
                "{n} participants, each publishes and receives the other {}",
                n - 1
            )
        } else {
            format!("1 publisher, {n} receive-only subscribers")
        };
        println!("\n## {kind} {n}: {who}\n");
        println!("{}", table(tern.as_ref(), janus.as_ref()));
        let traffic = if kind == "meeting" {
            Traffic::meeting(n as usize)
        } else {
            Traffic::livestream(n as usize)
        };
        floor(traffic, [("tern", &tern), ("Janus", &janus)]);
    }
}

/// Measures the kernel floor for `traffic` and prints each server's CPU per forwarded packet
/// as a multiple of it.
fn floor(traffic: Traffic, servers: [(&str, &Option<Figures>); 2]) {
    let costs = kernel_floor::measure(traffic, 3.0);
    let cheapest = kernel_floor::floor(&costs);
    let each: Vec<String> = costs
        .iter()
        .map(|c| format!("{:?} {:.2} µs", c.method, c.ns_per_datagram / 1e3))
        .collect();
    println!(
        "Kernel floor, a bare loop sending the same datagrams: {}.",
        each.join(", ")
    );
    let Some(cheapest) = cheapest else {
        return println!("No floor: every method lost datagrams.");
    };
    for (name, figures) in servers {
        if let Some(f) = figures {
            println!(
                "{name}: {:.1} x the floor ({:.2} µs per forwarded packet).",
                f.cpu_us_per_packet * 1e3 / cheapest.ns_per_datagram,
                f.cpu_us_per_packet
            );
        }
    }
}
