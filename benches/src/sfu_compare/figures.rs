//! The figures of a run, computed the same way for both servers, and their table.

use super::probe::Stream;
use super::run::{Outcome, Plan};

/// What one run of one server comes to.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Packets the subscribers received in the window, per second.
    pub forwarded_per_s: f64,
    /// Received over what the publishers sent times the receivers of each.
    pub delivered: f64,
    /// Server CPU microseconds per received packet.
    pub cpu_us_per_packet: f64,
    /// Received packets per server CPU-second.
    pub packets_per_core_s: f64,
    /// The server's CPU use in cores.
    pub server_cores: f64,
    /// Packets missing from sequence gaps over packets expected, in the window.
    pub loss: f64,
    /// Mean RFC 3550 jitter estimate of the audio streams and the video streams, ms.
    pub jitter_ms: (f64, f64),
    /// Median and 99th percentile of the window's transit times, publisher's send call to
    /// subscriber's receive, ms: an outside measure of the server's latency (with the
    /// generator's own send and receive paths in it).
    pub transit_ms: (f64, f64),
    /// Received packets that were not the payload sent (whole run).
    pub corrupt: u64,
    /// Server RSS idle and at the end of the window, MiB.
    pub rss_mib: (f64, f64),
    /// (loaded - idle) RSS per participant, KiB.
    pub rss_per_participant_kib: f64,
    /// The load generator's CPU use in cores.
    pub generator_cores: f64,
    /// The machine's busy share (all processes).
    pub machine_busy: f64,
    /// Kernel UDP drops for full receive and send buffers in the window.
    pub udp_drops: (u64, u64),
    /// Mean lateness of the publishers' sends against their schedule, ms.
    pub send_lateness_ms: f64,
    /// Subscribers that received everything before the window, of all.
    pub ready: (usize, usize),
    /// tern's own forwarded count per second, as a cross-check.
    pub tern_forwarded_per_s: Option<f64>,
    /// tern's forwarding latency, median and 99th percentile: bucket upper bounds, µs.
    pub tern_latency_us: Option<(f64, f64)>,
    /// tern's heap (live allocations) per participant, (loaded - idle) / participants, KiB.
    pub tern_heap_per_participant_kib: Option<f64>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

impl Figures {
    /// The figures of `outcome`.
    pub fn of(plan: &Plan, outcome: &Outcome) -> Figures {
        let secs = outcome.window.as_secs_f64();
        let layer = 1 + usize::from(plan.forwarded_layer().min(2));
        let sent: u64 = outcome
            .reports
            .iter()
            .map(|r| r.sent_in_window[0] + r.sent_in_window[layer])
            .sum();
        let offered = sent * u64::from(plan.receivers_of_each());
        let streams = || outcome.reports.iter().flat_map(|r| r.seen.streams.iter());
        let received: u64 = streams().map(|(_, s)| s.in_window).sum();
        let lost: u64 = streams().map(|(_, s)| s.lost()).sum();
        let jitter = |audio: bool| {
            let v: Vec<f64> = streams()
                .filter(|((_, k), _)| (*k == Stream::Audio) == audio)
                .filter_map(|(_, s)| s.mean_jitter_us())
                .collect();
            mean(&v) / 1000.0
        };
        let mut transits: Vec<u32> = streams()
            .flat_map(|(_, s)| s.transits_us.iter().copied())
            .collect();
        transits.sort_unstable();
        let transit_ms = |q: f64| {
            let i = ((transits.len() as f64 * q) as usize).min(transits.len().saturating_sub(1));
            transits
                .get(i)
                .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
        };
        let lateness: Vec<f64> = outcome
            .reports
            .iter()
            .filter_map(|r| r.mean_send_lateness_us)
            .collect();
        let mib = |kib: u64| kib as f64 / 1024.0;
        Figures {
            forwarded_per_s: received as f64 / secs,
            delivered: received as f64 / offered.max(1) as f64,
            cpu_us_per_packet: outcome.server_cpu_s * 1e6 / received.max(1) as f64,
            packets_per_core_s: received as f64 / outcome.server_cpu_s.max(1e-9),
            server_cores: outcome.server_cpu_s / secs,
            loss: lost as f64 / (received + lost).max(1) as f64,
            jitter_ms: (jitter(true), jitter(false)),
            transit_ms: (transit_ms(0.5), transit_ms(0.99)),
            corrupt: streams().map(|(_, s)| s.corrupt).sum(),
            rss_mib: (mib(outcome.rss_kib.0), mib(outcome.rss_kib.1)),
            rss_per_participant_kib: outcome.rss_kib.1.saturating_sub(outcome.rss_kib.0) as f64
                / f64::from(plan.participants().max(1)),
            generator_cores: outcome.generator_cpu_s / secs,
            machine_busy: outcome.machine_busy,
            udp_drops: outcome.udp_drops,
            send_lateness_ms: mean(&lateness) / 1000.0,
            ready: (outcome.ready, plan.receivers() as usize),
            tern_forwarded_per_s: outcome.tern_forwarded.map(|f| f / secs),
            tern_latency_us: outcome.tern_latency_us,
            tern_heap_per_participant_kib: outcome
                .tern_heap_kib
                .map(|(idle, loaded)| (loaded - idle) / f64::from(plan.participants().max(1))),
        }
    }
}

/// One row of the table: its name, its value, decimals and unit, and whether the ratio of
/// the two servers means anything.
type Row = (&'static str, fn(&Figures) -> f64, usize, &'static str, bool);

const ROWS: [Row; 18] = [
    (
        "packets received by subscribers /s",
        |f| f.forwarded_per_s,
        0,
        "",
        true,
    ),
    (
        "delivered (received / sent x receivers)",
        |f| f.delivered * 100.0,
        1,
        " %",
        true,
    ),
    (
        "server CPU per forwarded packet (µs)",
        |f| f.cpu_us_per_packet,
        2,
        "",
        true,
    ),
    (
        "forwarded packets /s per core",
        |f| f.packets_per_core_s,
        0,
        "",
        true,
    ),
    ("server CPU (cores)", |f| f.server_cores, 2, "", true),
    ("subscriber loss", |f| f.loss * 100.0, 3, " %", false),
    ("mean jitter, audio (ms)", |f| f.jitter_ms.0, 2, "", true),
    ("mean jitter, video (ms)", |f| f.jitter_ms.1, 2, "", true),
    (
        "transit p50, publisher's send to subscriber's receive (ms)",
        |f| f.transit_ms.0,
        2,
        "",
        true,
    ),
    ("transit p99 (ms)", |f| f.transit_ms.1, 2, "", true),
    ("server RSS idle (MiB)", |f| f.rss_mib.0, 1, "", true),
    ("server RSS loaded (MiB)", |f| f.rss_mib.1, 1, "", true),
    (
        "server RSS per participant (KiB)",
        |f| f.rss_per_participant_kib,
        0,
        "",
        true,
    ),
    (
        "load generator CPU (cores)",
        |f| f.generator_cores,
        2,
        "",
        false,
    ),
    (
        "machine busy (all processes)",
        |f| f.machine_busy * 100.0,
        0,
        " %",
        false,
    ),
    (
        "publishers' mean send lateness (ms)",
        |f| f.send_lateness_ms,
        2,
        "",
        false,
    ),
    (
        "kernel UDP receive-buffer drops",
        |f| f.udp_drops.0 as f64,
        0,
        "",
        false,
    ),
    (
        "kernel UDP send-buffer drops",
        |f| f.udp_drops.1 as f64,
        0,
        "",
        false,
    ),
];

/// A markdown table of one scenario: a row per figure, a column per server and their ratio.
pub fn table(tern: Option<&Figures>, janus: Option<&Figures>) -> String {
    let mut out = String::from("| | tern | Janus | tern / Janus |\n|---|---|---|---|\n");
    for (name, get, digits, unit, ratio) in ROWS {
        let cell = |f: Option<&Figures>| {
            f.map_or("n/a".to_string(), |f| format!("{:.digits$}{unit}", get(f)))
        };
        let ratio = match (tern, janus) {
            (Some(t), Some(j)) if ratio && get(j) != 0.0 => format!("{:.2}", get(t) / get(j)),
            _ => String::new(),
        };
        out += &format!("| {name} | {} | {} | {ratio} |\n", cell(tern), cell(janus));
    }
    let text = |f: Option<&Figures>, s: fn(&Figures) -> String| f.map_or("n/a".into(), s);
    out += &format!(
        "| corrupt payloads | {} | {} | |\n",
        text(tern, |f| f.corrupt.to_string()),
        text(janus, |f| f.corrupt.to_string())
    );
    out += &format!(
        "| subscribers receiving everything before the window | {} | {} | |\n",
        text(tern, |f| format!("{} of {}", f.ready.0, f.ready.1)),
        text(janus, |f| format!("{} of {}", f.ready.0, f.ready.1))
    );
    if let Some(fwd) = tern.and_then(|t| t.tern_forwarded_per_s) {
        out += &format!("| tern_rtp_forwarded_total /s (cross-check) | {fwd:.0} | | |\n");
    }
    if let Some(heap) = tern.and_then(|t| t.tern_heap_per_participant_kib) {
        out += &format!("| tern heap allocated per participant (KiB) | {heap:.0} | | |\n");
    }
    if let Some((p50, p99)) = tern.and_then(|t| t.tern_latency_us) {
        out += &format!(
            "| tern forwarding latency p50 / p99, at most (µs, received to sent) | {p50:.0} / {p99:.0} | | |\n"
        );
    }
    out
}
