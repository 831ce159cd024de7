//! Any SDP in a publisher offer or subscriber answer, through the core's command handler.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tern_sfu::{Command, ParticipantId, Permissions, Sfu, SfuConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else { return };
    let now = Instant::now();
    let config = SfuConfig { public_addr: Some("127.0.0.1:5000".parse().expect("addr")), ..Default::default() };
    let mut sfu = Sfu::new(now, config, 0).expect("core");
    let p = ParticipantId(1);
    let join = Command::Join {
        participant: p,
        room: "r".into(),
        identity: "a".into(),
        name: "a".into(),
        permissions: Permissions { publish: true, subscribe: true },
        auto_subscribe: true,
    };
    let _ = sfu.handle_command(now, join);
    let _ = sfu.handle_command(now, Command::PublisherOffer { participant: p, sdp: sdp.to_string(), tracks: vec![] });
    let _ = sfu.handle_command(now, Command::SubscriberAnswer { participant: p, sdp: sdp.to_string() });
    let _ = sfu.handle_command(now, Command::Candidate { participant: p, target: tern_sfu::PcRole::Publisher, candidate: sdp.to_string() });
});
