//! The soak (issue 14, "it holds"): a meeting of 20 participants through a real `tern` process
//! with its production defaults (congestion control on) for `--minutes M` (default 30), each
//! participant publishing audio and video (the `sfu_compare` clients and media: Opus-framed
//! audio at 50 packets/s, VP8-framed video at 30 frames/s of 3 packets, payloads verified byte
//! for byte) and receiving the other 19. Every `--sample-secs S` (default 60) a sample: the
//! server's RSS, open file descriptors and threads, its forwarding-error counters, packets it
//! forwarded, keyframe requests it sent, and per interval what the subscribers' str0m delivered
//! of what was sent (after NACK recovery; counted by send time, so late repairs count) and how
//! many streams delivered anything, audio and video apart; the lowest downlink estimate tern
//! reported to a subscriber (its `quality` messages) and how many video subscriptions it holds
//! back for bandwidth; kernel UDP receive-buffer drops and the generator's own CPU. At the end a
//! table and a PASS/FAIL line per criterion (never a panic; the exit code is 0). Rows also go
//! to stderr as they are sampled.
//!
//! `--loss P`: each subscriber connection drops P % of the datagrams it receives, at random,
//! before str0m sees them (a lossy downlink): video should recover by NACK, audio (not
//! retransmitted) should lose about P % and keep flowing.
//!
//! cargo build --release -p tern-server && \
//!   cargo run --release -p tern-benches --bin soak -- --minutes 30 [--loss 5]
//!
//! Needs root: it runs in a network namespace of its own (see `sfu_compare::netns`), so the
//! kernel's UDP counters are this run's alone.

#[path = "../../../server/tests/common/mod.rs"]
#[allow(dead_code, missing_docs, clippy::all)]
mod common;
#[path = "shared/tern_process.rs"]
#[allow(dead_code)] // each bench uses a different part
mod tern_process;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tern_benches::proc_stats;
use tern_benches::sfu_compare::client::Shared;
use tern_benches::sfu_compare::probe::Stream;
use tern_benches::sfu_compare::run::{Outcome, Plan, Target, run_with};
use tern_benches::sfu_compare::tally::{Counts, Downlink, Tally};
use tern_benches::sfu_compare::tern::{TernTarget, metrics_text};
use tern_benches::sfu_compare::{Error, netns};

const PARTICIPANTS: u32 = 20;
/// tern's counters of packets it failed to forward or send, summed.
const ERROR_METRICS: [&str; 3] = [
    "tern_forward_errors_total",
    "tern_rtc_errors_total",
    "tern_udp_send_errors_total",
];
/// How long after an interval ends its delivery is read: retransmissions have had their time
/// (tern keeps 1 s of video to resend).
const SLACK: Duration = Duration::from_secs(3);
/// The span the growth criteria look at.
const LAST_SPAN: Duration = Duration::from_secs(20 * 60);

struct Args {
    minutes: f64,
    sample: Duration,
    loss: f64,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 30.0,
        sample: Duration::from_secs(60),
        loss: 0.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| -> f64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} {what}"))
        };
        match arg.as_str() {
            "--minutes" => a.minutes = value("MINUTES"),
            "--sample-secs" => a.sample = Duration::from_secs_f64(value("SECONDS")),
            "--loss" => a.loss = value("PERCENT"),
            other => panic!("unknown argument {other} (--minutes M --sample-secs S --loss P)"),
        }
    }
    a
}

/// What the server and the generator looked like at one moment, and what the subscribers got
/// of the interval that ended [`SLACK`] before it.
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    errors: f64,
    forwarded: f64,
    keyframe_requests: f64,
    udp_rcvbuf_drops: u64,
    generator_cpu_s: f64,
    /// What tern last said of each subscriber's downlink.
    downlinks: Vec<(u32, Downlink)>,
    interval: Option<Counts>,
}

async fn sample(pid: u32, http: SocketAddr, at: Duration) -> Sample {
    // /proc first: the /metrics request's connection is a file descriptor for a moment.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = proc_stats::rss_kib(pid);
    let text = metrics_text(http).await.unwrap_or_else(|e| {
        eprintln!("/metrics: {e}");
        String::new()
    });
    let sum = |name: &str| common::metric_sum(&text, name);
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Sample {
        at,
        rss_kib,
        fds,
        threads,
        errors: ERROR_METRICS.iter().map(|m| sum(m)).sum(),
        forwarded: sum("tern_rtp_forwarded_total"),
        keyframe_requests: sum("tern_keyframe_requests_sent_total"),
        udp_rcvbuf_drops: proc_stats::udp_buffer_errors().0,
        generator_cpu_s: proc_stats::own_cpu_seconds(),
        downlinks: Vec::new(),
        interval: None,
    }
}

/// Samples at the window's opening plus [`SLACK`] and every `every` after, `intervals` times.
async fn soak(
    shared: &Shared,
    pid: u32,
    http: SocketAddr,
    every: Duration,
    intervals: usize,
    out: &mut Vec<Sample>,
) {
    let t0 = Instant::now();
    let tally = shared.tally.as_ref().expect("a tally");
    tally.start(t0.duration_since(shared.epoch).as_micros() as u64);
    for k in 0..=intervals {
        tokio::time::sleep_until((t0 + every * k as u32 + SLACK).into()).await;
        let mut s = sample(pid, http, every * k as u32).await;
        s.interval = k.checked_sub(1).map(|i| tally.counts(i));
        s.downlinks = tally.downlinks();
        if let Some(prev) = out.last() {
            eprintln!("{}", row(prev, &s, PARTICIPANTS));
        }
        out.push(s);
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// Delivered over what the publishers sent times the receivers of each, per kind.
fn delivered(c: &Counts, participants: u32) -> [f64; 2] {
    let each = u64::from(participants - 1);
    [0, 1].map(|k| pct(c.delivered[k], c.sent[k] * each))
}

const HEADER: &str = "| min | RSS KiB | fds | threads | fwd errors (total) | forwarded | \
     keyframe reqs | audio delivered | audio streams | video delivered | video streams | \
     lowest estimate | video held by bandwidth | UDP rcvbuf drops | generator CPU (1 core = \
     100 %) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

fn row(prev: &Sample, s: &Sample, participants: u32) -> String {
    let streams = u64::from(participants * (participants - 1));
    let media = s.interval.map_or("- | - | - | -".into(), |c| {
        let d = delivered(&c, participants);
        format!(
            "{:.2} % | {}/{streams} | {:.2} % | {}/{streams}",
            d[0], c.streams[0], d[1], c.streams[1]
        )
    });
    let secs = (s.at - prev.at).as_secs_f64();
    format!(
        "| {:.1} | {} | {} | {} | {} | {:.0} | {:.0} | {media} | {} | {} | {} | {:.0} % |",
        s.at.as_secs_f64() / 60.0,
        s.rss_kib,
        s.fds,
        s.threads,
        s.errors,
        s.forwarded - prev.forwarded,
        s.keyframe_requests - prev.keyframe_requests,
        lowest_estimate(s),
        s.downlinks.iter().map(|(_, d)| d.limited).sum::<usize>(),
        s.udp_rcvbuf_drops - prev.udp_rcvbuf_drops,
        100.0 * (s.generator_cpu_s - prev.generator_cpu_s) / secs.max(1e-9),
    )
}

/// The lowest downlink estimate tern reported, Mbit/s.
fn lowest_estimate(s: &Sample) -> String {
    let bps = s.downlinks.iter().filter_map(|(_, d)| d.estimate_bps);
    match bps.reduce(f64::min) {
        Some(b) => format!("{:.1} Mbit/s", b / 1e6),
        None => "-".into(),
    }
}

fn verdict(name: &str, pass: bool, detail: String) {
    println!(
        "- {name}: {detail}: **{}**",
        if pass { "PASS" } else { "FAIL" }
    );
}

fn report(samples: &[Sample], every: Duration, outcome: Option<&Outcome>) {
    println!("\n{HEADER}");
    println!(
        "| 0.0 | {} | {} | {} | {} | - | - | - | - | - | - | {} | {} | - | - |",
        samples[0].rss_kib,
        samples[0].fds,
        samples[0].threads,
        samples[0].errors,
        lowest_estimate(&samples[0]),
        samples[0]
            .downlinks
            .iter()
            .map(|(_, d)| d.limited)
            .sum::<usize>(),
    );
    for w in samples.windows(2) {
        println!("{}", row(&w[0], &w[1], PARTICIPANTS));
    }
    let n = samples.len() - 1;
    if n < 2 {
        return println!("\nToo few samples for a verdict.");
    }
    // The start of the last 20 minutes, but no earlier than a third into the run.
    let span = (LAST_SPAN.as_secs_f64() / every.as_secs_f64()).round() as usize;
    let (base, last) = (&samples[n.saturating_sub(span).max(n / 3)], &samples[n]);
    let minute = |s: &Sample| s.at.as_secs_f64() / 60.0;
    println!(
        "\nVerdicts (growth from minute {:.1} to {:.1}):\n",
        minute(base),
        minute(last)
    );
    let growth = pct(last.rss_kib, base.rss_kib) - 100.0;
    let (rss0, rss1) = (base.rss_kib, last.rss_kib);
    verdict(
        "RSS",
        growth < 5.0,
        format!("{rss0} -> {rss1} KiB, {growth:+.2} % (< 5 %)"),
    );
    let (fd0, fd1) = (base.fds, last.fds);
    verdict("File descriptors", fd1 <= fd0, format!("{fd0} -> {fd1}"));
    let (th0, th1) = (base.threads, last.threads);
    verdict("Threads", th1 <= th0, format!("{th0} -> {th1}"));
    let corrupt: u64 = outcome.map_or(0, |o| {
        let seen = o.reports.iter().flat_map(|r| r.seen.streams.values());
        seen.map(|s| s.corrupt).sum()
    });
    verdict(
        "Forwarding errors",
        last.errors == 0.0 && corrupt == 0,
        format!(
            "{} since tern started ({}), {corrupt} corrupt payloads",
            last.errors,
            ERROR_METRICS.join(" + ")
        ),
    );
    let intervals: Vec<Counts> = samples.iter().filter_map(|s| s.interval).collect();
    let low = |k: usize| {
        let later = intervals.iter().skip(1);
        later
            .map(|c| delivered(c, PARTICIPANTS)[k])
            .fold(100.0, f64::min)
    };
    let video = low(1);
    verdict(
        "Video delivered after recovery",
        video >= 99.0,
        format!("lowest {video:.2} % in the intervals after the first (>= 99 %)"),
    );
    let streams = u64::from(PARTICIPANTS * (PARTICIPANTS - 1));
    let silent = intervals.iter().map(|c| streams - c.streams[0]).max();
    verdict(
        "Audio flowing",
        silent == Some(0),
        format!(
            "{} of the {streams} streams silent in the worst interval (0 wanted); delivered \
             lowest {:.2} % after the first",
            silent.unwrap_or(streams),
            low(0)
        ),
    );
}

/// Names the (publisher -> subscriber) streams that delivered nothing in the whole soak.
fn silent_streams(o: &Outcome) {
    for (kind, stream) in [("audio", Stream::Audio), ("video", Stream::Video(0))] {
        let mut silent = Vec::new();
        for (sub, r) in o.reports.iter().enumerate() {
            for publisher in (0..PARTICIPANTS).filter(|&p| p as usize != sub) {
                let got = r.seen.streams.get(&(publisher, stream));
                if got.is_none_or(|s| s.in_window == 0) {
                    silent.push(format!("{publisher}->{sub}"));
                }
            }
        }
        if !silent.is_empty() {
            let list = silent.join(", ");
            println!("{kind} streams silent for the whole soak (publisher->subscriber): {list}");
        }
    }
}

fn main() {
    netns::reexec_in_own_netns();
    let a = args();
    let (rt, cores) = tern_benches::sfu_compare::run::generator_runtime();
    let intervals = ((a.minutes * 60.0) / a.sample.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let cc = match std::env::var("TERN_SFU_CONGESTION_CONTROL") {
        Ok(v) => format!("but TERN_SFU_CONGESTION_CONTROL={v} from the environment"),
        Err(_) => "congestion control on".into(),
    };
    println!(
        "# tern soak: {PARTICIPANTS} participants, each publishes audio and video and receives \
         the other {}; {} min, a sample every {} s; {} % random loss on the subscribers' \
         downlinks; tern with its production defaults ({cc}), target/release/tern; {cores} \
         cores shared with the load generator (this process)",
        PARTICIPANTS - 1,
        a.minutes,
        a.sample.as_secs_f64(),
        a.loss
    );
    let plan = Plan {
        publishers: PARTICIPANTS,
        publishers_subscribe: true,
        viewers: 0,
        rids: Vec::new(),
        warmup: Duration::from_secs(2),
        window: Duration::ZERO, // the soak decides
        setup_concurrency: 8,
    };
    let mut samples = Vec::new();
    let outcome = rt.block_on(async {
        let server = tern_process::start_server(&[]).await;
        let (pid, http) = (server.child.id(), server.http);
        let target = Target::Tern(TernTarget {
            http,
            key: common::KEY.into(),
            secret: common::SECRET.into(),
            room: "soak".into(),
        });
        let shared = Shared {
            downlink_loss: a.loss / 100.0,
            tally: Some(Tally::new(a.sample, intervals)),
            ..Shared::default()
        };
        eprintln!("{HEADER}");
        let every = a.sample;
        run_with(&target, pid, &plan, shared, async |shared: &Shared| {
            soak(shared, pid, http, every, intervals, &mut samples).await
        })
        .await
    });
    let outcome: Option<Outcome> = outcome
        .map_err(|e: Error| println!("\nThe run failed: {e}"))
        .ok();
    if let Some(o) = &outcome {
        println!(
            "\n{} of {PARTICIPANTS} subscribers received every stream before the soak began.",
            o.ready
        );
        silent_streams(o);
    }
    if let Some(last) = samples.last() {
        let each: Vec<String> = last
            .downlinks
            .iter()
            .map(|(i, d)| match d.estimate_bps {
                Some(b) => format!("{i}: {:.1} ({} held)", b / 1e6, d.limited),
                None => format!("{i}: -"),
            })
            .collect();
        println!(
            "Downlink estimates at the end, Mbit/s (video subscriptions bandwidth holds back): {}",
            each.join(", ")
        );
    }
    if samples.is_empty() {
        return;
    }
    report(&samples, a.sample, outcome.as_ref());
}
