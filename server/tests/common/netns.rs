//! A second network namespace for one test peer, joined to the test's own namespace by a veth
//! pair: the server side `srv0` (198.18.0.1), the peer side `peer0` (198.18.0.2). Tests cut the
//! link, cap it or make it lossy on `srv0`; nothing leaves the namespaces.

use std::process::Command;

/// The server's address on the veth pair.
pub const SERVER_IP: &str = "198.18.0.1";
/// The peer's address.
pub const PEER_IP: &str = "198.18.0.2";
/// The server-side end of the veth pair.
pub const SERVER_LINK: &str = "srv0";

/// Runs a shell command, which must succeed.
pub fn sh(command: &str) {
    let status = Command::new("sh")
        .args(["-c", command])
        .status()
        .expect("sh");
    assert!(status.success(), "`{command}` failed: {status}");
}

/// The peer's namespace, removed when dropped. Create it inside the test's own network and
/// mount namespaces (see [`super::in_own_netns`]).
pub struct PeerNetns(pub String);

impl PeerNetns {
    pub fn create() -> Self {
        let name = format!("ternpeer{}", std::process::id());
        // `ip netns` keeps its mounts under /run/netns: private to this test's mount namespace.
        sh("mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns");
        sh(&format!(
            "ip netns add {name} && \
             ip link add {SERVER_LINK} type veth peer name peer0 netns {name} && \
             ip addr add {SERVER_IP}/24 dev {SERVER_LINK} && ip link set {SERVER_LINK} up && \
             ip netns exec {name} ip addr add {PEER_IP}/24 dev peer0 && \
             ip netns exec {name} ip link set peer0 up && \
             ip netns exec {name} ip link set lo up"
        ));
        Self(name)
    }
}

impl Drop for PeerNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A development-mode server on [`SERVER_IP`] (the embedded TURN relay off), with `change`
/// applied; its base URL, and the Chromium flag that lets pages from it use the camera over
/// plain HTTP.
pub async fn dev_server(
    change: impl FnOnce(&mut tern_server::config::Config),
) -> (tern_server::Running, String, String) {
    let server = super::server_with(|c| {
        c.auth.keys.clear();
        c.auth.dev_allow_remote = true;
        c.http.listen = format!("{SERVER_IP}:0").parse().expect("addr");
        c.rtc.bind_ip = SERVER_IP.parse().expect("ip");
        c.turn.enabled = false;
        change(c);
    })
    .await;
    let base = format!("http://{}", server.http_addr);
    let secure = format!("--unsafely-treat-insecure-origin-as-secure={base}");
    (server, base, secure)
}
