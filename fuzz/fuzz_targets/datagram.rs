//! Any datagram on the media socket: classification, the STUN username reader, keyframe
//! detection, and the whole core's input path with a participant present. One core serves all
//! runs (making one costs a DTLS certificate); each run joins and leaves its own participant.
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tern_sfu::{Command, Output, ParticipantId, Permissions, Sfu, SfuConfig, VideoCodec};

thread_local! {
    static CORE: RefCell<(Sfu, Instant, u64)> = RefCell::new({
        let now = Instant::now();
        let config = SfuConfig { public_addr: Some("127.0.0.1:5000".parse().expect("addr")), ..Default::default() };
        (Sfu::new(now, config, 0).expect("core"), now, 0)
    });
}

fuzz_target!(|data: &[u8]| {
    let _ = tern_sfu::classify(data);
    let _ = tern_sfu::stun_local_ufrag(data);
    let _ = tern_sfu::is_keyframe(VideoCodec::Vp8, data);
    let _ = tern_sfu::is_keyframe(VideoCodec::H264, data);
    CORE.with_borrow_mut(|(sfu, now, n)| {
        *n += 1;
        *now += Duration::from_millis(10);
        let participant = ParticipantId(*n);
        let join = Command::Join {
            participant,
            room: "r".into(),
            identity: format!("p{n}"),
            name: "p".into(),
            permissions: Permissions { publish: true, subscribe: true },
            auto_subscribe: true,
        };
        let _ = sfu.handle_command(*now, join);
        let port = data.first().copied().unwrap_or(0) as u16;
        let from = SocketAddr::from(([127, 0, 0, 2], 1000 + port % 4));
        for chunk in data.chunks(600) {
            sfu.handle_datagram(*now, from, chunk);
        }
        sfu.handle_timeout(*now);
        let _ = sfu.handle_command(*now, Command::Leave { participant });
        while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    });
});
