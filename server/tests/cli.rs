//! The `tern` binary itself: `tern token`, `--help`, and a graceful stop on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tern_server::auth::Auth;

const TERN: &str = env!("CARGO_BIN_EXE_tern");
/// A secret of 32 bytes and more.
const S1: &str = "s1-0123456789abcdef0123456789abcdef";

#[test]
fn tern_token_mints_a_token_the_server_accepts() {
    let out = Command::new(TERN)
        .args([
            "token",
            "--api-key",
            "k1",
            "--api-secret",
            S1,
            "--identity",
            "alice",
            "--room",
            "demo",
            "--grants",
            "join,subscribe",
        ])
        .output()
        .expect("tern runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf-8");
    let auth = Auth::new(&[("k1".to_string(), S1.to_string())].into());
    let claims = auth
        .verify(token.trim(), SystemTime::now())
        .expect("the token verifies");
    assert_eq!(
        (claims.sub.as_str(), claims.room.as_deref()),
        ("alice", Some("demo"))
    );
    assert!(
        claims.grants.join
            && claims.grants.subscribe
            && !claims.grants.publish
            && !claims.grants.admin
            && !claims.grants.record
    );

    // --record adds the grant that starts and stops recordings from signaling.
    let out = Command::new(TERN)
        .args(["token", "--api-key", "k1", "--api-secret", S1])
        .args(["--identity", "host", "--room", "demo", "--record"])
        .output()
        .expect("tern runs");
    let token = String::from_utf8(out.stdout).expect("utf-8");
    let claims = auth
        .verify(token.trim(), SystemTime::now())
        .expect("the token verifies");
    assert!(claims.grants.record && claims.grants.join && claims.grants.publish);

    let bad = Command::new(TERN)
        .args([
            "token",
            "--api-key",
            "k",
            "--api-secret",
            S1,
            "--identity",
            "a",
            "--room",
            "r",
            "--grants",
            "fly",
        ])
        .output()
        .expect("tern runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown grant"));
}

#[test]
fn help_lists_every_config_flag_with_its_environment_variable() {
    let out = Command::new(TERN)
        .arg("--help")
        .output()
        .expect("tern runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--http-listen",
        "--rtc-udp-port",
        "--rtc-advertise-ip",
        "--rtc-workers",
        "--sfu-keyframe-interval-ms",
        "--signaling-max-message-bytes",
        "--log-format",
        "--api-key",
        "--config",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
    assert!(help.contains("TERN_RTC_ADVERTISE_IP"));
}

#[tokio::test]
async fn sigterm_tells_participants_and_exits_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = Command::new(TERN)
        .args([
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--rtc-udp-port",
            "0",
            "--turn-listen",
            "127.0.0.1:0",
            "--api-key",
            common::KEY,
            "--api-secret",
            common::SECRET,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tern starts");
    let http = format!("127.0.0.1:{port}").parse().expect("addr");
    assert!(
        common::wait_healthy(http, Duration::from_secs(20)).await,
        "tern did not become healthy"
    );
    let (mut alice, _) = common::join(http, "alice", "r").await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    assert_eq!(alice.expect("closing").await["reason"], "server_shutdown");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "tern did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// A secret under 32 bytes is refused by the server and by `tern token`, with the reason and
/// the way out; a long one given as a flag works but draws a warning.
#[test]
fn weak_secrets_are_refused_and_a_secret_flag_is_warned_about() {
    let server = Command::new(TERN)
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--rtc-udp-port",
            "0",
            "--turn-enabled",
            "false",
        ])
        .args(["--api-key", "k", "--api-secret", "x"])
        .output()
        .expect("tern runs");
    assert!(
        !server.status.success(),
        "tern started with a 1-byte secret"
    );
    let err = String::from_utf8_lossy(&server.stderr);
    assert!(
        err.contains("1 bytes") && err.contains("openssl rand"),
        "{err}"
    );

    let token = Command::new(TERN)
        .args([
            "token",
            "--api-key",
            "k",
            "--api-secret",
            "short",
            "--identity",
            "a",
        ])
        .args(["--room", "r"])
        .output()
        .expect("tern runs");
    assert!(!token.status.success());

    let flagged = Command::new(TERN)
        .args([
            "token",
            "--api-key",
            "k",
            "--api-secret",
            S1,
            "--identity",
            "a",
        ])
        .args(["--room", "r"])
        .output()
        .expect("tern runs");
    assert!(flagged.status.success());
    assert!(String::from_utf8_lossy(&flagged.stderr).contains("visible to every user"));
    let from_env = Command::new(TERN)
        .args(["token", "--api-key", "k", "--identity", "a", "--room", "r"])
        .env("TERN_API_SECRET", S1)
        .output()
        .expect("tern runs");
    assert!(from_env.status.success());
    assert!(!String::from_utf8_lossy(&from_env.stderr).contains("visible"));
}

/// Development mode prints a demo link, never the secret it generated.
#[test]
fn development_mode_prints_a_demo_link_and_no_secret() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(TERN)
        .args(["--http-listen", "127.0.0.1:0", "--rtc-udp-port", "0"])
        .args(["--turn-enabled", "false", "--log-format", "text"])
        .env_remove("TERN_API_KEY")
        .env_remove("TERN_API_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tern starts");
    let out = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("utf-8");
        let done = line.contains("development mode");
        lines.push(line);
        if done || lines.len() > 50 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(text.contains("/?room=demo&name="), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
