//! Any datagram on the media socket, or frame on an ICE-TCP connection: classification, the STUN
//! username reader, keyframe detection, and the whole core's input path with a participant
//! present.
#![no_main]

mod shared_core;

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use tern_sfu::VideoCodec;

fuzz_target!(|data: &[u8]| {
    let _ = tern_sfu::classify(data);
    let _ = tern_sfu::stun_local_ufrag(data);
    let _ = tern_sfu::is_keyframe(VideoCodec::Vp8, data);
    let _ = tern_sfu::is_keyframe(VideoCodec::H264, data);
    let _ = tern_sfu::vp8_keyframe_size(data);
    shared_core::with_participant(|sfu, now, _| {
        let port = data.first().copied().unwrap_or(0) as u16;
        let from = SocketAddr::from(([127, 0, 0, 2], 1000 + port % 4));
        for chunk in data.chunks(600) {
            sfu.handle_datagram(now, from, chunk);
            sfu.handle_stream_frame(now, from, chunk);
        }
        sfu.handle_timeout(now);
    });
});
