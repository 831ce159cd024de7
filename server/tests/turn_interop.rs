//! coturn's own client relays through `tern turn` over UDP, TCP and TLS, with channels and with
//! Send indications, with static and REST credentials: no loss, equal bytes each way.

#[path = "common/turn.rs"]
mod turn_tools;

use turn_tools::{
    echo_peer, self_signed, tern_turn, tern_turn_with_metrics, uclient, uclient_args,
};

/// Runs turnutils_uclient against `port` with `mode` flags and checks coturn's pass criterion.
fn relays_cleanly(port: u16, peer: u16, mode: &[&str], credentials: &[&str]) {
    let args = uclient_args(credentials, mode, port, peer, 4, 200, 5);
    let report = uclient(&args);
    assert!(report.sent_bytes >= 4 * 200 * 120, "{mode:?}: {report:?}");
    assert_eq!(
        report.sent_bytes, report.received_bytes,
        "{mode:?}: {report:?}"
    );
    assert_eq!(report.lost_packets, 0, "{mode:?}: {report:?}");
}

/// `GET /metrics` over a plain TCP connection.
fn metrics_text(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics listener");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The portable I/O path (one system call per datagram, `--turn-batch-io false`) relays as
/// cleanly as the batched one, and `tern turn` alone serves its counters at `/metrics`.
#[test]
fn the_portable_io_path_relays_cleanly_and_standalone_metrics_count_it() {
    let (_tern, addr, _, metrics) = tern_turn_with_metrics(
        env!("CARGO_BIN_EXE_tern"),
        &[
            "--turn-users",
            "test:secret",
            "--turn-allow-peers",
            "127.0.0.1",
            "--turn-batch-io",
            "false",
            "--turn-metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let metrics = metrics.expect("tern turn prints its metrics address");
    let (_peer, peer) = echo_peer();
    let user = ["-u", "test", "-w", "secret"];
    std::thread::scope(|s| {
        for mode in [&[][..], &["-s"][..]] {
            s.spawn(move || relays_cleanly(addr.port(), peer, mode, &user));
        }
    });
    // Two runs of 4 clients x 200 messages, each relayed to the peer and back.
    let want = 2.0 * 4.0 * 200.0 * 2.0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let text = metrics_text(metrics);
        if metric(&text, "tern_turn_relayed_packets_total") >= want
            || std::time::Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        metric(&text, "tern_turn_relayed_packets_total") >= want,
        "{text}"
    );
    assert!(
        metric(&text, "tern_turn_relayed_bytes_total") >= want * 120.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "tern_turn_dropped_total{reason=\"send_failed\"}"),
        0.0
    );
}

#[test]
fn turnutils_uclient_relays_over_udp_tcp_and_tls_in_every_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let (_tern, addr, tls) = tern_turn(
        env!("CARGO_BIN_EXE_tern"),
        &[
            "--turn-users",
            "test:secret",
            "--turn-secret",
            "rest-secret",
            "--turn-allow-peers",
            "127.0.0.1",
            "--turn-tls-cert",
            cert.to_str().expect("path"),
            "--turn-tls-key",
            key.to_str().expect("path"),
        ],
    );
    let tls = tls.expect("TLS listener").port();
    let (_peer, peer) = echo_peer();
    let user = ["-u", "test", "-w", "secret"];
    let rest = ["-u", "bob", "-W", "rest-secret"];
    let runs = [
        (&[][..], addr.port(), &user),
        (&["-s"][..], addr.port(), &user),
        (&["-t"][..], addr.port(), &user),
        (&["-t", "-s"][..], addr.port(), &user),
        (&["-t", "-S"][..], tls, &user),
        (&["-t", "-S", "-s"][..], tls, &user),
        (&[][..], addr.port(), &rest),
        (&["-t"][..], addr.port(), &rest),
    ];
    // The clients mostly wait on their own timers: run them side by side.
    std::thread::scope(|s| {
        for (mode, port, credentials) in runs {
            s.spawn(move || relays_cleanly(port, peer, mode, &credentials[..]));
        }
    });
}

#[test]
fn the_default_policy_keeps_loopback_peers_out() {
    let (_tern, addr, _) = tern_turn(env!("CARGO_BIN_EXE_tern"), &["--turn-users", "test:secret"]);
    let (_peer, peer) = echo_peer();
    let args = uclient_args(
        &["-u", "test", "-w", "secret"],
        &[],
        addr.port(),
        peer,
        1,
        10,
        5,
    );
    let out = std::process::Command::new("turnutils_uclient")
        .args(args)
        .output()
        .expect("turnutils_uclient");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("403"),
        "expected 403 Forbidden for a loopback peer:\n{text}"
    );
    assert!(
        !text.contains("tot_recv_bytes ~ 1200"),
        "data went through:\n{text}"
    );
}

#[test]
fn a_large_burst_over_tcp_is_answered_in_full() {
    use std::io::{Read, Write};
    use tern_turn::testkit::{Sign, TestClient};
    use tern_turn::{Class, Method, stream_frame_len};
    let (_tern, addr, _) = tern_turn(env!("CARGO_BIN_EXE_tern"), &["--turn-users", "test:secret"]);
    let mut c = TestClient::udp("127.0.0.1:1", "test", "secret");
    // 8,000 Binding requests in one write: far more than one read of the server's buffer.
    const N: usize = 8000;
    let burst: Vec<u8> = (0..N)
        .flat_map(|_| c.message(Method::BINDING, Class::Request, Sign::None, |_| Ok(())))
        .collect();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let writer = {
        let mut s = stream.try_clone().expect("clone");
        std::thread::spawn(move || s.write_all(&burst))
    };
    let (mut got, mut answers, mut buf) = (Vec::new(), 0, [0u8; 65536]);
    while answers < N {
        let n = stream.read(&mut buf).expect("answers keep coming");
        assert!(n > 0, "closed after {answers} answers");
        got.extend_from_slice(&buf[..n]);
        while let Some(Ok(len)) = stream_frame_len(&got) {
            if got.len() < len {
                break;
            }
            got.drain(..len);
            answers += 1;
        }
    }
    writer.join().expect("writer").expect("burst written");
    assert_eq!(answers, N);
}
