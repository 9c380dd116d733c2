//! `marina serve` flags for access control and TLS, flattened into
//! [`ServeArgs`](super::serve::ServeArgs) and applied over the file's `[auth]` and
//! `[tls]` sections.

use std::path::PathBuf;

use clap::Args;

use crate::config::env;

use crate::auth::{AuthConfig, AuthScheme};
use crate::config::Config;
use crate::tls::TlsConfig;

/// Access-control and TLS options.
#[derive(Debug, Args)]
pub struct SecureArgs {
    /// PEM certificate chain; with --tls-key, serve HTTPS (reloaded when the file changes).
    #[arg(
        long,
        env = env::TLS_CERT,
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = env::TLS_KEY,
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// htpasswd file of bcrypt users (`marina passwd`, `htpasswd -B`); turns access
    /// control on (by default every user may do everything, anonymous nothing).
    #[arg(long, env = env::HTPASSWD, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// TOML file with the access-control settings (the keys of the `[auth]` section:
    /// scheme, groups, rules, token, throttle); replaces the config file's `[auth]`.
    #[arg(long, env = env::AUTH_CONFIG, value_name = "FILE")]
    pub auth_config: Option<PathBuf>,
    /// How clients authenticate: basic or token [default: basic].
    #[arg(long, env = env::AUTH_SCHEME, value_name = "SCHEME", value_parser = ["basic", "token"])]
    pub auth_scheme: Option<String>,
}

impl SecureArgs {
    /// Applies the flags to `c`.
    pub fn apply(&self, c: &mut Config) -> anyhow::Result<()> {
        if let Some(path) = &self.auth_config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let auth: AuthConfig = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("invalid auth config {}: {e}", path.display()))?;
            c.auth = Some(auth);
        }
        if let Some(path) = &self.htpasswd {
            c.auth.get_or_insert_with(AuthConfig::default).htpasswd = Some(path.clone());
        }
        if let Some(s) = &self.auth_scheme {
            c.auth.get_or_insert_with(AuthConfig::default).scheme = match s.as_str() {
                "token" => AuthScheme::Token,
                _ => AuthScheme::Basic,
            };
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let reload_secs = c.tls.as_ref().map_or(5, |t| t.reload_secs);
            c.tls = Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                reload_secs,
            });
        }
        Ok(())
    }
}
