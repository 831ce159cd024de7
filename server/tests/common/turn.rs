//! Helpers for TURN tests: `tern turn` and coturn's tools as child processes on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback UDP port (bound, then released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

/// `tern turn` (the binary at `tern`) on ephemeral ports; returns it with its UDP/TCP address
/// and its TLS address. Its relay ports lie below Linux's ephemeral range, so the test peers
/// (on ephemeral loopback ports) are never mistaken for the relay's own addresses.
pub fn tern_turn(tern: &str, extra: &[&str]) -> (Proc, SocketAddr, Option<SocketAddr>) {
    let (proc, udp, tls, _) = tern_turn_with_metrics(tern, extra);
    (proc, udp, tls)
}

/// Like [`tern_turn`]; also the `/metrics` address when `extra` asks for one.
pub fn tern_turn_with_metrics(
    tern: &str,
    extra: &[&str],
) -> (Proc, SocketAddr, Option<SocketAddr>, Option<SocketAddr>) {
    let mut child = Command::new(tern)
        .args([
            "turn",
            "--turn-listen",
            "127.0.0.1:0",
            "--turn-tls-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .args(if extra.contains(&"--turn-min-port") {
            &[][..]
        } else {
            &["--turn-min-port", "20000", "--turn-max-port", "32767"][..]
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tern turn starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut metrics = None;
    let line = loop {
        let line = lines
            .next()
            .and_then(Result::ok)
            .expect("tern turn prints its addresses");
        if let Some(at) = line.find("metrics on http://") {
            let rest = &line[at + "metrics on http://".len()..];
            metrics = rest.split('/').next().and_then(|a| a.parse().ok());
        }
        if line.contains("listening on UDP") {
            break line;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let addrs = |after: &str| -> Vec<SocketAddr> {
        let rest = &line[line.find(after).expect("label") + after.len()..];
        let list = &rest[..rest.find(']').expect("list end")];
        list.split(", ").filter_map(|a| a.parse().ok()).collect()
    };
    let udp = addrs("UDP [")[0];
    let tls = addrs("TLS [").first().copied();
    (Proc(child), udp, tls, metrics)
}

/// coturn's echo peer on a free port.
pub fn echo_peer() -> (Proc, u16) {
    let port = free_udp_port();
    let child = Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnutils_peer (apt-get install coturn)");
    std::thread::sleep(Duration::from_millis(200));
    (Proc(child), port)
}

/// What turnutils_uclient reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UclientReport {
    pub sent_bytes: u64,
    pub received_bytes: u64,
    pub lost_packets: u64,
}

/// turnutils_uclient's arguments for `clients` clients sending `messages` 120-byte messages
/// `gap_ms` apart through the relay on `port` to the echo peer on `peer` (all on loopback);
/// `credentials` and `mode` flags go first.
pub fn uclient_args(
    credentials: &[&str],
    mode: &[&str],
    port: u16,
    peer: u16,
    clients: u32,
    messages: u32,
    gap_ms: u32,
) -> Vec<String> {
    let mut args: Vec<String> = mode
        .iter()
        .chain(credentials)
        .map(|s| s.to_string())
        .collect();
    for (flag, value) in [
        ("-p", port.to_string()),
        ("-e", "127.0.0.1".into()),
        ("-r", peer.to_string()),
        ("-m", clients.to_string()),
        ("-n", messages.to_string()),
        ("-l", "120".into()),
        ("-z", gap_ms.to_string()),
        ("-c", "127.0.0.1".into()),
    ] {
        args.push(flag.into());
        args.push(value);
    }
    args
}

/// Runs turnutils_uclient with `args` and parses its totals.
pub fn uclient(args: &[String]) -> UclientReport {
    let out = Command::new("turnutils_uclient")
        .args(args)
        .output()
        .expect("turnutils_uclient (apt-get install coturn)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let number_after = |label: &str| -> Option<u64> {
        let at = text.rfind(label)? + label.len();
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())?
            .parse()
            .ok()
    };
    match (
        number_after("tot_send_bytes ~ "),
        number_after("tot_recv_bytes ~ "),
        number_after("Total lost packets "),
    ) {
        (Some(s), Some(r), Some(l)) => UclientReport {
            sent_bytes: s,
            received_bytes: r,
            lost_packets: l,
        },
        _ => panic!("turnutils_uclient {args:?} gave no totals:\n{text}"),
    }
}

/// A self-signed certificate and key for TLS tests, made with openssl in `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success(), "openssl made no certificate");
    (cert, key)
}
