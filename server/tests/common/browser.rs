//! Headless Chromium driven over the DevTools protocol: launch, open pages, evaluate JavaScript.
//! Flags from ../shared/TESTING.md (fake camera and microphone, loopback ICE candidates).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running browser and its DevTools connection.
pub struct Browser {
    /// Chromium, killed when the browser is dropped (or a launch fails half way).
    _child: KillOnDrop,
    /// The DevTools relay into the browser's network namespace, if any.
    _relay: Option<KillOnDrop>,
    _profile: tempfile::TempDir,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// One page (a DevTools session attached to a target).
#[derive(Clone)]
pub struct Page {
    session: String,
    target: String,
}

impl Page {
    /// Its DevTools session, for [`Browser::call`].
    pub fn session(&self) -> &str {
        &self.session
    }
}

/// Where chromium lives: `$CHROMIUM`, or the Debian package's path.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

impl Browser {
    pub async fn launch() -> Browser {
        Self::launch_with(&[], None).await
    }

    /// Launches with these flags added to the usual ones, and these profile preferences (the
    /// JSON of `Default/Preferences`, as a user's settings or an enterprise policy leave them).
    pub async fn launch_with(extra: &[&str], preferences: Option<&str>) -> Browser {
        Self::launch_from(Command::new(chromium_path()), None, extra, preferences).await
    }

    /// Launches inside the named network namespace (`ip netns`). Chromium's DevTools listen on
    /// that namespace's loopback only, so the test binary is run there too as a relay (see
    /// [`relay_devtools_if_asked`]) from `relay_ip`, an address of that namespace the test
    /// reaches, to it. `test` names the calling test, which must call the relay function first.
    pub async fn launch_in_netns(
        netns: &str,
        relay_ip: &str,
        test: &str,
        extra: &[&str],
    ) -> Browser {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns]).arg(chromium_path());
        let relay = Relay {
            netns,
            ip: relay_ip,
            test,
        };
        Self::launch_from(command, Some(relay), extra, None).await
    }

    async fn launch_from(
        mut command: Command,
        relay: Option<Relay<'_>>,
        extra: &[&str],
        preferences: Option<&str>,
    ) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        if let Some(prefs) = preferences {
            let dir = profile.path().join("Default");
            std::fs::create_dir_all(&dir).expect("profile Default dir");
            std::fs::write(dir.join("Preferences"), prefs).expect("preferences");
        }
        let child = command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
                "--allow-loopback-in-peer-connection",
                "--remote-debugging-port=0",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .expect("chromium starts (install it with the README's test command)");
        let port_file = profile.path().join("DevToolsActivePort");
        let mut text = String::new();
        for _ in 0..200 {
            if let Ok(t) = std::fs::read_to_string(&port_file)
                && t.lines().count() >= 2
            {
                text = t;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut lines = text.lines();
        let (Some(port), Some(path)) = (lines.next(), lines.next()) else {
            panic!("chromium wrote no DevToolsActivePort")
        };
        let (host, relay_child) = match relay {
            None => (format!("127.0.0.1:{port}"), None),
            Some(r) => {
                let (child, at) = r.start(port);
                (at, Some(KillOnDrop(child)))
            }
        };
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{host}{path}"))
            .await
            .expect("devtools connects");
        Browser {
            _child: child,
            _relay: relay_child,
            _profile: profile,
            ws,
            next_id: 0,
        }
    }

    /// Sends a command (to a page session, or to the browser) and waits for its result.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("devtools send");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("devtools: no answer to {method}"))
                .expect("devtools open")
                .expect("devtools message");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("devtools JSON");
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("devtools {method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new window: every page is in the foreground, as two people at two
    /// computers are (a background tab is `document.hidden`, and the demo pauses its video).
    pub async fn open(&mut self, url: &str) -> Page {
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({"url": url, "newWindow": true}),
            )
            .await;
        let target_id = target["targetId"].as_str().expect("target id").to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        let session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Page {
            session,
            target: target_id,
        }
    }

    /// Closes a page.
    pub async fn close(&mut self, page: &Page) {
        self.call(None, "Target.closeTarget", json!({"targetId": page.target}))
            .await;
    }

    /// Evaluates `expression` in `page`, awaiting a promise; returns its JSON value. It runs as
    /// a user gesture, as a click would (screen capture needs one).
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let r = self
            .call(
                Some(&page.session),
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true, "userGesture": true}),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            return json!({"exception": ex});
        }
        r["result"]["value"].clone()
    }
}

impl Browser {
    /// Evaluates `expression` until it gives something other than null, false or an exception
    /// (the page may still be loading); returns that. Panics with `what` after `limit`.
    pub async fn wait_for(
        &mut self,
        page: &Page,
        expression: &str,
        limit: Duration,
        what: &str,
    ) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let v = self.eval(page, expression).await;
            if !v.is_null() && v != Value::Bool(false) && v.get("exception").is_none() {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The frames a demo page decoded, over all the video tracks it receives (a track that
    /// replaced another counts too).
    pub async fn frames_decoded(&mut self, page: &Page) -> u64 {
        let v = self.eval(page, "window.ternDemo.inbound()").await;
        v["video"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["framesDecoded"].as_u64())
            .sum()
    }

    /// A PNG of the page.
    pub async fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        use base64::Engine;
        let r = self
            .call(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .expect("base64 PNG")
    }
}

/// A child process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The environment variable that makes a test binary a DevTools relay: `LISTEN_IP PORT`.
const RELAY_ENV: &str = "TERN_TEST_DEVTOOLS_RELAY";

/// Where a relay runs: its network namespace, the address it listens on, the test to run.
struct Relay<'a> {
    netns: &'a str,
    ip: &'a str,
    test: &'a str,
}

impl Relay<'_> {
    /// Starts the relay to `127.0.0.1:port` in the namespace; returns it and `ip:port` to use.
    fn start(&self, port: &str) -> (Child, String) {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.netns])
            .arg(exe)
            .args(["--exact", self.test, "--nocapture"])
            .env(RELAY_ENV, format!("{} {port}", self.ip))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay starts");
        let stdout = child.stdout.take().expect("relay stdout");
        let at = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("RELAY ").map(str::to_string))
            .expect("the relay says where it listens");
        (child, at)
    }
}

/// When this test binary was started as a DevTools relay (by [`Browser::launch_in_netns`]):
/// forwards TCP from the given address to Chromium's DevTools on this namespace's loopback,
/// and never returns. Otherwise returns at once.
pub fn relay_devtools_if_asked() {
    let Ok(spec) = std::env::var(RELAY_ENV) else {
        return;
    };
    let (ip, port) = spec.split_once(' ').expect("LISTEN_IP PORT");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("relay binds");
        let at = listener.local_addr().expect("addr");
        println!("RELAY {at}");
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            let target = format!("127.0.0.1:{port}");
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

/// JavaScript that sets the size of every remote video tile on a demo page (the page then tells
/// tern the new size) and evaluates to the number of tiles.
pub fn resize_remote_tiles(width: u32, height: u32) -> String {
    format!(
        "document.querySelectorAll('.tile:not([data-participant=\"self\"]) video').forEach((v) => {{ \
         v.style.width = '{width}px'; v.style.height = '{height}px'; v.style.objectFit = 'fill'; }}); \
         document.querySelectorAll('.tile').length"
    )
}
