//! Scenario tests of the SFU core: real str0m clients, in memory, on a fake clock.
//! One behaviour per file.

mod bad_input;
mod candidates;
mod congestion;
mod disconnect;
mod dynacast;
mod forward;
mod h264;
mod ice_tcp;
mod join_leave;
mod keyframes;
mod late_joiner;
mod lossy_downlink;
mod nack;
mod red;
mod renegotiation;
mod room_taps;
mod sdp;
mod simulcast;
mod speakers;
mod taps;
