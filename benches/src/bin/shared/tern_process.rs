//! A real `tern` process for the load benches: started from the release build, measured
//! through /proc.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use crate::common;

/// A `tern` process; killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its HTTP address.
    pub http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Starts `target/release/tern` (or `$TERN_BIN`) on free loopback ports with the test API key,
/// plus `extra` flags, and waits until it is healthy.
pub async fn start_server(extra: &[&str]) -> Server {
    start_server_env(extra, &[]).await
}

/// Like [`start_server`], with these environment variables too.
pub async fn start_server_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let bin = std::env::var("TERN_BIN").unwrap_or_else(|_| "target/release/tern".into());
    let port = free_port();
    let child = Command::new(&bin)
        .args([
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--rtc-udp-port",
            "0",
            "--log-level",
            "warn",
        ])
        .args(extra)
        .env("TERN_API_KEY", common::KEY)
        .env("TERN_API_SECRET", common::SECRET)
        .envs(env.iter().copied())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin} starts ({e}); build it first: cargo build --release -p tern-server")
        });
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert!(
        common::wait_healthy(http, Duration::from_secs(20)).await,
        "tern did not become healthy"
    );
    Server { child, http }
}

/// (resident set in KiB, CPU time in clock ticks) of a process, from /proc.
pub fn proc_usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    (rss, ticks)
}
