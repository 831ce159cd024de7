//! ICE over TCP (RFC 6544, RFC 4571 framing): a client whose network blocks UDP.

use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::Command;
use tern_sfu::testkit::{Net, SERVER_TCP, opus_payload, vp8_payload};

/// Alice has only a TCP path to the server. She publishes and receives through it, as Bob does
/// over UDP; when she leaves, the server asks for her TCP connections to be closed.
#[test]
fn a_client_without_udp_publishes_and_receives_over_ice_tcp() {
    let mut net = Net::new();
    let alice = net.join_over_tcp("demo", "alice");
    let bob = net.join("demo", "bob");
    let alice_mids = net.publish(alice, &[MediaKind::Audio, MediaKind::Video]);
    let bob_mids = net.publish(bob, &[MediaKind::Audio, MediaKind::Video]);
    net.run_for(Duration::from_secs(2));
    let answer = &net.clients[alice].answers[0];
    let (ip, port) = SERVER_TCP.rsplit_once(':').expect("addr");
    assert!(
        answer.contains(" tcp ")
            && answer.contains(&format!(" {ip} {port} typ host tcptype passive")),
        "a passive TCP host candidate: {answer}"
    );
    for n in 0..20u32 {
        let seq = n as u64 + 1;
        for (who, mids) in [(alice, &alice_mids), (bob, &bob_mids)] {
            net.send_rtp(who, mids[0], seq, n * 960, &opus_payload(n));
            net.send_rtp(who, mids[1], seq, n * 3000, &vp8_payload(n == 0, n));
        }
        net.run_for(Duration::from_millis(20));
    }
    let from_alice = net.announced_tracks(bob);
    let from_bob = net.announced_tracks(alice);
    for (to, tracks) in [(bob, &from_alice), (alice, &from_bob)] {
        assert_eq!(tracks.len(), 2);
        for t in tracks {
            assert_eq!(net.received(to, *t).len(), 20, "client {to}, track {t}");
        }
    }
    assert!(net.closed_streams.is_empty());
    let alice_id = net.clients[alice].id;
    net.command(Command::Leave {
        participant: alice_id,
    })
    .expect("leaves");
    let (pub_addr, sub_addr) = (net.clients[alice].pub_addr, net.clients[alice].sub_addr);
    assert!(
        net.closed_streams.contains(&pub_addr),
        "{:?}",
        net.closed_streams
    );
    assert!(
        net.closed_streams.contains(&sub_addr),
        "{:?}",
        net.closed_streams
    );
}
