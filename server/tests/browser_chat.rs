//! Browser end to end: the demo's chat over tern's data channels, in headless Chromium. Messages
//! reach everyone in order, a private one reaches only its recipient, a forged sender is
//! replaced by the real one, and a participant without `publish_data` is refused with a code.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::browser::{Browser, Page};

/// Opens the demo for `name` in room `chat` with a token whose `publish_data` is as given, and
/// waits until its data channels are open; returns the page and its participant id.
async fn join(browser: &mut Browser, base: &str, name: &str, publish_data: bool) -> (Page, String) {
    let token = common::token_with(name, "chat", |g| g.publish_data = publish_data);
    let page = browser
        .open(&format!("{base}/?room=chat&name={name}&token={token}"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = browser
            .eval(
                &page,
                "window.ternDemo?.client?.dataReady ? window.ternDemo.client.dataReady.then(() => window.ternDemo.client.self.id) : null",
            )
            .await;
        if let Value::String(id) = ready {
            return (page, id);
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s data channels never opened: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The chat messages a page shows: (sender id, sender name, text, private).
async fn chat(browser: &mut Browser, page: &Page) -> Vec<(Value, String, String, bool)> {
    let v = browser.eval(page, "window.ternDemo.chat()").await;
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|m| m["mine"] == false)
        .map(|m| {
            (
                m["from"].clone(),
                m["name"].as_str().unwrap_or_default().to_string(),
                m["text"].as_str().unwrap_or_default().to_string(),
                m["private"] == true,
            )
        })
        .collect()
}

/// Waits until `page` shows at least `n` messages from others.
async fn wait_for(
    browser: &mut Browser,
    page: &Page,
    n: usize,
) -> Vec<(Value, String, String, bool)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = chat(browser, page).await;
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_everyone_in_order_and_private_messages_only_their_recipient() {
    let server = common::server().await;
    let base = format!("http://{}", server.http_addr);
    let mut browser = Browser::launch().await;
    let (alice, alice_id) = join(&mut browser, &base, "alice", true).await;
    let (bob, bob_id) = join(&mut browser, &base, "bob", true).await;
    let (carol, _) = join(&mut browser, &base, "carol", true).await;
    let (dave, _) = join(&mut browser, &base, "dave", false).await;

    let sent = browser
        .eval(
            &alice,
            &format!(
                "(async () => {{ for (let i = 0; i < 20; i++) await window.ternDemo.sendChat('hello ' + i); \
                 await window.ternDemo.sendChat('just for bob', '{bob_id}'); return true; }})()"
            ),
        )
        .await;
    assert_eq!(sent, Value::Bool(true), "alice sent: {sent}");
    let expected: Vec<String> = (0..20).map(|i| format!("hello {i}")).collect();

    let at_bob = wait_for(&mut browser, &bob, 21).await;
    let texts: Vec<String> = at_bob.iter().map(|m| m.2.clone()).collect();
    assert_eq!(texts[..20], expected[..], "bob has every message, in order");
    assert_eq!(texts.get(20).map(String::as_str), Some("just for bob"));
    assert!(at_bob[20].3, "shown as private");
    assert!(
        at_bob
            .iter()
            .all(|m| m.0 == alice_id.as_str() && m.1 == "alice")
    );

    for page in [&carol, &dave] {
        let got = wait_for(&mut browser, page, 20).await;
        let texts: Vec<String> = got.iter().map(|m| m.2.clone()).collect();
        assert_eq!(
            texts, expected,
            "everyone else has the 20, in order, and not bob's"
        );
    }

    // A message claiming to be bob's is stamped with its real sender.
    browser
        .eval(
            &alice,
            &format!(
                "window.ternDemo.client.channels['tern-reliable'].send(JSON.stringify({{type: 'data', topic: 'chat', \
                 payload: 'I am bob', from: '{bob_id}', identity: 'bob'}}))"
            ),
        )
        .await;
    let got = wait_for(&mut browser, &carol, 21).await;
    let forged = got
        .iter()
        .find(|m| m.2 == "I am bob")
        .expect("the forged message arrived");
    assert_eq!(forged.0, alice_id.as_str(), "tern wrote the real sender");
    assert_eq!(forged.1, "alice");

    // Dave may read but not send.
    let refused = browser
        .eval(
            &dave,
            "new Promise((resolve) => { \
               window.ternDemo.client.addEventListener('data-error', (e) => resolve(e.detail.code), { once: true }); \
               window.ternDemo.sendChat('let me talk'); \
               setTimeout(() => resolve('no error'), 5000); })",
        )
        .await;
    assert_eq!(refused, "permission_denied");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_alice = chat(&mut browser, &alice).await;
    assert!(
        at_alice.iter().all(|m| m.2 != "let me talk"),
        "nobody got dave's message: {at_alice:?}"
    );
    let shown = browser
        .eval(&dave, "document.getElementById('chat-log').textContent")
        .await;
    assert!(
        shown
            .as_str()
            .unwrap_or_default()
            .contains("permission_denied"),
        "dave's chat says why: {shown}"
    );
    server.shutdown();
}
