//! Self-signed certificates written as PEM files, for the TLS tests.

use std::path::Path;

use base64::Engine;
use rustls::pki_types::CertificateDer;

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Writes a fresh self-signed certificate for localhost; returns its DER.
pub fn write_certificate(dir: &Path) -> CertificateDer<'static> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let der = generated.cert.der().clone();
    // Write to temporary names, then rename: the server never reads a half-written file.
    std::fs::write(dir.join("cert.tmp"), pem("CERTIFICATE", &der)).expect("write");
    std::fs::write(
        dir.join("key.tmp"),
        pem("PRIVATE KEY", &generated.signing_key.serialize_der()),
    )
    .expect("write");
    std::fs::rename(dir.join("key.tmp"), dir.join("key.pem")).expect("rename");
    std::fs::rename(dir.join("cert.tmp"), dir.join("cert.pem")).expect("rename");
    der
}
