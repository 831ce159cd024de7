//! Writing responses: the same transaction id and method, SOFTWARE, MESSAGE-INTEGRITY with the
//! key the request was checked with, and FINGERPRINT when the request carried one.

use crate::{Class, IntegrityKey, Message, MessageWriter, Method, WriteError, attr};

/// The reason phrase for an error code.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        486 => "Allocation Quota Reached",
        508 => "Insufficient Capacity",
        _ => "Server Error",
    }
}

/// How to answer one request.
pub(crate) struct Reply<'k> {
    pub method: Method,
    pub transaction_id: [u8; 12],
    pub key: Option<&'k IntegrityKey>,
    pub fingerprint: bool,
    pub software: Option<&'k str>,
}

impl<'k> Reply<'k> {
    /// An answer to `msg`, not yet signed.
    pub fn to(msg: &Message<'_>, software: Option<&'k str>) -> Self {
        Self {
            method: msg.method(),
            transaction_id: msg.transaction_id(),
            key: None,
            fingerprint: msg.get(attr::FINGERPRINT).is_some(),
            software,
        }
    }

    /// A success response with the attributes `body` writes.
    pub fn success(
        &self,
        out: &mut [u8],
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), WriteError>,
    ) -> Option<usize> {
        self.write(out, Class::Success, body)
    }

    /// An error response with `code` and the attributes `body` writes.
    pub fn error(
        &self,
        out: &mut [u8],
        code: u16,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), WriteError>,
    ) -> Option<usize> {
        self.write(out, Class::Error, |w| {
            w.error_code(code, reason(code))?;
            body(w)
        })
    }

    fn write(
        &self,
        out: &mut [u8],
        class: Class,
        body: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), WriteError>,
    ) -> Option<usize> {
        let mut w = MessageWriter::new(out, self.method, class, self.transaction_id).ok()?;
        body(&mut w).ok()?;
        if let Some(s) = self.software {
            w.attr(attr::SOFTWARE, s.as_bytes()).ok()?;
        }
        if let Some(k) = self.key {
            w.integrity(k).ok()?;
        }
        if self.fingerprint {
            w.fingerprint().ok()
        } else {
            Some(w.finish())
        }
    }
}

/// Nothing more to write.
pub(crate) fn none(_: &mut MessageWriter<'_>) -> Result<(), WriteError> {
    Ok(())
}
