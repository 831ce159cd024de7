//! Prometheus metrics. The cores count; this module copies their counters into the `metrics`
//! facade once a second, and renders them at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tern_sfu::Sfu;

use crate::forward_latency::{BOUNDS_US, ForwardLatency};

use crate::ice_tcp::TcpStats;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        })
        .clone()
}

/// Records one worker's taps: packets dropped because a recording's queue was full, and how
/// many taps it feeds.
pub fn record_taps(index: usize, dropped: u64, taps: usize) {
    let w = index.to_string();
    metrics::counter!("tern_tap_dropped_total", "worker" => w.clone()).absolute(dropped);
    metrics::gauge!("tern_taps", "worker" => w).set(taps as f64);
}

/// Records the recorder's gauges and counters.
pub fn record_recordings(running: usize, spooled_bytes: u64, feed_errors: u64) {
    metrics::gauge!("tern_recordings_running").set(running as f64);
    metrics::gauge!("tern_recording_spool_bytes").set(spooled_bytes as f64);
    metrics::counter!("tern_recording_feed_errors_total").absolute(feed_errors);
}

/// Broadcasts running, and tap packets their sidecars' sockets refused.
pub fn record_broadcasts(running: usize, feed_errors: u64) {
    metrics::gauge!("tern_broadcasts_running").set(running as f64);
    metrics::counter!("tern_broadcast_feed_errors_total").absolute(feed_errors);
}

/// The `le` labels of the forwarding latency buckets, in seconds.
static LATENCY_BOUNDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    let mut le: Vec<String> = BOUNDS_US
        .iter()
        .map(|us| (*us as f64 / 1e6).to_string())
        .collect();
    le.push("+Inf".into());
    le
});

/// Copies one worker's forwarding latency histogram into the metrics facade, as the
/// `_bucket`, `_count` and `_sum` series of `tern_forward_latency_seconds`.
pub fn record_forward_latency(index: usize, latency: &ForwardLatency) {
    let w = index.to_string();
    let cumulative = latency.cumulative();
    for (le, count) in LATENCY_BOUNDS.iter().zip(cumulative) {
        metrics::counter!("tern_forward_latency_seconds_bucket", "worker" => w.clone(), "le" => le.clone())
            .absolute(count);
    }
    let count = cumulative[BOUNDS_US.len()];
    metrics::counter!("tern_forward_latency_seconds_count", "worker" => w.clone()).absolute(count);
    metrics::gauge!("tern_forward_latency_seconds_sum", "worker" => w)
        .set(latency.sum().as_secs_f64());
}

/// Copies one worker's core counters and gauges into the metrics facade.
pub fn record_worker(index: usize, sfu: &Sfu, send_errors: u64, tcp: Option<TcpStats>) {
    let w = index.to_string();
    let s = sfu.stats();
    let (rooms, participants, tracks) = sfu.gauges();
    metrics::gauge!("tern_rooms", "worker" => w.clone()).set(rooms as f64);
    metrics::gauge!("tern_participants", "worker" => w.clone()).set(participants as f64);
    metrics::gauge!("tern_tracks", "worker" => w.clone()).set(tracks as f64);
    let counters = [
        ("tern_datagrams_in_total", s.datagrams_in),
        ("tern_bytes_in_total", s.bytes_in),
        ("tern_datagrams_out_total", s.datagrams_out),
        ("tern_bytes_out_total", s.bytes_out),
        ("tern_rtp_forwarded_total", s.rtp_forwarded),
        ("tern_dropped_malformed_total", s.dropped_malformed),
        ("tern_dropped_unrouted_total", s.dropped_unrouted),
        ("tern_dropped_unknown_ssrc_total", s.dropped_unknown_ssrc),
        ("tern_forward_errors_total", s.forward_errors),
        (
            "tern_keyframe_requests_sent_total",
            s.keyframe_requests_sent,
        ),
        (
            "tern_keyframe_requests_coalesced_total",
            s.keyframe_requests_coalesced,
        ),
        ("tern_rtc_errors_total", s.rtc_errors),
        ("tern_bwe_restarts_total", s.bwe_restarts),
        ("tern_subscriptions_refused_total", s.subscriptions_refused),
        ("tern_data_messages_in_total", s.data_messages_in),
        ("tern_data_messages_refused_total", s.data_messages_refused),
        ("tern_data_deliveries_total", s.data_deliveries),
        ("tern_data_messages_dropped_total", s.data_messages_dropped),
        ("tern_udp_send_errors_total", send_errors),
    ];
    for (name, value) in counters {
        metrics::counter!(name, "worker" => w.clone()).absolute(value);
    }
    if let Some(t) = tcp {
        metrics::gauge!("tern_ice_tcp_connections", "worker" => w.clone()).set(t.open as f64);
        let counters = [
            ("tern_ice_tcp_accepted_total", t.accepted),
            ("tern_ice_tcp_refused_total", t.refused),
            ("tern_ice_tcp_dropped_total", t.dropped),
        ];
        for (name, value) in counters {
            metrics::counter!(name, "worker" => w.clone()).absolute(value);
        }
    }
}

/// Counts a signaling or API error by code.
pub fn count_error(kind: &'static str, code: &str) {
    metrics::counter!("tern_errors_total", "kind" => kind, "code" => code.to_string()).increment(1);
}

/// Copies the TURN relay's counters and gauges (summed over its workers) into the facade.
pub fn record_turn(s: &tern_turn::server::Stats) {
    metrics::gauge!("tern_turn_allocations").set(s.allocations as f64);
    metrics::gauge!("tern_turn_permissions").set(s.permissions as f64);
    metrics::gauge!("tern_turn_channels").set(s.channels as f64);
    for (direction, packets, bytes) in [
        ("to_peer", s.to_peer_packets, s.to_peer_bytes),
        ("to_client", s.to_client_packets, s.to_client_bytes),
    ] {
        metrics::counter!("tern_turn_relayed_packets_total", "direction" => direction)
            .absolute(packets);
        metrics::counter!("tern_turn_relayed_bytes_total", "direction" => direction)
            .absolute(bytes);
    }
    for (reason, n) in &s.refused_peers {
        metrics::counter!("tern_turn_refused_peers_total", "reason" => *reason).absolute(*n);
    }
    for (reason, n) in &s.auth_failures {
        metrics::counter!("tern_turn_auth_failures_total", "reason" => *reason).absolute(*n);
    }
    for (reason, n) in &s.dropped {
        metrics::counter!("tern_turn_dropped_total", "reason" => reason.as_str()).absolute(*n);
    }
    for (code, n) in &s.errors {
        metrics::counter!("tern_turn_errors_total", "code" => code.to_string()).absolute(*n);
    }
}
