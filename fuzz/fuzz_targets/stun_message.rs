//! Any datagram as a STUN or ChannelData message: parsing, attribute walking, address and
//! error-code decoding, the peer policy, and the integrity and fingerprint checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_turn::{ChannelData, IntegrityKey, Message, attr, peer_policy};

fuzz_target!(|data: &[u8]| {
    let _ = ChannelData::parse(data);
    let Ok(m) = Message::parse(data) else { return };
    for a in m.attrs() {
        let _ = attr::decode_error_code(a.value);
        let _ = attr::decode_u32(a.value);
        if let Some(addr) = attr::decode_xor_address(a.value, &m.transaction_id()) {
            let _ = peer_policy::denied_reason(addr.ip());
        }
    }
    let _ = m.unknown_required();
    let _ = m.fingerprint_ok();
    let _ = m.integrity_ok(&IntegrityKey::sha1(b"key"));
    let _ = m.integrity_ok(&IntegrityKey::sha256(b"key"));
});
