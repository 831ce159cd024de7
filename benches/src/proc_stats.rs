//! What a process costs, read from /proc: CPU time from the scheduler's nanosecond counters and
//! the resident set.

/// CPU seconds a process's threads have run, from the scheduler's nanosecond counters
/// (`/proc/<pid>/task/*/schedstat`), which are finer than the 10 ms ticks of `stat`. Threads
/// that have already exited are not counted, so read it from long-lived processes only.
pub fn cpu_seconds(pid: u32) -> f64 {
    task_cpu_seconds(&format!("/proc/{pid}/task"))
}

/// [`cpu_seconds`] of this process.
pub fn own_cpu_seconds() -> f64 {
    task_cpu_seconds("/proc/self/task")
}

fn task_cpu_seconds(dir: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(dir) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// The resident set of a process in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The kernel's counts of UDP datagrams dropped for want of buffer space in this network
/// namespace (`RcvbufErrors` and `SndbufErrors` of `/proc/net/snmp`): (receive, send).
pub fn udp_buffer_errors() -> (u64, u64) {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return (0, 0);
    };
    let field = |name: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    (field("RcvbufErrors"), field("SndbufErrors"))
}
