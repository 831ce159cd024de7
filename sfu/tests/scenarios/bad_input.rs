use std::net::SocketAddr;
use std::time::Duration;

use str0m::media::MediaKind;
use tern_sfu::{Command, PcRole, SfuError, TrackId};

use tern_sfu::testkit::{Net, opus_payload};

#[test]
fn garbage_datagrams_are_counted_and_dropped_while_media_flows() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let bob = net.join("demo", "bob");
    let mid = net.publish(alice, &[MediaKind::Audio])[0];
    net.run_for(Duration::from_secs(2));
    let stranger: SocketAddr = "127.0.0.9:9".parse().expect("addr");
    let alice_addr = net.clients[alice].pub_addr;
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xFF; 10],
        vec![0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4], // TURN ChannelData
        vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42], // truncated STUN
        vec![0x80; 3],                            // truncated RTP
        vec![0x16; 200],                          // junk DTLS
        vec![0x90; 1500],                         // junk RTP, full size
    ];
    for n in 0..20u32 {
        for g in &garbage {
            net.sfu.handle_datagram(net.now, stranger, g);
            net.sfu.handle_datagram(net.now, alice_addr, g); // from a known peer's address, too
        }
        net.send_rtp(alice, mid, n as u64 + 1, n * 960, &opus_payload(n));
        net.run_for(Duration::from_millis(20));
    }
    let stats = net.sfu.stats();
    assert!(stats.dropped_malformed >= 40, "{stats:?}");
    assert!(stats.dropped_unrouted >= 20, "{stats:?}");
    let track = net.announced_tracks(bob)[0];
    assert_eq!(
        net.received(bob, track).len(),
        20,
        "bob's audio was not disturbed"
    );
}

#[test]
fn bad_signaling_input_gets_clear_errors() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let id = net.clients[alice].id;
    let offer = Command::PublisherOffer {
        participant: id,
        sdp: "v=0\r\nnonsense".into(),
        tracks: vec![],
    };
    assert!(matches!(net.command(offer), Err(SfuError::BadSdp(_))));
    let answer = Command::SubscriberAnswer {
        participant: id,
        sdp: "v=0\r\n".into(),
    };
    assert!(matches!(
        net.command(answer),
        Err(SfuError::BadSdp(_)) | Err(SfuError::NoPendingOffer)
    ));
    let cand = Command::Candidate {
        participant: id,
        target: PcRole::Publisher,
        candidate: "candidate:garbage".into(),
    };
    assert!(matches!(net.command(cand), Err(SfuError::BadCandidate(_))));
    let sub = Command::Subscribe {
        participant: id,
        tracks: vec![TrackId(999)],
    };
    assert!(matches!(net.command(sub), Err(SfuError::TrackNotFound(_))));
    let mute = Command::SetMuted {
        participant: id,
        track: TrackId(999),
        muted: true,
    };
    assert!(matches!(net.command(mute), Err(SfuError::TrackNotFound(_))));
    let ghost = Command::Leave {
        participant: tern_sfu::ParticipantId(4242),
    };
    assert!(matches!(
        net.command(ghost),
        Err(SfuError::ParticipantNotFound)
    ));
    let room = Command::ListParticipants {
        room: "nope".into(),
    };
    assert!(matches!(net.command(room), Err(SfuError::RoomNotFound(_))));
}

#[test]
fn permissions_from_the_token_are_enforced() {
    let mut net = Net::new();
    let viewer = net.join_with(
        "demo",
        "viewer",
        tern_sfu::Permissions {
            publish: false,
            ..tern_sfu::Permissions::ALL
        },
        true,
    );
    let id = net.clients[viewer].id;
    let mut api = net.clients[viewer].publisher.sdp_api();
    api.add_media(
        MediaKind::Audio,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    let (offer, _) = api.apply().expect("offer");
    let r = net.command(Command::PublisherOffer {
        participant: id,
        sdp: offer.to_sdp_string(),
        tracks: vec![],
    });
    assert!(
        matches!(r, Err(SfuError::PermissionDenied("publish"))),
        "{r:?}"
    );

    let deaf = net.join_with(
        "demo",
        "deaf",
        tern_sfu::Permissions {
            subscribe: false,
            ..tern_sfu::Permissions::ALL
        },
        true,
    );
    let id = net.clients[deaf].id;
    let r = net.command(Command::Subscribe {
        participant: id,
        tracks: vec![],
    });
    assert!(
        matches!(r, Err(SfuError::PermissionDenied("subscribe"))),
        "{r:?}"
    );
}
