//! The TURN server core's per-request and per-packet work (issue 3's micro-bench table):
//! ChannelBind handling, the ChannelData relay decision both ways, and a full authenticated
//! request (nonce check, cached key, MESSAGE-INTEGRITY check, signed answer).

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::Criterion;
use tern_turn::ChannelData;
use tern_turn::peer_policy::PeerPolicy;
use tern_turn::server::Action;
use tern_turn::testkit::{Harness, PEER_V4, TestClient, config};

/// Runs the server benches.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut cfg = config();
    cfg.bandwidth_bytes_per_sec = 0;
    // As the embedded relay runs: exactly one peer socket allowed, the relay's own addresses
    // refused, so every relayed datagram pays the port check.
    let relay_ip = "192.0.2.1";
    cfg.peer_policy = PeerPolicy::only([PEER_V4.parse::<SocketAddr>().expect("peer")]).with_own([
        format!("{relay_ip}:50000-50099").parse().expect("range"),
        format!("{relay_ip}:3478").parse().expect("listener"),
    ]);
    let mut h = Harness::new(cfg);
    let mut client = TestClient::udp("198.18.0.10:40000", "alice", "secret");
    let relay = client.allocate(&mut h);
    let peer: SocketAddr = PEER_V4.parse().expect("peer");
    let bind = client.channel_bind(0x4001, peer);
    assert_eq!(h.from_client(client.id, &bind).code(), 0);
    let mut out = vec![0u8; 70_000];
    let now = h.now;

    c.bench_function("turn_channel_bind_handling", |b| {
        b.iter(|| {
            let a = h
                .server
                .handle_client(now, &mut h.host, client.id, black_box(&bind), &mut out);
            matches!(a, Action::Reply(_))
        })
    });
    let mut cd = [0u8; 1300];
    let n = ChannelData::write(0x4001, &[7u8; 1200], &mut cd, false).expect("fits");
    c.bench_function("turn_channel_data_relay_decision_client_to_peer", |b| {
        b.iter(|| {
            let a =
                h.server
                    .handle_client(now, &mut h.host, client.id, black_box(&cd[..n]), &mut out);
            matches!(a, Action::ToPeer { .. })
        })
    });
    let payload = [7u8; 1200];
    c.bench_function("turn_channel_data_relay_decision_peer_to_client", |b| {
        b.iter(|| {
            let a = h
                .server
                .handle_peer(now, relay, peer, black_box(&payload), &mut out);
            matches!(a, Action::ToClient { .. })
        })
    });
    let refresh = client.refresh(600);
    c.bench_function("turn_authenticated_refresh", |b| {
        b.iter(|| {
            let a =
                h.server
                    .handle_client(now, &mut h.host, client.id, black_box(&refresh), &mut out);
            matches!(a, Action::Reply(_))
        })
    });
    c.final_summary();
}
