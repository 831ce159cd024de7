//! Any datagram on the media socket: classification, the STUN username reader, keyframe
//! detection, and the whole core's input path with a participant present.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tern_sfu::{Command, Permissions, Sfu, SfuConfig, VideoCodec};

static START: OnceLock<Instant> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let _ = tern_sfu::classify(data);
    let _ = tern_sfu::stun_local_ufrag(data);
    let _ = tern_sfu::is_keyframe(VideoCodec::Vp8, data);
    let _ = tern_sfu::is_keyframe(VideoCodec::H264, data);

    let now = *START.get_or_init(Instant::now);
    let config = SfuConfig { public_addr: Some("127.0.0.1:5000".parse().expect("addr")), ..Default::default() };
    let mut sfu = Sfu::new(now, config, 0).expect("core");
    let join = Command::Join {
        participant: tern_sfu::ParticipantId(1),
        room: "r".into(),
        identity: "a".into(),
        name: "a".into(),
        permissions: Permissions { publish: true, subscribe: true },
        auto_subscribe: true,
    };
    let _ = sfu.handle_command(now, join);
    let port = data.first().copied().unwrap_or(0) as u16;
    let from: SocketAddr = SocketAddr::from(([127, 0, 0, 2], 1000 + port % 4));
    for chunk in data.chunks(600) {
        sfu.handle_datagram(now, from, chunk);
    }
    sfu.handle_timeout(now + Duration::from_secs(1));
    while !matches!(sfu.poll_output(), tern_sfu::Output::Timeout(_)) {}
});
