//! Benchmarks of tern. The criterion benches are in `benches/`; figures and the commands that
//! reproduce them are in docs/performance.md.
