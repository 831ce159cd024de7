//! Any SDP in a publisher offer or subscriber answer, and any candidate line, through the core's
//! command handler. One core serves all runs; each run joins and leaves its own participant.
#![no_main]

use std::cell::RefCell;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tern_sfu::{Command, Output, ParticipantId, Permissions, PcRole, Sfu, SfuConfig};

thread_local! {
    static CORE: RefCell<(Sfu, Instant, u64)> = RefCell::new({
        let now = Instant::now();
        let config = SfuConfig { public_addr: Some("127.0.0.1:5000".parse().expect("addr")), ..Default::default() };
        (Sfu::new(now, config, 0).expect("core"), now, 0)
    });
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    CORE.with_borrow_mut(|(sfu, now, n)| {
        *n += 1;
        *now += Duration::from_millis(10);
        let p = ParticipantId(*n);
        let join = Command::Join {
            participant: p,
            room: "r".into(),
            identity: format!("p{n}"),
            name: "p".into(),
            permissions: Permissions { publish: true, subscribe: true },
            auto_subscribe: true,
        };
        let _ = sfu.handle_command(*now, join);
        let sdp = text.to_string();
        let _ = sfu.handle_command(*now, Command::PublisherOffer { participant: p, sdp: sdp.clone(), tracks: vec![] });
        let _ = sfu.handle_command(*now, Command::SubscriberAnswer { participant: p, sdp: sdp.clone() });
        let _ = sfu.handle_command(*now, Command::Candidate { participant: p, target: PcRole::Publisher, candidate: sdp });
        let _ = sfu.handle_command(*now, Command::Leave { participant: p });
        while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    });
});
