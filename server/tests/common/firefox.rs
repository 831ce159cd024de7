//! Headless Firefox driven over WebDriver BiDi (built into Firefox; no geckodriver): launch with a
//! fake camera and microphone, open pages, evaluate JavaScript.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Preferences for a test profile: fake media, no prompts, loopback ICE, no background traffic.
const PREFS: &str = r#"
user_pref("media.navigator.streams.fake", true);
user_pref("media.navigator.permission.disabled", true);
user_pref("media.peerconnection.ice.loopback", true);
user_pref("media.peerconnection.ice.obfuscate_host_addresses", false);
user_pref("media.autoplay.default", 0);
user_pref("media.autoplay.blocking_policy", 0);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.newtabpage.enabled", false);
"#;

/// A running Firefox and its BiDi session.
pub struct Firefox {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Firefox {
    pub async fn launch() -> Firefox {
        let profile = tempfile::tempdir().expect("profile dir");
        std::fs::write(profile.path().join("user.js"), PREFS).expect("prefs");
        let bin = std::env::var("FIREFOX").unwrap_or_else(|_| "firefox-esr".into());
        let mut child = Command::new(&bin)
            .args([
                "--headless",
                "--no-remote",
                "--remote-debugging-port",
                "0",
                "--profile",
            ])
            .arg(profile.path())
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("firefox starts (install firefox-esr with the README's test command)");
        let stderr = child.stderr.take().expect("stderr");
        let url = tokio::task::spawn_blocking(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_string());
                }
            }
            None
        });
        let url = tokio::time::timeout(Duration::from_secs(30), url)
            .await
            .expect("firefox announces BiDi")
            .expect("join")
            .expect("a ws:// url");
        let (ws, _) = tokio_tungstenite::connect_async(format!("{url}/session"))
            .await
            .expect("BiDi connects");
        let mut ff = Firefox {
            child,
            _profile: profile,
            ws,
            next_id: 0,
        };
        ff.call("session.new", json!({"capabilities": {}})).await;
        ff
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send(Message::text(
                json!({"id": id, "method": method, "params": params}).to_string(),
            ))
            .await
            .expect("send");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("BiDi: no answer to {method}"))
                .expect("open")
                .expect("message");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("JSON");
            if v["id"] == id {
                assert_ne!(v["type"], "error", "BiDi {method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new tab; returns its browsing context.
    pub async fn open(&mut self, url: &str) -> String {
        let created = self
            .call("browsingContext.create", json!({"type": "tab"}))
            .await;
        let context = created["context"].as_str().expect("context").to_string();
        self.call(
            "browsingContext.navigate",
            json!({"context": context, "url": url, "wait": "complete"}),
        )
        .await;
        context
    }

    /// Evaluates `expression` (awaiting a promise) and returns its value, passed through JSON.
    pub async fn eval(&mut self, context: &str, expression: &str) -> Value {
        let wrapped = format!("(async () => JSON.stringify(await ({expression})))()");
        let r = self
            .call("script.evaluate", json!({"expression": wrapped, "target": {"context": context}, "awaitPromise": true}))
            .await;
        match r["result"]["value"].as_str() {
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => json!({"exception": r}),
        }
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
