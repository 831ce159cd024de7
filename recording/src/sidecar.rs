//! One ffmpeg run: spawned on an SDP file, watched through `-progress` (is it encoding?) and its
//! stderr (why did it fail?), stopped with SIGINT so it finishes its segment, killed with its
//! task when all else fails.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Lines of ffmpeg's stderr kept to explain a failure.
const STDERR_LINES: usize = 12;

/// A running (or ended) ffmpeg.
pub struct Sidecar {
    child: Child,
    /// The RTP port of each input stream, in order (RTCP on the next port).
    pub ports: Vec<u16>,
    /// When it was spawned.
    pub spawned: Instant,
    /// `out_time_us` from its progress reports: how much it has encoded.
    out_time: watch::Receiver<u64>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// SIGINT was sent: it is finishing.
    pub interrupted: bool,
    exit: Option<ExitStatus>,
}

impl Sidecar {
    /// Spawns `ffmpeg` with `args`.
    pub fn spawn(ffmpeg: &Path, args: &[String], ports: Vec<u16>) -> std::io::Result<Self> {
        Self::spawn_hiding(ffmpeg, args, ports, Vec::new())
    }

    /// Like [`Sidecar::spawn`], with the `secrets` in its command line (a stream key) replaced
    /// by `****` wherever its stderr repeats them, in logs and in [`Sidecar::last_errors`].
    pub fn spawn_hiding(
        ffmpeg: &Path,
        args: &[String],
        ports: Vec<u16>,
        secrets: Vec<String>,
    ) -> std::io::Result<Self> {
        let mut child = Command::new(ffmpeg)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (tx, out_time) = watch::channel(0u64);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(us) = line.strip_prefix("out_time_us=")
                        && let Ok(us) = us.trim().parse::<u64>()
                    {
                        let _ = tx.send(us);
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let kept = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(mut line)) = lines.next_line().await {
                    for s in secrets.iter().filter(|s| !s.is_empty()) {
                        line = line.replace(s.as_str(), "****");
                    }
                    tracing::debug!(target: "tern::ffmpeg", "{line}");
                    if let Ok(mut k) = kept.lock() {
                        if k.len() == STDERR_LINES {
                            k.pop_front();
                        }
                        k.push_back(line);
                    }
                }
            });
        }
        Ok(Self {
            child,
            ports,
            spawned: Instant::now(),
            out_time,
            stderr,
            interrupted: false,
            exit: None,
        })
    }

    /// True once ffmpeg has bound every input port, RTP and RTCP (it is ready for packets).
    /// Read from /proc/net/udp: probing by binding would race ffmpeg's own bind.
    pub fn listening(&self) -> bool {
        let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
            return false;
        };
        let bound = bound_udp_ports(&table);
        self.ports
            .iter()
            .all(|p| bound.contains(p) && bound.contains(&(p + 1)))
    }

    /// Microseconds of output encoded so far.
    pub fn encoded_us(&self) -> u64 {
        *self.out_time.borrow()
    }

    /// Asks ffmpeg to finish: it closes its segment and exits.
    pub fn interrupt(&mut self) {
        if self.interrupted || self.exit.is_some() {
            return;
        }
        self.interrupted = true;
        let pid = self
            .child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        match pid {
            Some(pid) => {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
            None => self.kill(),
        }
    }

    /// A second SIGINT: ffmpeg exits at once, without its last segment-list line.
    pub fn interrupt_again(&mut self) {
        if self.exit.is_some() {
            return;
        }
        self.interrupted = false;
        self.interrupt();
    }

    /// Kills it at once.
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The last lines it wrote on stderr.
    pub fn last_errors(&self) -> String {
        self.stderr
            .lock()
            .map(|k| k.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default()
    }
}

/// The local ports in a /proc/net/udp table (`sl local_address rem_address ...`, the address
/// as `HEXIP:HEXPORT`).
fn bound_udp_ports(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|local| local.rsplit_once(':'))
        .filter_map(|(_, port)| u16::from_str_radix(port, 16).ok())
        .collect()
}

/// `n` loopback port pairs (RTP on an even port, RTCP on the next) that are free now.
pub(crate) fn free_port_pairs(n: usize) -> std::io::Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    let mut tries = 0;
    while ports.len() < n {
        tries += 1;
        if tries > 200 * n.max(1) {
            return Err(std::io::Error::other("no free loopback port pairs"));
        }
        let rtp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        let Ok(rtcp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port + 1)) else {
            continue;
        };
        ports.push(port);
        held.push((rtp, rtcp));
    }
    Ok(ports)
}

/// The ffprobe next to `ffmpeg` (same directory, or `ffprobe` on PATH).
pub(crate) fn ffprobe_of(ffmpeg: &Path) -> PathBuf {
    match ffmpeg.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("ffprobe"),
        _ => PathBuf::from("ffprobe"),
    }
}

/// How long a media file plays, by ffprobe; `None` when it cannot be read.
pub(crate) async fn probe_duration(ffprobe: &Path, file: &Path) -> Option<f64> {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let d: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (d > 0.0).then_some(d)
}

/// Checks that `ffmpeg` runs.
pub async fn check_ffmpeg(ffmpeg: &Path) -> Result<(), String> {
    let out = Command::new(ffmpeg)
        .arg("-version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", ffmpeg.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} -version failed: {}",
            ffmpeg.display(),
            out.status
        ))
    }
}

/// Stops a sidecar a previous tern left running (it writes into `dir`): SIGINT, then waits up to
/// 15 s for it to finish its segment. A pid that is now some other process is left alone.
pub(crate) async fn stop_orphan(pid: u32, dir: &Path) {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let ours = std::fs::read(proc.join("cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy()))
        .unwrap_or(false);
    let Some(p) = rustix::process::Pid::from_raw(pid as i32).filter(|_| ours) else {
        return;
    };
    tracing::info!(pid, dir = %dir.display(), "stopping the sidecar a previous run left");
    let _ = rustix::process::kill_process(p, rustix::process::Signal::INT);
    let deadline = Instant::now() + std::time::Duration::from_secs(15);
    while proc.exists() && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if proc.exists() {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_of_proc_net_udp_are_read() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                     \x20 1: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0\n\
                     \x20 2: 00000000:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0\n";
        assert_eq!(bound_udp_ports(table), vec![40_000, 40_001]);
        assert!(bound_udp_ports("header only\n").is_empty());
    }
}
