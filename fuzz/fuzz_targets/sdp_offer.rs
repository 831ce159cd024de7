//! Any SDP in a publisher offer or subscriber answer, and any candidate line, through the core's
//! command handler.
#![no_main]

mod shared_core;

use libfuzzer_sys::fuzz_target;
use tern_sfu::{Command, PcRole, RemoteCandidate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    shared_core::with_participant(|sfu, now, p| {
        let sdp = text.to_string();
        let _ = sfu.handle_command(now, Command::PublisherOffer { participant: p, sdp: sdp.clone(), tracks: vec![] });
        let _ = sfu.handle_command(now, Command::SubscriberAnswer { participant: p, sdp: sdp.clone() });
        let _ = sfu.handle_command(now, Command::Candidate { participant: p, target: PcRole::Publisher, candidate: sdp.as_str().into() });
        // The same text as each field of a candidate that names its m-line and generation.
        let named = RemoteCandidate {
            candidate: sdp.clone(),
            sdp_mid: Some(sdp.clone()),
            sdp_m_line_index: data.first().map(|b| u32::from(*b)),
            username_fragment: Some(sdp),
        };
        let _ = sfu.handle_command(now, Command::Candidate { participant: p, target: PcRole::Subscriber, candidate: named });
    });
});
