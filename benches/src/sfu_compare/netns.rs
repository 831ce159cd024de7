//! The network namespace the comparison runs in.
//!
//! Janus (1.1, `ice.c`) never gathers candidates on a loopback interface, and libnice's own
//! fallback skips loopback too, so on a machine with only `lo` Janus offers no candidate at
//! all. The comparison therefore runs in a network namespace of its own (root needed), with a
//! veth pair whose one end carries Janus's only ICE candidate (`ice_enforce_list`); the
//! clients stay on 127.0.0.1. What they send Janus goes over `lo`. libnice pins a host
//! candidate's sends to its interface (`IP_UNICAST_IF`), so Janus's packets to 127.0.0.1 cross
//! the veth pair instead, and the other end must accept them: `route_localnet` (a 127/8
//! destination, and ARP for it, off `lo`) and `accept_local` (a source address of this host).
//! Nothing leaves the namespace.

use std::process::Command;

/// The address Janus gathers its host candidate on (RFC 2544 benchmarking range).
pub const CANDIDATE_IP: &str = "198.18.50.1";

/// Shell commands that give the namespace that address; each ends with `&&`, ready to put
/// before the command that runs in it (see `common::in_own_netns`).
pub const SETUP: &str = "ip link add tcmp0 type veth peer name tcmp1 && \
     ip addr add 198.18.50.1/32 dev tcmp0 && ip link set tcmp0 up && ip link set tcmp1 up && \
     echo 1 > /proc/sys/net/ipv4/conf/tcmp1/route_localnet && \
     echo 1 > /proc/sys/net/ipv4/conf/tcmp1/accept_local &&";

/// Set in the environment of the namespaced re-run.
const ENV: &str = "TERN_SFU_COMPARE_IN_NETNS";

/// Re-runs this program with the same arguments in a network namespace of its own prepared
/// by [`SETUP`], and exits with its status; returns (doing nothing) when already in it.
pub fn reexec_in_own_netns() {
    if std::env::var_os(ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("own executable");
    let status = Command::new("unshare")
        .args(["--net", "--", "sh", "-c"])
        .arg(format!("ip link set lo up && {SETUP} exec \"$0\" \"$@\""))
        .arg(exe)
        .args(std::env::args().skip(1))
        .env(ENV, "1")
        .status()
        .expect("unshare runs (util-linux)");
    if !status.success() {
        eprintln!("the namespaced run failed (it needs root for unshare --net): {status}");
    }
    std::process::exit(status.code().unwrap_or(1));
}
