//! A real `tern` process for the load benches: started from the release build, measured
//! through /proc.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

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

/// Clock ticks per second of /proc/<pid>/stat.
const HZ: f64 = 100.0;

/// CPU cores used by `pids` over `d`, and their summed RSS in MiB at the end.
pub async fn usage(pids: &dyn Fn() -> Vec<u32>, d: Duration) -> (f64, f64) {
    let ticks = |pids: &[u32]| pids.iter().map(|p| proc_usage(*p).1).sum::<u64>();
    let before_pids = pids();
    let before = ticks(&before_pids);
    let t = Instant::now();
    tokio::time::sleep(d).await;
    let after_pids = pids();
    let after = ticks(&after_pids);
    let rss: u64 = after_pids.iter().map(|p| proc_usage(*p).0).sum();
    let cores = after.saturating_sub(before) as f64 / HZ / t.elapsed().as_secs_f64();
    (cores, rss as f64 / 1024.0)
}
