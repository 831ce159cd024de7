//! What a broadcast request carries from the network: a start body (JSON, with RTMP URLs checked
//! and shown without their keys), and the broadcast id and file path of an HLS URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_broadcast::model::{valid_hls_path, valid_id};
use tern_broadcast::rtmp::{check_rtmp_url, shown_url};
use tern_server::broadcasts::StartBody;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<StartBody>(data) {
        for url in &body.rtmp {
            let _ = check_rtmp_url(url);
            let _ = shown_url(url);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = check_rtmp_url(text);
        let shown = shown_url(text);
        assert!(shown.len() <= text.len() + 16);
        let (id, path) = text.split_once('/').unwrap_or((text, ""));
        let _ = valid_id(id) && valid_hls_path(path);
    }
});
