//! Server configuration: defaults, then a TOML file, then `MARINA_*` variables, then
//! flags (the CLI merges the last two in `cli::serve`).

pub(crate) mod env;
mod keys;
mod upstream;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::auth::config::{ExternalIssuer, Rule, ThrottleConfig, TokenConfig};
pub use crate::auth::{AuthConfig, AuthScheme};
pub use crate::tls::TlsConfig;
pub use upstream::{ProxyPush, UnknownNs, UpstreamConfig};

/// Which kinds of deletion the registry allows (each answers 405 `UNSUPPORTED` when off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeletePolicy {
    /// `DELETE /v2/<name>/manifests/<digest>`.
    pub manifests: bool,
    /// `DELETE /v2/<name>/manifests/<tag>`.
    pub tags: bool,
    /// `DELETE /v2/<name>/blobs/<digest>`.
    pub blobs: bool,
}

impl Default for DeletePolicy {
    fn default() -> Self {
        DeletePolicy {
            manifests: true,
            tags: true,
            blobs: true,
        }
    }
}

/// A deprecation notice attached as a `Warning` header to matching repositories.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarningRule {
    /// Glob over repository names, e.g. `legacy/*` (`*` stays within a path segment, `**` crosses them).
    pub repositories: String,
    /// The text sent as `Warning: 299 - "<message>"`.
    pub message: String,
}

/// A retention rule (`[[retention]]`): what the garbage collector deletes in
/// matching repositories before it collects. Each limit is optional; a manifest
/// an index of its repository references, and a referrer whose subject is still
/// there, are never deleted by a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// Glob over repository names (`team/*`: one segment; `**`: any depth).
    pub repositories: String,
    /// Keep the N most recently pushed tags; older tags are deleted.
    pub keep_tags: Option<u32>,
    /// Delete tags not pushed for this many seconds.
    pub tag_max_age_secs: Option<u64>,
    /// Delete untagged manifests pushed more than this many seconds ago.
    pub untagged_max_age_secs: Option<u64>,
    /// Tags no rule deletes (globs over tag names, e.g. `latest`, `release-*`).
    #[serde(default)]
    pub protect_tags: Vec<String>,
}

/// Everything `marina serve` can be told: how the server listens, secures and
/// reports itself, plus [`RegistryConfig`], what the registry itself is told.
/// The file is flat (`listen` and `sparse_manifests` sit side by side); an
/// unknown key anywhere is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Log output: `pretty` or `json`.
    pub log_format: String,
    /// Addresses (`10.0.0.5`) or networks (`10.0.0.0/8`) of reverse proxies whose
    /// `X-Forwarded-For` names the client in access logs.
    pub trusted_proxies: Vec<String>,
    /// Seconds SIGTERM/SIGINT waits for in-flight requests before exiting.
    pub shutdown_timeout_secs: u64,
    /// Seconds a connection may go without moving a byte either way before it
    /// is closed (idle keep-alives, unfinished headers, stalled bodies and
    /// downloads), and may take to send an HTTP/1 request's head however its
    /// bytes trickle in. 0 never closes one.
    pub idle_timeout_secs: u64,
    /// A second address serving only `/metrics`, `/healthz` and `/readyz`, open to
    /// all (bind it to a private interface). Without it `/metrics` is on the main
    /// address: open without access control, for signed-in users with it.
    pub metrics_listen: Option<String>,
    /// Access control (`[auth]`, see [`AuthConfig`]); none: open to all.
    pub auth: Option<AuthConfig>,
    /// HTTPS (`[tls]`, see [`TlsConfig`]); none: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// The registry's own settings (stores, features, limits, lifecycle).
    #[serde(flatten)]
    pub registry: RegistryConfig,
}

/// What the registry itself is told: where its stores are, which features are
/// on, its limits and its storage lifecycle. It sees no listen address, TLS or
/// access control: those belong to the server around it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegistryConfig {
    /// Directory holding `meta.db`, `blobs/` and `uploads/`.
    pub data_dir: PathBuf,
    /// Where metadata lives: `None` for SQLite in `data_dir/meta.db`, or a
    /// `postgres://USER:PASS@HOST:PORT/DB` URL for PostgreSQL.
    pub metadata_url: Option<SecretUrl>,
    /// Where blobs live: `None` for files under `data_dir/blobs`, or
    /// `s3://BUCKET/PREFIX?endpoint=URL&region=REGION` for S3-compatible storage
    /// (uploads still stage under `data_dir/uploads`).
    pub blob_url: Option<String>,
    /// Answer blob `GET`s with a 307 to a short-lived presigned URL of the
    /// object store (needs `blob_url`), so clients download straight from it.
    pub blob_redirect: bool,
    /// S3 access key id; else `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// S3 secret key; else `AWS_SECRET_ACCESS_KEY`. Hidden in `Debug`.
    pub s3_secret_access_key: Option<SecretUrl>,
    /// Deletion switches.
    pub delete: DeletePolicy,
    /// Serve the referrers API (off: 404, and no `OCI-Subject` on pushes).
    pub referrers: bool,
    /// Accept manifests whose blobs or children were never pushed.
    pub sparse_manifests: bool,
    /// Largest manifest accepted, in bytes (413 beyond).
    pub max_manifest_bytes: u64,
    /// Most referrers in one response before a `Link` to the next page.
    pub referrers_page_size: u32,
    /// Most tags or repositories in one list response, whatever `n` asks for.
    pub max_list_page: u32,
    /// Seconds an idle upload session lives before its staging file is removed.
    pub upload_expiry_secs: u64,
    /// MiB kept free on the data directory's filesystem: pushes that would
    /// leave less are refused (507), so deletes and garbage collection still
    /// have room when the disk fills. 0: none kept.
    pub min_free_mib: u64,
    /// Write SQLite's log (`meta.db-wal`) out with zeros to the size it
    /// reaches between checkpoints (about 79 MiB) when the registry opens, and
    /// keep it there: its syncs then overwrite blocks the file has instead of
    /// growing it, which also commits the filesystem's metadata. Costs that
    /// much disk and a write of it at each start; off for throwaway
    /// registries ([`Config::ephemeral`]).
    pub preallocate_log: bool,
    /// Seconds between garbage collections; 0 turns them off.
    pub gc_interval_secs: u64,
    /// Seconds a blob link lives without a manifest referencing it (a push
    /// uploads its layers before its manifest); older unreferenced links, and
    /// then blobs nothing holds, are collected.
    pub gc_grace_secs: u64,
    /// Deprecation notices per repository pattern.
    pub warnings: Vec<WarningRule>,
    /// Retention rules the garbage collector applies (`[[retention]]`).
    pub retention: Vec<RetentionRule>,
    /// Registries Marina pulls through and caches (`[[upstreams]]`).
    pub upstreams: Vec<UpstreamConfig>,
    /// What a request whose `?ns=` names no upstream gets (only with upstreams;
    /// without any, `ns` is ignored).
    pub unknown_ns: UnknownNs,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:5000".into(),
            log_format: "pretty".into(),
            trusted_proxies: Vec::new(),
            shutdown_timeout_secs: 30,
            idle_timeout_secs: 60,
            metrics_listen: None,
            auth: None,
            tls: None,
            registry: RegistryConfig::default(),
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            data_dir: PathBuf::from("./marina-data"),
            metadata_url: None,
            blob_url: None,
            blob_redirect: false,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            delete: DeletePolicy::default(),
            referrers: true,
            sparse_manifests: false,
            max_manifest_bytes: 4 * 1024 * 1024,
            referrers_page_size: 500,
            max_list_page: 1000,
            upload_expiry_secs: 3600,
            min_free_mib: 64,
            preallocate_log: true,
            gc_interval_secs: 600,
            gc_grace_secs: 3600,
            warnings: Vec::new(),
            retention: Vec::new(),
            upstreams: Vec::new(),
            unknown_ns: UnknownNs::default(),
        }
    }
}

/// A URL that may carry a password (`postgres://user:secret@host/db`), or a
/// bare secret: shown with the password (or all of a bare secret) replaced by
/// `***` in `Debug`, `Display` and logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL itself, password included, for the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (if any) replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            // Not a URL: a bare secret.
            return "***".into();
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                // A password may also sit in the query (`?password=`).
                let tail = redact_query_password(tail);
                format!("{scheme}://{user}{hidden}@{host}{tail}")
            }
            None => format!("{scheme}://{authority}{}", redact_query_password(tail)),
        }
    }
}

/// `password=…` in a query, hidden.
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// The file has a top-level key no setting has (a typo such as `lisen`).
    #[error(
        "invalid config file {path}: unknown key `{key}` on line {line}; the keys are: {known}"
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Its line, from 1.
        line: usize,
        /// Every key the file may hold.
        known: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The spec caps all warning text of one response at 4096 bytes.
pub const MAX_WARNING_BYTES: usize = 4096;

impl Config {
    /// Reads a TOML file over the defaults; a key that no setting has is refused.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse = |source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        };
        let config: Config = toml::from_str(&text).map_err(parse)?;
        // `flatten` cannot refuse unknown keys, so the top level is checked here
        // (nested tables such as `[delete]` refuse their own).
        let table = toml::de::DeTable::parse(&text).map_err(parse)?;
        let known = keys::top_level();
        for key in table.get_ref().keys() {
            if !known.contains(&key.get_ref().as_ref()) {
                let line = text[..key.span().start].matches('\n').count() + 1;
                return Err(ConfigError::UnknownKey {
                    path: path.to_path_buf(),
                    key: key.get_ref().to_string(),
                    line,
                    known: known.join(", "),
                });
            }
        }
        Ok(config)
    }

    /// Checks values that the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log_format must be pretty or json, not {:?}",
                self.log_format
            )));
        }
        check_listen("listen", &self.listen)?;
        if let Some(m) = &self.metrics_listen {
            check_listen("metrics_listen", m)?;
        }
        self.proxy_networks()?;
        if let Some(auth) = &self.auth {
            auth.validate().map_err(ConfigError::Invalid)?;
        }
        if let Some(tls) = &self.tls {
            tls.validate().map_err(ConfigError::Invalid)?;
        }
        self.registry.validate()
    }

    /// The parsed `trusted_proxies`.
    pub fn proxy_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "trusted_proxies: {p:?} is neither an IP address nor a network such as 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }

    /// A configuration for tests and the conformance runner: ephemeral loopback port,
    /// the given data directory, every optional feature on (sparse manifests included).
    pub fn ephemeral(data_dir: &Path) -> Config {
        Config {
            listen: "127.0.0.1:0".into(),
            registry: RegistryConfig {
                data_dir: data_dir.to_path_buf(),
                sparse_manifests: true,
                preallocate_log: false,
                ..RegistryConfig::default()
            },
            ..Config::default()
        }
    }
}

impl RegistryConfig {
    /// Checks values that the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_manifest_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_manifest_bytes must be at least 1024".into(),
            ));
        }
        if self.referrers_page_size == 0 || self.max_list_page == 0 {
            return Err(ConfigError::Invalid("page sizes must be at least 1".into()));
        }
        if self.blob_redirect && self.blob_url.is_none() {
            return Err(ConfigError::Invalid(
                "blob_redirect needs blob_url: only an object store can sign a URL".into(),
            ));
        }
        if let Some(url) = &self.blob_url {
            // The rest of the URL is read when the store opens.
            let bucket = url
                .strip_prefix("s3://")
                .map(|r| r.split(['/', '?']).next().unwrap_or(""));
            if bucket.is_none_or(str::is_empty) {
                return Err(ConfigError::Invalid(format!(
                    "blob_url {url:?} is not s3://BUCKET[/PREFIX][?endpoint=…&region=…] (leave it unset for files in data_dir)"
                )));
            }
        }
        if let Some(url) = &self.metadata_url {
            let scheme = url.expose().split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("postgres" | "postgresql")) {
                return Err(ConfigError::Invalid(format!(
                    "metadata_url {url} is not a postgres:// URL (leave it unset for SQLite in data_dir)"
                )));
            }
        }
        let mut total = 0;
        for w in &self.warnings {
            crate::oci::name::repository_glob(&w.repositories)
                .map_err(|e| ConfigError::Invalid(format!("warning rule: {e}")))?;
            if w.message.contains('"')
                || w.message.contains('\\')
                || w.message.chars().any(|c| c.is_control())
            {
                return Err(ConfigError::Invalid(format!(
                    "warning message {:?} must not contain quotes, backslashes or control characters",
                    w.message
                )));
            }
            total += w.message.len();
        }
        for r in &self.retention {
            crate::oci::name::repository_glob(&r.repositories)
                .map_err(|e| ConfigError::Invalid(format!("retention rule: {e}")))?;
            for t in &r.protect_tags {
                globset::Glob::new(t).map_err(|e| {
                    ConfigError::Invalid(format!("retention rule: protected tag {t:?}: {e}"))
                })?;
            }
            if r.keep_tags.is_none()
                && r.tag_max_age_secs.is_none()
                && r.untagged_max_age_secs.is_none()
            {
                return Err(ConfigError::Invalid(format!(
                    "retention rule for {:?} sets no limit (keep_tags, tag_max_age_secs or untagged_max_age_secs)",
                    r.repositories
                )));
            }
        }
        upstream::validate_all(&self.upstreams)?;
        if total > MAX_WARNING_BYTES {
            return Err(ConfigError::Invalid(format!(
                "warning messages add up to {total} bytes; the spec allows at most {MAX_WARNING_BYTES}"
            )));
        }
        Ok(())
    }
}

/// Refuses a listen address without a host, saying what was probably meant.
fn check_listen(key: &str, addr: &str) -> Result<(), ConfigError> {
    if addr.parse::<u16>().is_ok() {
        return Err(ConfigError::Invalid(format!(
            "{key} {addr:?} has no host; did you mean 127.0.0.1:{addr} (this machine only) or 0.0.0.0:{addr} (every interface)?"
        )));
    }
    if !addr.contains(':') {
        return Err(ConfigError::Invalid(format!(
            "{key} {addr:?} has no port; write HOST:PORT, e.g. 127.0.0.1:5000"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_password_never_shows() {
        let u = super::SecretUrl::new("postgres://marina:s3cret@db:5432/marina?sslmode=disable");
        assert_eq!(
            u.to_string(),
            "postgres://marina:***@db:5432/marina?sslmode=disable"
        );
        assert!(!format!("{u:?}").contains("s3cret"));
        let q = super::SecretUrl::new("postgres://db/marina?user=m&password=s3cret");
        assert_eq!(q.to_string(), "postgres://db/marina?user=m&password=***");
        assert_eq!(
            super::SecretUrl::new("postgres://m@db/x").to_string(),
            "postgres://m@db/x"
        );
    }

    use super::*;

    #[test]
    fn a_listen_address_without_host_suggests_one() {
        let c = Config {
            listen: "5150".into(),
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("127.0.0.1:5150"), "{err}");
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks_and_refuse_the_rest() {
        let mut c = Config {
            trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()],
            ..Config::default()
        };
        assert_eq!(c.proxy_networks().unwrap().len(), 2);
        c.trusted_proxies.push("proxy.example".into());
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:6000\"\n[delete]\nblobs = false\n[[warnings]]\nrepositories = \"old/*\"\nmessage = \"moved\"\n").unwrap();
        let c = Config::from_file(&p).unwrap();
        assert_eq!(c.listen, "127.0.0.1:6000");
        assert!(!c.registry.delete.blobs && c.registry.delete.tags);
        assert_eq!(c.registry.warnings.len(), 1);
        c.validate().unwrap();
        std::fs::write(&p, "lisen = \"x\"").unwrap();
        let err = Config::from_file(&p).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, line: 1, .. } if key == "lisen"),
            "{err}"
        );
        // A registry key and a server key side by side, a typo on line 3.
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:6000\"\nsparse_manifests = true\nsparse_manifest = true\n",
        )
        .unwrap();
        let err = Config::from_file(&p).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, line: 3, .. } if key == "sparse_manifest"),
            "{err}"
        );
        assert!(err.to_string().contains("sparse_manifests"), "{err}");
        // Nested tables still refuse their own unknown keys.
        std::fs::write(&p, "[delete]\nblob = false\n").unwrap();
        assert!(matches!(
            Config::from_file(&p),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn retention_rules_need_a_limit_and_valid_globs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[[retention]]\nrepositories = \"ci/**\"\nkeep_tags = 10\nprotect_tags = [\"latest\"]\n",
        )
        .unwrap();
        let c = Config::from_file(&p).unwrap();
        assert_eq!(c.registry.retention[0].keep_tags, Some(10));
        c.validate().unwrap();
        let mut none = c.clone();
        none.registry.retention[0].keep_tags = None;
        assert!(none
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sets no limit"));
        let mut bad = c.clone();
        bad.registry.retention[0].repositories = "ci/[".into();
        assert!(matches!(bad.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn warnings_over_the_spec_cap_are_refused() {
        let c = RegistryConfig {
            warnings: vec![
                WarningRule {
                    repositories: "*".into(),
                    message: "x".repeat(3000),
                },
                WarningRule {
                    repositories: "a/*".into(),
                    message: "y".repeat(1200),
                },
            ],
            ..RegistryConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
    }
}
