//! Trickled candidates that name their m-line and ICE generation (RFC 8838, RFC 8839).

use str0m::media::MediaKind;
use tern_sfu::testkit::Net;
use tern_sfu::{Command, PcRole, RemoteCandidate, SfuError};

/// A candidate with `sdpMid`, `sdpMLineIndex` and `usernameFragment` that match the connection
/// is taken; one from another ICE generation, or for an m-line the connection does not have,
/// is refused with `bad_candidate`.
#[test]
fn a_candidate_naming_its_m_line_and_generation_is_checked_against_them() {
    let mut net = Net::new();
    let alice = net.join("demo", "alice");
    let mids = net.publish(alice, &[MediaKind::Audio, MediaKind::Video]);
    let id = net.clients[alice].id;
    let ufrag = net.clients[alice]
        .publisher
        .direct_api()
        .local_ice_credentials()
        .ufrag;
    let good = RemoteCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.2 10000 typ host".into(),
        sdp_mid: Some(mids[1].to_string()),
        sdp_m_line_index: Some(1),
        username_fragment: Some(ufrag.clone()),
    };
    let mut send = |c: RemoteCandidate| {
        net.command(Command::Candidate {
            participant: id,
            target: PcRole::Publisher,
            candidate: c,
        })
    };
    assert!(send(good.clone()).is_ok());
    // webrtc-rs sends `"sdpMid": ""`, which names no m-line: taken as absent.
    let unnamed = RemoteCandidate {
        sdp_mid: Some(String::new()),
        sdp_m_line_index: Some(0),
        username_fragment: Some(String::new()),
        ..good.clone()
    };
    assert!(send(unnamed).is_ok());
    let end_of_candidates = RemoteCandidate {
        candidate: String::new(),
        ..good.clone()
    };
    assert!(send(end_of_candidates).is_ok());
    let refused = [
        RemoteCandidate {
            username_fragment: Some("old-generation".into()),
            ..good.clone()
        },
        RemoteCandidate {
            sdp_mid: Some("no-such-mid".into()),
            ..good.clone()
        },
        RemoteCandidate {
            sdp_m_line_index: Some(7),
            ..good.clone()
        },
        RemoteCandidate {
            sdp_m_line_index: Some(0), // that is the audio m-line, not mids[1]
            ..good.clone()
        },
    ];
    for c in refused {
        assert!(
            matches!(send(c.clone()), Err(SfuError::BadCandidate(_))),
            "{c:?}"
        );
    }
}
