//! A data message from a participant's data channel: read as text and as binary, and what
//! every recipient would get written back; the refusal of a bad one names its id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_sfu::ParticipantId;
use tern_sfu::data_message::{Sender, encode_delivery, encode_refusal, message_id, parse};

fuzz_target!(|data: &[u8]| {
    for binary in [false, true] {
        match parse(binary, data) {
            Ok(m) => {
                let sender = Sender {
                    participant: Some((ParticipantId(1), "fuzz")),
                };
                let (out_binary, out) = encode_delivery(sender, &m, true);
                assert_eq!(out_binary, binary);
                // What tern writes reads back as the same message.
                let again = parse(out_binary, &out).expect("a delivery parses");
                assert_eq!(again.payload, m.payload);
                assert_eq!(again.to, m.to);
            }
            Err(refusal) => {
                let _ = encode_refusal(&refusal, message_id(binary, data));
            }
        }
    }
});
