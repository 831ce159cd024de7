//! The TURN server's input handler, driven by a sequence of operations decoded from the input:
//! raw client datagrams (UDP and TCP), correctly signed requests with arbitrary methods and
//! attributes (so the authenticated handlers are reached), peer datagrams, Send indications and
//! clock jumps, on a server where the client already holds an allocation, a permission and a
//! channel. Nothing may panic; replies must parse.
#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tern_turn::server::Transport;
use tern_turn::testkit::{Harness, Outcome, PEER_V4, Sign, TestClient, config};
use tern_turn::{Class, Message, Method};

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new(config());
    let mut c = TestClient::udp("198.18.0.10:40000", "alice", "secret");
    let peer: SocketAddr = PEER_V4.parse().expect("peer");
    let relay = c.allocate(&mut h);
    let bind = c.channel_bind(0x4001, peer);
    h.from_client(c.id, &bind);
    let mut tcp = c.clone();
    tcp.id.transport = Transport::Tcp;

    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        let outcome = match op % 6 {
            0 => h.from_client(c.id, chunk),
            1 => h.from_client(tcp.id, chunk),
            2 => {
                let method = Method(
                    u16::from_be_bytes([*chunk.first().unwrap_or(&3), *chunk.get(1).unwrap_or(&0)])
                        & 0x0FFF,
                );
                let attrs = chunk.get(2..).unwrap_or(&[]);
                let req = c.message(method, Class::Request, Sign::Sha1, |w| {
                    let mut a = attrs;
                    while let [k0, k1, l, t @ ..] = a {
                        let l = (*l as usize).min(t.len());
                        w.attr(u16::from_be_bytes([*k0, *k1]), &t[..l])?;
                        a = &t[l..];
                    }
                    Ok(())
                });
                h.from_client(c.id, &req)
            }
            3 => h.from_peer(relay, peer, chunk),
            4 => {
                h.advance(Duration::from_secs(
                    u64::from(*chunk.first().unwrap_or(&1)) * 10,
                ));
                continue;
            }
            _ => {
                let send = c.send_indication(peer, chunk);
                h.from_client(c.id, &send)
            }
        };
        if let Outcome::Reply(bytes) = &outcome {
            let m = Message::parse(bytes).expect("replies parse");
            if m.get(tern_turn::attr::NONCE).is_some() {
                c.learn(&outcome);
            }
        }
    }
});
