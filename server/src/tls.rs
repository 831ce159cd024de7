//! HTTPS and WSS: tern terminates TLS itself when given a certificate (`http.tls_cert` and
//! `http.tls_key`, PEM) or asked to make a self-signed one for a LAN test
//! (`http.tls_self_signed`). Browsers need a secure context for camera and microphone anywhere
//! but localhost, so this spares small deployments a proxy.
//!
//! The certificate is re-read when its files change (checked every few seconds) and on SIGHUP,
//! so renewals need no restart; a handshake uses whichever certificate is current. Key exchange
//! prefers the hybrid post-quantum X25519MLKEM768, then X25519 for older clients.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::HttpConfig;

/// How often the certificate files are checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// The current certificate, swapped whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// TLS for the HTTP listener.
pub struct Tls {
    /// Accepts TLS connections with the current certificate.
    pub acceptor: TlsAcceptor,
    current: Arc<Current>,
    /// The PEM files, when the certificate comes from files.
    files: Option<(PathBuf, PathBuf)>,
    /// The DER of a generated self-signed certificate (clients that want to trust it).
    pub self_signed: Option<CertificateDer<'static>>,
}

impl Tls {
    /// TLS as `http` asks, or `None` for plain HTTP. A self-signed certificate names `names`.
    pub fn from_config(http: &HttpConfig, names: Vec<String>) -> anyhow::Result<Option<Self>> {
        let (certified, files, self_signed) = match (&http.tls_cert, &http.tls_key) {
            (Some(cert), Some(key)) => {
                let certified = load(cert, key)?;
                (certified, Some((cert.clone(), key.clone())), None)
            }
            (None, None) if http.tls_self_signed => {
                let (certified, der) = self_signed(names)?;
                (certified, None, Some(der))
            }
            (None, None) => return Ok(None),
            _ => anyhow::bail!("http.tls_cert and http.tls_key go together"),
        };
        let current = Arc::new(Current(RwLock::new(certified)));
        let mut config =
            rustls::ServerConfig::builder_with_provider(tern_turn::net::tls_provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            files,
            self_signed,
        }))
    }

    /// Reads the certificate files again; the next handshakes use them. A broken file keeps
    /// the certificate in use and says why.
    pub fn reload(&self) -> anyhow::Result<()> {
        let Some((cert, key)) = &self.files else {
            return Ok(());
        };
        let certified = load(cert, key)?;
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = certified;
        tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// Reloads when the files change or the process gets SIGHUP, until the runtime stops.
    pub fn watch(self: &Arc<Self>) {
        let Some((cert, key)) = self.files.clone() else {
            return;
        };
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hangups = hangups();
            let mut seen = (modified(&cert), modified(&key));
            let mut tick = tokio::time::interval(WATCH_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = (modified(&cert), modified(&key));
                        if now == seen {
                            continue;
                        }
                        seen = now;
                    }
                    Some(()) = next_hangup(&mut hangups) => {}
                }
                if let Err(e) = tls.reload() {
                    tracing::warn!(error = %format!("{e:#}"), "TLS certificate not reloaded");
                }
            }
        });
    }
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    tern_turn::net::load_certified_key(cert, key).map_err(anyhow::Error::msg)
}

/// A self-signed certificate for `names` (host names or IP addresses).
fn self_signed(names: Vec<String>) -> anyhow::Result<(Arc<CertifiedKey>, CertificateDer<'static>)> {
    let generated =
        rcgen::generate_simple_self_signed(names).context("making a self-signed certificate")?;
    let der = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let signing = tern_turn::net::tls_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("self-signed key: {e}"))?;
    Ok((Arc::new(CertifiedKey::new(vec![der.clone()], signing)), der))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The next SIGHUP; never, where there are none.
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(h) = hangups {
        return h.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}
