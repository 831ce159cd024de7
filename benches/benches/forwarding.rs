//! The media path: one publisher's SRTP datagram in, N subscribers' SRTP datagrams out, through
//! the whole SFU core (decrypt, route, rewrite, encrypt). Also the pure per-packet helpers.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use str0m::media::{MediaKind, Mid};
use tern_sfu::testkit::{Net, deliver, vp8_payload};
use tern_sfu::{RtpRewriter, VideoCodec, classify, is_keyframe, stun_local_ufrag};

/// A room with one video publisher and `n` connected subscribers.
fn room(n: usize) -> (Net, usize, Mid) {
    // The timed loop drops what the core sends, so with congestion control on, the
    // subscribers' estimates fall as if every packet were lost and video stops: off, as in
    // the load benches.
    let mut net = Net::with_config(tern_sfu::SfuConfig {
        congestion_control: false,
        ..Default::default()
    });
    let alice = net.join("bench", "alice");
    for i in 0..n {
        net.join("bench", &format!("s{i}"));
    }
    let mid = net.publish(alice, &[MediaKind::Video])[0];
    net.run_for(Duration::from_secs(2));
    net.send_rtp(alice, mid, 1, 0, &vp8_payload(true, 0));
    net.run_for(Duration::from_millis(50));
    (net, alice, mid)
}

/// `count` encrypted datagrams from the publisher, captured instead of delivered.
fn capture(
    net: &mut Net,
    alice: usize,
    mid: Mid,
    first_seq: u64,
    count: usize,
) -> Vec<(SocketAddr, Vec<u8>)> {
    net.capture = Some(Vec::with_capacity(count));
    for k in 0..count as u64 {
        let seq = first_seq + k;
        net.send_rtp(
            alice,
            mid,
            seq,
            (seq * 3000) as u32,
            &vp8_payload(false, seq as u32),
        );
        if k % 32 == 31 {
            net.run_for(tern_sfu::testkit::STEP); // the client sends when its clock moves
        }
    }
    net.run_for(tern_sfu::testkit::STEP);
    let publisher = net.clients[alice].pub_addr;
    let captured = net.capture.take().unwrap_or_default();
    // The publisher's RTP is replayed in the timed loop; everything else (STUN keepalives, RTCP)
    // is delivered now so the connections stay up. RTCP's second byte is its type, 192..=223.
    let (rtp, other): (Vec<_>, Vec<_>) = captured.into_iter().partition(|(from, d)| {
        *from == publisher
            && d.len() > 12
            && (128..192).contains(&d[0])
            && !(192..=223).contains(&d[1])
    });
    for (from, d) in other {
        deliver(&mut net.sfu, net.now, from, &d);
    }
    rtp
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_one_packet");
    for n in [1usize, 10] {
        let (mut net, alice, mid) = room(n);
        let mut next_seq = 2u64;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("subscribers", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let packets = capture(&mut net, alice, mid, next_seq, iters as usize);
                let before = net.sfu.stats().rtp_forwarded;
                next_seq += iters + 1;
                let mut now = net.now;
                let start = Instant::now();
                for (from, data) in &packets {
                    now += Duration::from_micros(20);
                    deliver(&mut net.sfu, now, *from, data);
                }
                let elapsed = start.elapsed();
                net.now = now;
                let forwarded = net.sfu.stats().rtp_forwarded - before;
                assert_eq!(
                    forwarded,
                    packets.len() as u64 * n as u64,
                    "every packet reached every subscriber: {:?}",
                    net.sfu.stats()
                );
                // A short capture (RTCP filtered out) is scaled to the requested count.
                elapsed.mul_f64(iters as f64 / packets.len().max(1) as f64)
            })
        });
        assert!(
            net.sfu.stats().rtp_forwarded > 0,
            "the bench forwarded packets"
        );
    }
    group.finish();
}

fn helpers(c: &mut Criterion) {
    let mut binding = vec![0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xA4, 0x42];
    binding.extend_from_slice(&[7; 12]);
    binding.extend_from_slice(&[0x00, 0x06, 0x00, 0x0D]);
    binding.extend_from_slice(b"srvufrag:cli1\0\0\0");
    c.bench_function("demux_classify_and_stun_ufrag", |b| {
        b.iter(|| {
            (
                classify(black_box(&binding)),
                stun_local_ufrag(black_box(&binding)),
            )
        })
    });
    let vp8 = vp8_payload(true, 1);
    c.bench_function("keyframe_vp8", |b| {
        b.iter(|| is_keyframe(VideoCodec::Vp8, black_box(&vp8)))
    });
    let mut rw = RtpRewriter::new(0);
    let mut seq = 70_000u64;
    c.bench_function("rtp_rewrite", |b| {
        b.iter(|| {
            seq += 1;
            rw.rewrite(black_box(seq), black_box(seq as u32 * 3000))
        })
    });
}

/// Runs the forwarding benches.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    forward(&mut c);
    helpers(&mut c);
    c.final_summary();
}
