//! Janus 1.1 (Debian's `janus` package) as a child process, configured for the comparison in
//! a temporary directory of its own.
//!
//! Configuration choices, from the comments of Janus's own sample `janus.jcfg` (its docs say
//! nothing else about performance):
//! - `event_loops = 2`: by default every handle gets its own thread and event loop (over a
//!   thousand threads at 500 subscribers); the sample says a fixed number of loops shared by
//!   the handles cuts threads and context switching, provisioned to the CPUs available. Two
//!   cores here, and tern runs two media workers.
//! - `debug_level = 3` (warnings and errors; the default 4 logs every session and handle),
//!   `nice_debug = false`, no event handlers, no loggers; tern runs at `warn` too.
//! - Only the VideoRoom plugin and the WebSockets transport are loaded (the other plugins,
//!   and the HTTP transport, would start threads and sockets of their own), and the transport
//!   writes compact JSON (`json = "plain"`; the default indents every message).
//! - ICE: full ICE, half-trickle (the defaults; the candidates are in the SDP), mDNS lookups
//!   off, and one host candidate on [`super::netns::CANDIDATE_IP`] (see [`super::netns`]).
//! - Rooms are created through the API with `fir_freq = 0` (no periodic keyframe requests,
//!   which the publishers would ignore anyway) and a bitrate cap far above what is sent.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Error;

/// Where Debian installs the binary.
pub const BINARY: &str = "/usr/bin/janus";
/// Where Debian installs the plugins, transports and the rest.
const LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// A running Janus; killed when dropped.
pub struct Janus {
    child: Child,
    /// Its WebSocket API (subprotocol `janus-protocol`).
    pub ws_url: String,
    dir: tempfile::TempDir,
}

impl Janus {
    /// Whether Janus is installed.
    pub fn installed() -> bool {
        Path::new(BINARY).exists()
    }

    /// Starts Janus with `event_loops` media threads, its WebSockets API on a free loopback
    /// port, its ICE candidate on `candidate_ip`; waits until the API answers.
    pub async fn start(event_loops: usize, candidate_ip: &str) -> Result<Janus, Error> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        for (sub, file) in [
            ("plugins", "libjanus_videoroom.so"),
            ("transports", "libjanus_websockets.so"),
        ] {
            std::fs::create_dir_all(d.join(sub))?;
            std::os::unix::fs::symlink(
                Path::new(LIB_DIR).join(sub).join(file),
                d.join(sub).join(file),
            )?;
        }
        std::fs::create_dir_all(d.join("events"))?;
        std::fs::create_dir_all(d.join("loggers"))?;
        let port = free_tcp_port()?;
        std::fs::write(
            d.join("janus.jcfg"),
            core_config(d, event_loops, candidate_ip),
        )?;
        std::fs::write(
            d.join("janus.transport.websockets.jcfg"),
            format!(
                "general: {{\n\tjson = \"plain\"\n\tws = true\n\tws_port = {port}\n\
                 \tws_ip = \"127.0.0.1\"\n\twss = false\n}}\n\
                 admin: {{\n\tadmin_ws = false\n\tadmin_wss = false\n}}\n"
            ),
        )?;
        std::fs::write(d.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
        let log = std::fs::File::create(d.join("janus.log"))?;
        let child = Command::new(BINARY)
            .arg("--configs-folder")
            .arg(d)
            .arg("--config")
            .arg(d.join("janus.jcfg"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        let janus = Janus {
            child,
            ws_url: format!("ws://127.0.0.1:{port}"),
            dir,
        };
        janus.wait_ready(Duration::from_secs(15)).await?;
        Ok(janus)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("janus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(
            if std::env::var_os("TERN_JANUS_DEBUG_LEVEL").is_some() {
                400
            } else {
                30
            },
        )..]
            .join("\n")
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(mut ws) = super::ws::Ws::connect(&self.ws_url, Some("janus-protocol")).await {
                ws.send(&serde_json::json!({"janus": "info", "transaction": "ready"}))
                    .await?;
                if ws.next().await?["janus"] == "server_info" {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("Janus did not come up:\n{}", self.log_tail()).into())
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn core_config(d: &Path, event_loops: usize, candidate_ip: &str) -> String {
    let d = d.display();
    // `TERN_JANUS_DEBUG_LEVEL` raises it when a run needs explaining.
    let debug_level = std::env::var("TERN_JANUS_DEBUG_LEVEL").unwrap_or_else(|_| "3".into());
    format!(
        "general: {{\n\
         \tconfigs_folder = \"{d}\"\n\
         \tplugins_folder = \"{d}/plugins\"\n\
         \ttransports_folder = \"{d}/transports\"\n\
         \tevents_folder = \"{d}/events\"\n\
         \tloggers_folder = \"{d}/loggers\"\n\
         \tdebug_level = {debug_level}\n\
         \tevent_loops = {event_loops}\n\
         \tinterface = \"{candidate_ip}\"\n\
         \tserver_name = \"tern-sfu-compare\"\n\
         }}\n\
         media: {{\n}}\n\
         nat: {{\n\
         \tnice_debug = false\n\
         \tignore_mdns = true\n\
         \tice_enforce_list = \"{candidate_ip}\"\n\
         }}\n\
         events: {{\n\tbroadcast = false\n}}\n"
    )
}

fn free_tcp_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
