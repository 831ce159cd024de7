//! Side-by-side load of tern and Janus (VideoRoom): the same publishers fanned out to the
//! same subscribers through each server in turn, by the same Rust clients (str0m in RTP mode;
//! nothing is encoded or decoded), with payloads the subscribers verify byte for byte. The
//! bench is `src/bin/sfu_compare.rs`; `tests/sfu_drivers.rs` keeps both drivers working. The
//! soak bench (`src/bin/soak.rs`) reuses them for a long tern meeting, counted per interval by
//! [`tally`].

pub mod client;
pub mod figures;
pub mod janus;
pub mod janus_api;
pub mod netns;
pub mod peer;
pub mod probe;
pub mod run;
pub mod tally;
pub mod tern;
pub mod ws;

/// Errors of the load clients (a bench tool: described, not matched on).
pub type Error = Box<dyn std::error::Error + Send + Sync>;
