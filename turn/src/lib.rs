//! tern's STUN and TURN: a zero-copy codec (RFC 8489, RFC 5389, RFC 8656 and ChannelData).
//!
//! Parsing borrows from the datagram and allocates nothing; encoding writes into a buffer the
//! caller owns. Every read of network input is bounds-checked and returns an error instead of
//! panicking.
//!
//! ```
//! use tern_turn::{Class, Message, Method, MessageWriter, attr};
//! let mut buf = [0u8; 128];
//! let mut w = MessageWriter::new(&mut buf, Method::BINDING, Class::Request, [7; 12]).unwrap();
//! w.attr(attr::SOFTWARE, b"tern").unwrap();
//! let n = w.fingerprint().unwrap();
//! let m = Message::parse(&buf[..n]).unwrap();
//! assert_eq!(m.method(), Method::BINDING);
//! assert_eq!(m.fingerprint_ok(), Some(true));
//! ```

pub mod attr;
mod channel;
mod framing;
mod hmac;
mod integrity;
mod message;
#[cfg(feature = "net")]
pub mod net;
pub mod peer_policy;
pub mod server;
#[cfg(feature = "testkit")]
pub mod testkit;
mod writer;

// The public interface is:
pub use channel::{CHANNEL_MAX, CHANNEL_MIN, ChannelData};
pub use framing::stream_frame_len;
pub use integrity::{IntegrityKey, long_term_key_md5, long_term_key_sha256, userhash};
pub use message::{Class, MAGIC_COOKIE, Message, Method, ParseError};
pub use writer::{MessageWriter, WriteError};
