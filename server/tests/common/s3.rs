//! A real S3-compatible server for recording tests: s3s-fs over a temporary directory, started,
//! stopped and started again on the same port and data (scripts/test.sh installs it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tern_server::config::Config;
use tokio::process::{Child, Command};

pub const ACCESS_KEY: &str = "tern-test";
pub const SECRET_KEY: &str = "tern-test-secret";
pub const BUCKET: &str = "recordings";

/// A running (or stopped) s3s-fs.
pub struct S3 {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// The s3s-fs binary: `S3S_FS`, on PATH, or in ~/.cargo/bin.
fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("S3S_FS") {
        return p.into();
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo = PathBuf::from(home).join(".cargo/bin/s3s-fs");
    if cargo.exists() {
        cargo
    } else {
        "s3s-fs".into()
    }
}

impl S3 {
    /// Starts s3s-fs with an empty bucket.
    pub async fn start() -> S3 {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut s3 = S3 {
            child: None,
            port,
            dir,
        };
        s3.resume().await;
        s3
    }

    /// Starts it again on the same port and data.
    pub async fn resume(&mut self) {
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("s3s-fs runs (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it (storage outage).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points a config's recording storage here.
    pub fn configure(&self, c: &mut Config) {
        let s = &mut c.recording.storage;
        s.backend = tern_recording::Backend::S3;
        s.bucket = BUCKET.into();
        s.endpoint = Some(self.endpoint());
        s.region = Some("us-east-1".into());
        s.access_key_id = Some(ACCESS_KEY.into());
        s.secret_access_key = Some(SECRET_KEY.into());
    }

    /// Where s3s-fs keeps an object.
    pub fn object(&self, key: &str) -> PathBuf {
        self.dir.path().join(BUCKET).join(key)
    }
}
