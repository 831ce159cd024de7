//! Relay bench: tern's TURN relay (in this process, once with batched UDP I/O and once on the
//! portable path) and coturn (a child process) side by side on loopback, driven by coturn's
//! turnutils_uclient through an echo peer. Reports CPU microseconds per relayed datagram and loss
//! at rising rates, then RSS per allocation at about 2,000 allocations. Needs `turnserver`, `turnutils_uclient` and `turnutils_peer` (apt-get install
//! coturn).
//!
//! `cargo run --release -p tern-benches --bin turn_relay`

#[path = "../../../server/tests/common/turn.rs"]
mod turn_tools;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tern_benches::proc_stats::{cpu_seconds, rss_kib};
use tern_turn::net::{NetConfig, Relay};
use tern_turn::peer_policy::PeerPolicy;
use tern_turn::server::{RelayIp, ServerConfig};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// (messages sent, messages received, lost) from one uclient run.
fn uclient(port: u16, peer: u16, clients: u32, messages: u32, gap_ms: u32) -> (u64, u64, u64) {
    let args = turn_tools::uclient_args(
        &["-u", "bench", "-w", "secret"],
        &[],
        port,
        peer,
        clients,
        messages,
        gap_ms,
    );
    let out = Command::new("turnutils_uclient")
        .args(args)
        .output()
        .expect("turnutils_uclient");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let after = |label: &str| -> u64 {
        text.rfind(label)
            .and_then(|at| {
                text[at + label.len()..]
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|s| !s.is_empty())?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    (
        after("tot_send_msgs="),
        after("tot_recv_msgs="),
        after("Total lost packets "),
    )
}

/// Allocations for the memory measurement.
const ALLOCATIONS: usize = 2000;

/// Opens `n` allocations on the server at `port`, one UDP socket each, each with a permission
/// and a channel to 127.0.0.1:9; returns the sockets, which keep the allocations' 5-tuples alive.
fn allocate_many(port: u16, n: usize) -> Vec<std::net::UdpSocket> {
    use tern_turn::testkit::{Outcome, Sign, TestClient};
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut sockets = Vec::with_capacity(n);
    let mut buf = [0u8; 1500];
    while sockets.len() < n {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut c = TestClient::udp("127.0.0.1:1", "bench", "secret");
        let mut ask = |req: Vec<u8>| -> Option<Outcome> {
            socket.send_to(&req, server).ok()?;
            let (len, _) = socket.recv_from(&mut buf).ok()?;
            Some(Outcome::Reply(buf[..len].to_vec()))
        };
        let Some(challenge) = ask(c.allocate_request(Sign::None)) else {
            break;
        };
        c.learn(&challenge);
        let ok = ask(c.allocate_request(Sign::Sha1)).map(|o| o.code());
        if ok == Some(437) {
            continue; // this source port still has an allocation from the load runs
        }
        let bound = ask(c.channel_bind(0x4001, peer)).map(|o| o.code());
        assert_eq!(
            (ok, bound),
            (Some(0), Some(0)),
            "allocation {} on port {port}",
            sockets.len()
        );
        sockets.push(socket);
    }
    sockets
}

fn main() {
    let me = std::process::id();
    let peer_port = free_port();
    let _peer = Kill(
        Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnutils_peer"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let coturn_port = free_port();
    let coturn = Kill(
        Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={coturn_port}"))
            .args([
                "--min-port=30000",
                "--max-port=39999",
                "--lt-cred-mech",
                "--user=bench:secret",
            ])
            .args([
                "--realm=bench.local",
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
            ])
            .args([
                "--no-dtls",
                "--relay-threads=2",
                "--log-file=stdout",
                "--simple-log",
            ])
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver"),
    );
    let local = "127.0.0.1".parse().expect("ip");
    let config = ServerConfig {
        realm: "bench.local".into(),
        users: [("bench".to_owned(), "secret".to_owned())].into(),
        relay_v4: Some(RelayIp {
            bind: local,
            public: local,
        }),
        min_port: 40000,
        max_port: 49999,
        max_allocations_per_user: 100_000,
        max_allocations: 100_000,
        bandwidth_bytes_per_sec: 0,
        unauthorized_per_sec: 1_000_000,
        peer_policy: PeerPolicy::allowing([local]),
        ..ServerConfig::default()
    };
    // Two tern relays in this process, one batching UDP I/O and one on the portable path;
    // only the one under load is busy when its CPU is read.
    let start_tern = |batch: bool, min_port: u16| {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let config = ServerConfig {
            min_port,
            max_port: min_port + 4999,
            ..config.clone()
        };
        Relay::start(
            config,
            NetConfig {
                listen: vec![listen],
                tls_listen: Vec::new(),
                tls: None,
                workers: 2,
                socket_buffer: 4 << 20,
                relay_socket_buffer: 0,
                batch,
            },
        )
        .expect("relay starts")
    };
    let batched = start_tern(true, 40000);
    let portable = start_tern(false, 45000);
    std::thread::sleep(Duration::from_millis(500));
    let servers = [
        ("tern", batched.udp_addrs[0].port(), me),
        ("tern portable", portable.udp_addrs[0].port(), me),
        ("coturn", coturn_port, coturn.0.id()),
    ];

    println!(
        "# CPU per relayed datagram and loss (uclient: 120-byte messages through an echo peer)"
    );
    println!(
        "| clients x msgs, gap | offered msg/s | tern us/dgram (batched) | tern us/dgram (portable) | coturn us/dgram | batched / coturn | lost (batched, portable, coturn) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (clients, messages, gap) in [
        (10, 500, 10),
        (20, 1000, 5),
        (50, 1000, 5),
        (100, 1000, 5),
        (200, 1000, 5),
    ] {
        let mut row = Vec::new();
        for (_, port, pid) in servers {
            let before = cpu_seconds(pid);
            let (sent, received, lost) = uclient(port, peer_port, clients, messages, gap);
            let cpu = cpu_seconds(pid) - before;
            // Each echoed message crosses the relay twice.
            let datagrams = (sent + received).max(1) as f64;
            row.push((cpu * 1e6 / datagrams, lost));
        }
        println!(
            "| {clients} x {messages}, {gap} ms | {} | {:.2} | {:.2} | {:.2} | {:.2} | {}, {}, {} |",
            clients * 1000 / gap,
            row[0].0,
            row[1].0,
            row[2].0,
            row[0].0 / row[2].0.max(1e-9),
            row[0].1,
            row[1].1,
            row[2].1
        );
    }

    println!(
        "\n# RSS per allocation: {ALLOCATIONS} allocations, each with a permission and a channel"
    );
    println!("| server | RSS before (KiB) | RSS after (KiB) | bytes per allocation |");
    println!("|---|---|---|---|");
    for (name, port, pid) in [servers[0], servers[2]] {
        let before = rss_kib(pid);
        let clients = allocate_many(port, ALLOCATIONS);
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_kib(pid);
        println!(
            "| {name} | {before} | {after} | {} |",
            after.saturating_sub(before) * 1024 / ALLOCATIONS as u64
        );
        drop(clients);
    }
    batched.stop();
    portable.stop();
}
