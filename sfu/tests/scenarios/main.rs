//! Scenario tests of the SFU core: real str0m clients, in memory, on a fake clock.
//! One behaviour per file.

mod bad_input;
mod disconnect;
mod forward;
mod join_leave;
mod keyframes;
mod late_joiner;
mod renegotiation;
