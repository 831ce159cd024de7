//! Benchmarks of tern. The criterion benches are in `benches/`; figures and the commands that
//! reproduce them are in docs/performance.md.

/// Prints the median, min and max of `v` (milliseconds), and every value.
pub fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{name}: median {:.0} ms, min {:.0}, max {:.0} ({} runs: {v:.0?})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    );
}

pub mod kernel_floor;
pub mod proc_stats;
pub mod sfu_compare;
