//! Any access token: JWT splitting, base64, JSON, signature and time checks.
#![no_main]

use std::collections::BTreeMap;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use tern_server::auth::Auth;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let auth = Auth::new(&BTreeMap::from([("k".to_string(), "s".to_string())]));
        let _ = auth.verify(text, SystemTime::UNIX_EPOCH);
    }
});
