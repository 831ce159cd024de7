//! One SFU core shared by the runs of a fuzz target (making one costs a DTLS certificate). Each
//! run gets a fresh participant, joined before and removed after.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use tern_sfu::{Command, Output, ParticipantId, Permissions, Sfu, SfuConfig};

thread_local! {
    static CORE: RefCell<(Sfu, Instant, u64)> = RefCell::new({
        let now = Instant::now();
        let config = SfuConfig { public_addr: Some("127.0.0.1:5000".parse().expect("addr")), ..Default::default() };
        (Sfu::new(now, config, 0).expect("core"), now, 0)
    });
}

/// Runs `f` with the core, the time and a freshly joined participant.
pub fn with_participant(f: impl FnOnce(&mut Sfu, Instant, ParticipantId)) {
    CORE.with_borrow_mut(|(sfu, now, n)| {
        *n += 1;
        *now += Duration::from_millis(10);
        let participant = ParticipantId(*n);
        let join = Command::Join {
            participant,
            room: "r".into(),
            identity: format!("p{n}"),
            name: "p".into(),
            permissions: Permissions::ALL,
            auto_subscribe: true,
        };
        let _ = sfu.handle_command(*now, join);
        f(sfu, *now, participant);
        let _ = sfu.handle_command(*now, Command::Leave { participant });
        while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    });
}
