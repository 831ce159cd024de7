//! Malformed input over real UDP, sent to `tern turn` and to coturn side by side: tern answers
//! each case the way coturn does (or, like coturn, not at all).

#[path = "common/turn.rs"]
mod turn_tools;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use tern_turn::testkit::{Outcome, Sign, TestClient};
use tern_turn::{Class, Message, Method, attr};
use turn_tools::{Proc, free_udp_port, tern_turn};

/// What a server said: nothing, or a class and error code (0 for success).
type Answer = Option<(Class, u16)>;

struct Probe {
    socket: UdpSocket,
    server: SocketAddr,
    client: TestClient,
}

impl Probe {
    fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(400)))
            .expect("timeout");
        Self {
            socket,
            server,
            client: TestClient::udp("127.0.0.1:1", "test", "secret"),
        }
    }

    fn ask(&mut self, datagram: &[u8]) -> Answer {
        self.socket.send_to(datagram, self.server).expect("send");
        let mut buf = [0u8; 2048];
        let (n, _) = self.socket.recv_from(&mut buf).ok()?;
        let reply = Outcome::Reply(buf[..n].to_vec());
        let m = Message::parse(&buf[..n]).ok()?;
        if m.value(attr::NONCE).is_some() {
            self.client.learn(&reply);
        }
        Some(reply.status())
    }

    /// Gets a nonce (401) and allocates.
    fn allocate(&mut self) {
        let req = self.client.allocate_request(Sign::None);
        assert_eq!(self.ask(&req), Some((Class::Error, 401)));
        let req = self.client.allocate_request(Sign::Sha1);
        assert_eq!(
            self.ask(&req),
            Some((Class::Success, 0)),
            "allocate on {}",
            self.server
        );
    }
}

/// An Allocate carrying the unknown comprehension-required attribute 0x7777.
fn allocate_with_unknown_attribute(p: &mut Probe, sign: Sign) -> Answer {
    let req = p
        .client
        .message(Method::ALLOCATE, Class::Request, sign, |w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])?;
            w.attr(0x7777, b"what")
        });
    p.ask(&req)
}

/// A named case: it builds its datagram(s) on a fresh probe and returns the last answer.
type Case = (&'static str, fn(&mut Probe) -> Answer);

fn cases() -> Vec<Case> {
    vec![
        ("truncated header (19 bytes)", |p| {
            let req = p.client.allocate_request(Sign::None);
            p.ask(&req[..19])
        }),
        ("attribute length overrun", |p| {
            let mut req = p.client.allocate_request(Sign::None);
            req[22..24].copy_from_slice(&200u16.to_be_bytes());
            p.ask(&req)
        }),
        ("bad MESSAGE-INTEGRITY", |p| {
            let req = p.client.allocate_request(Sign::None);
            p.ask(&req);
            p.client.password = "wrong".into();
            let req = p.client.allocate_request(Sign::Sha1);
            p.ask(&req)
        }),
        ("FINGERPRINT mismatch", |p| {
            let mut req = p.client.allocate_request(Sign::None);
            let last = req.len() - 1;
            req[last] ^= 0x55;
            p.ask(&req)
        }),
        (
            "unknown comprehension-required attribute, unauthenticated",
            |p| allocate_with_unknown_attribute(p, Sign::None),
        ),
        (
            "unknown comprehension-required attribute, authenticated",
            |p| {
                let req = p.client.allocate_request(Sign::None);
                p.ask(&req);
                allocate_with_unknown_attribute(p, Sign::Sha1)
            },
        ),
        ("forged nonce", |p| {
            let req = p.client.allocate_request(Sign::None);
            p.ask(&req);
            p.client.nonce = b"0000000000000000forgedforgedforged".to_vec();
            let req = p.client.allocate_request(Sign::Sha1);
            p.ask(&req)
        }),
        ("ChannelBind 0x3FFF", |p| {
            p.allocate();
            let req = p
                .client
                .channel_bind(0x3FFF, "127.0.0.1:9".parse().expect("peer"));
            p.ask(&req)
        }),
        ("unauthenticated Allocate", |p| {
            let req = p.client.allocate_request(Sign::None);
            p.ask(&req)
        }),
    ]
}

fn coturn(dir: &std::path::Path) -> (Proc, SocketAddr) {
    let port = free_udp_port();
    let child = Command::new("turnserver")
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
        .arg(format!("--listening-port={port}"))
        .args([
            "--min-port=42000",
            "--max-port=42999",
            "--lt-cred-mech",
            "--user=test:secret",
        ])
        .args([
            "--realm=tern",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
        ])
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .args(["--log-file=stdout", "--simple-log"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver (apt-get install coturn)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut probe = Probe::new(addr);
    let binding = probe
        .client
        .message(Method::BINDING, Class::Request, Sign::None, |_| Ok(()));
    let up = (0..50).any(|_| probe.ask(&binding).is_some());
    assert!(up, "coturn did not answer a Binding request");
    (Proc(child), addr)
}

#[test]
fn malformed_input_gets_the_answers_coturn_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_coturn, coturn_addr) = coturn(dir.path());
    let (_tern, tern_addr, _) = tern_turn(
        env!("CARGO_BIN_EXE_tern"),
        &[
            "--turn-users",
            "test:secret",
            "--turn-allow-peers",
            "127.0.0.1",
            "--turn-min-port",
            "20000",
            "--turn-max-port",
            "29999",
        ],
    );
    let expected: [Answer; 9] = [
        None,
        Some((Class::Error, 401)),
        Some((Class::Error, 401)),
        None,
        Some((Class::Error, 401)),
        Some((Class::Error, 420)),
        Some((Class::Error, 438)),
        Some((Class::Error, 400)),
        Some((Class::Error, 401)),
    ];
    for ((name, case), expected) in cases().into_iter().zip(expected) {
        let from_coturn = case(&mut Probe::new(coturn_addr));
        let from_tern = case(&mut Probe::new(tern_addr));
        assert_eq!(from_coturn, expected, "coturn, {name}");
        assert_eq!(from_tern, from_coturn, "tern vs coturn, {name}");
    }
}
