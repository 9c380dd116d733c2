//! `[[upstreams]]`: the registries Marina pulls through (a pull-through cache),
//! and `unknown_ns`, what a request whose `?ns=` names no upstream gets.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, SecretUrl};

/// One registry Marina caches (`[[upstreams]]`). Requests reach it in two ways:
/// with `?ns=<ns>` (containerd's mirrors send it), where `<name>` is the
/// upstream's own name, or under the local `prefix` (`<prefix><name>`), which
/// any client can use. Either way the content is cached under `<prefix><name>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The `ns` value clients send for this source host (`registry-1.example.org`).
    pub ns: Option<String>,
    /// The local repository prefix the cache lives under (`cache/example/`); by
    /// default `<ns>/`.
    pub prefix: Option<String>,
    /// The upstream registry's base URL (`https://registry-1.example.org`).
    pub url: String,
    /// Seconds a cached tag is served without asking the upstream again.
    #[serde(default = "default_tag_ttl")]
    pub tag_ttl_secs: u64,
    /// Seconds to wait for the upstream to connect, answer, or send more of a
    /// body; past it the client gets a 504.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The largest blob taken from this upstream, in bytes (none: no limit).
    pub max_blob_bytes: Option<u64>,
    /// The user Marina signs in to the upstream as (Basic, or for a token).
    pub username: Option<String>,
    /// Its password, inline (hidden in logs).
    pub password: Option<SecretUrl>,
    /// Or a file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub password_env: Option<String>,
    /// Whether clients may push into (and delete from) the cached names.
    #[serde(default)]
    pub push: ProxyPush,
}

fn default_tag_ttl() -> u64 {
    300
}

fn default_timeout() -> u64 {
    30
}

/// What a push into a proxied name gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyPush {
    /// 403 `DENIED`: the cache only holds what the upstream serves.
    #[default]
    Deny,
    /// Accepted and stored like any push; it is served until the upstream's
    /// copy replaces the tag.
    Allow,
}

/// What a request whose `?ns=` matches no upstream gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownNs {
    /// 404 `NAME_UNKNOWN` naming the namespace: nothing is proxied for it (the
    /// default when any upstream is configured; without upstreams `ns` is ignored).
    #[default]
    Reject,
    /// Served as if `ns` were absent: from the local repository of that name.
    Ignore,
}

impl UpstreamConfig {
    /// An upstream at `url` with every other setting at its default (set `ns`
    /// or `prefix` before use).
    pub fn new(url: impl Into<String>) -> UpstreamConfig {
        UpstreamConfig {
            ns: None,
            prefix: None,
            url: url.into(),
            tag_ttl_secs: default_tag_ttl(),
            timeout_secs: default_timeout(),
            max_blob_bytes: None,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            push: ProxyPush::Deny,
        }
    }

    /// The local prefix, ending in `/`: `prefix`, else `<ns>/`.
    pub fn local_prefix(&self) -> String {
        let p = self
            .prefix
            .clone()
            .or_else(|| self.ns.clone())
            .unwrap_or_default();
        let p = p.trim_matches('/');
        format!("{p}/")
    }

    /// The password from whichever source is set; an error names the source.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        if let Some(p) = &self.password {
            return Ok(Some(p.expose().to_string()));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!(
                    "upstream {}: cannot read password_file {}: {e}",
                    self.url,
                    path.display()
                ))
            })?;
            return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var).map(Some).map_err(|_| {
                ConfigError::Invalid(format!(
                    "upstream {}: password_env {var} is not set",
                    self.url
                ))
            });
        }
        Ok(None)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: String| ConfigError::Invalid(format!("upstream {}: {why}", self.url));
        let scheme = self.url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("http" | "https")) || self.url.len() <= "https://".len() {
            return Err(bad("url must be http://HOST[:PORT] or https://…".into()));
        }
        if self.ns.is_none() && self.prefix.is_none() {
            return Err(bad("set ns, prefix or both".into()));
        }
        if let Some(ns) = &self.ns {
            if ns.is_empty() || ns.contains(['/', '?', '&', ' ']) {
                return Err(bad(format!("ns {ns:?} is not a host name")));
            }
        }
        let prefix = self.local_prefix();
        let probe = format!("{prefix}x");
        if prefix == "/" || probe.parse::<crate::oci::RepoName>().is_err() {
            return Err(bad(format!(
                "the local prefix {prefix:?} is not the start of a repository name; set prefix (a host with a port needs one)"
            )));
        }
        if self.timeout_secs == 0 {
            return Err(bad("timeout_secs must be at least 1".into()));
        }
        let sources = [
            self.password.is_some(),
            self.password_file.is_some(),
            self.password_env.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(bad(
                "set one of password, password_file and password_env".into()
            ));
        }
        if sources.iter().any(|s| *s) && self.username.is_none() {
            return Err(bad("a password needs a username".into()));
        }
        self.password().map(|_| ())
    }
}

/// Checks every upstream, and that no two share an `ns` or overlapping prefixes.
pub(super) fn validate_all(upstreams: &[UpstreamConfig]) -> Result<(), ConfigError> {
    for (i, u) in upstreams.iter().enumerate() {
        u.validate()?;
        for other in &upstreams[..i] {
            if u.ns.is_some() && u.ns == other.ns {
                return Err(ConfigError::Invalid(format!(
                    "two upstreams have ns {:?}",
                    u.ns.as_deref().unwrap_or("")
                )));
            }
            let (a, b) = (u.local_prefix(), other.local_prefix());
            if a.starts_with(&b) || b.starts_with(&a) {
                return Err(ConfigError::Invalid(format!(
                    "upstream prefixes {a:?} and {b:?} overlap: a name would belong to both"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(ns: Option<&str>, prefix: Option<&str>) -> UpstreamConfig {
        UpstreamConfig {
            ns: ns.map(String::from),
            prefix: prefix.map(String::from),
            ..UpstreamConfig::new("http://127.0.0.1:5000")
        }
    }

    #[test]
    fn the_local_prefix_defaults_to_the_namespace() {
        assert_eq!(
            upstream(Some("registry-1.example.org"), None).local_prefix(),
            "registry-1.example.org/"
        );
        assert_eq!(
            upstream(Some("x.org"), Some("/cache/x")).local_prefix(),
            "cache/x/"
        );
    }

    #[test]
    fn bad_upstreams_are_refused_with_a_reason() {
        let cases = [
            (upstream(None, None), "set ns, prefix"),
            (upstream(Some("localhost:5000"), None), "set prefix"),
            (upstream(Some("a.org"), Some("Bad Prefix")), "not the start"),
            (
                UpstreamConfig {
                    url: "ftp://x".into(),
                    ..upstream(Some("a.org"), None)
                },
                "url must be",
            ),
            (
                UpstreamConfig {
                    password: Some(SecretUrl::new("p")),
                    ..upstream(Some("a.org"), None)
                },
                "needs a username",
            ),
        ];
        for (u, why) in cases {
            let e = validate_all(&[u]).unwrap_err().to_string();
            assert!(e.contains(why), "{e:?} should say {why:?}");
        }
        let overlapping = [
            upstream(Some("a.org"), Some("cache/")),
            upstream(Some("b.org"), Some("cache/b/")),
        ];
        assert!(validate_all(&overlapping)
            .unwrap_err()
            .to_string()
            .contains("overlap"));
        let fine = [
            upstream(Some("a.org"), Some("cache/a/")),
            upstream(Some("b.org"), Some("cache/b/")),
        ];
        validate_all(&fine).unwrap();
    }
}
