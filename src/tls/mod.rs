//! HTTPS: rustls (on the `ring` provider, installed explicitly, so nothing needs
//! cmake or aws-lc) in front of poem's TCP listener, with the certificate and key
//! re-read when their files change so a renewal needs no restart.
//!
//! poem's own `rustls` feature is not used: it pulls tokio-rustls with its default
//! features, which bring aws-lc. The acceptor here is small: TCP accept, then a
//! lazily driven handshake (`handshake::HandshakeStream`) so a slow client never
//! blocks the accept loop.

mod acceptor;
mod handshake;
mod reload;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls;

pub use acceptor::TlsAcceptor;
pub use reload::ReloadingCert;

/// The `[tls]` section: certificate chain and key, PEM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files' modification times are checked, in seconds [default: 5].
    #[serde(default = "default_reload")]
    pub reload_secs: u64,
}

fn default_reload() -> u64 {
    5
}

impl TlsConfig {
    /// Checks values the types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.reload_secs == 0 {
            return Err("tls.reload_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// The rustls server configuration over a reloading certificate: TLS 1.2 and 1.3,
/// ALPN `h2` and `http/1.1`.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
