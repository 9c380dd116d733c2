//! The client behind `marina list*`: lists repositories, tags, manifests and
//! referrers of any registry. It uses Marina's `_marina` listing extension when the
//! registry advertises it through `_oci/ext/discover`, and otherwise falls back to the
//! standard API (`_catalog`, tag list, manifest HEAD/GET, the referrers API, then the
//! referrers tag schema), reporting every requested feature it could not honour.
//!
//! Like the harness, it speaks HTTP only and depends on `oci` alone, never on the
//! server's internals.

mod extension;
mod fallback;
mod http;
pub(crate) mod model;
pub(crate) mod target;
pub(crate) mod usage;

pub use http::{Connection, Credentials};
pub use model::{Manifest, Repository, Tag};
pub use target::{RepoTarget, Target};

use http::Http;

use crate::client::address;

/// Why a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be sent or its answer not read.
    #[error("{reason}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{}", describe_status(method, url, *status, body))]
    Status {
        /// Request method.
        method: &'static str,
        /// The URL requested.
        url: String,
        /// The status received.
        status: u16,
        /// The start of the body, for diagnosis.
        body: String,
    },
    /// The answer could not be understood, or the request cannot be made.
    #[error("{0}")]
    Invalid(String),
}

/// An unexpected answer in one line: the status, the registry's first error
/// (code and message) when the body is the spec's JSON, and the request's path.
fn describe_status(method: &str, url: &str, status: u16, body: &str) -> String {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(url);
    let first = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?.clone();
            let code = e.get("code")?.as_str()?.to_string();
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            // Marina's messages lead with a generic sentence before a colon.
            let message = message.rsplit_once(": ").map_or(message, |(_, m)| m);
            Some(format!("{code}: {message}"))
        });
    let hint = match status {
        401 => "; give --username and --password",
        _ => "",
    };
    match first {
        Some(e) => format!("{status} {e} ({method} {path}){hint}"),
        None if body.trim().is_empty() => format!("{status} ({method} {path}){hint}"),
        None => format!("{status}: {} ({method} {path}){hint}", body.trim()),
    }
}

/// What a list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Repository or tag name, or manifest digest.
    #[default]
    Name,
    /// Time of the last push.
    Pushed,
}

/// A sort: key and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sorting {
    /// What to sort by.
    pub key: SortKey,
    /// Largest first.
    pub descending: bool,
}

impl std::str::FromStr for Sorting {
    type Err = String;

    /// `name`, `pushed`, optionally followed by `:asc` or `:desc`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, dir) = s.split_once(':').unwrap_or((s, "asc"));
        let key = match key {
            "name" | "digest" => SortKey::Name,
            "pushed" | "time" => SortKey::Pushed,
            _ => return Err(format!("unknown sort {key:?}: use name or pushed")),
        };
        let descending = match dir {
            "asc" => false,
            "desc" => true,
            _ => return Err(format!("unknown sort direction {dir:?}: use asc or desc")),
        };
        Ok(Sorting { key, descending })
    }
}

/// Conditions on the manifests listed (or the manifests tags point at).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Exactly this artifact type.
    pub artifact_type: Option<String>,
    /// `KEY` (present) or `KEY=VALUE` (equal); all must hold.
    pub annotations: Vec<String>,
    /// Only tagged (`Some(true)`) or untagged (`Some(false)`) manifests.
    pub tagged: Option<bool>,
}

impl Filters {
    /// Whether a manifest with these fields passes the artifact-type and
    /// annotation conditions (the client-side check of the fallbacks).
    pub fn admit(
        &self,
        artifact_type: Option<&str>,
        annotations: Option<&std::collections::BTreeMap<String, String>>,
    ) -> bool {
        if let Some(want) = &self.artifact_type {
            if artifact_type != Some(want.as_str()) {
                return false;
            }
        }
        self.annotations.iter().all(|f| {
            let ann = annotations;
            match f.split_once('=') {
                Some((k, v)) => ann.and_then(|a| a.get(k)).is_some_and(|x| x == v),
                None => ann.is_some_and(|a| a.contains_key(f.as_str())),
            }
        })
    }

    fn is_empty(&self) -> bool {
        self.artifact_type.is_none() && self.annotations.is_empty() && self.tagged.is_none()
    }
}

/// How to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Sort order.
    pub sort: Sorting,
    /// Filters (ignored for repositories).
    pub filters: Filters,
    /// Most items to return (all when `None`).
    pub limit: Option<usize>,
}

/// Where the answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Marina's `_marina` listing extension.
    Extension,
    /// The standard distribution API.
    Standard,
}

/// A listing with what could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    /// The items, filtered, sorted and limited as asked (as far as possible).
    pub items: Vec<T>,
    /// Which API answered.
    pub source: Source,
    /// Requested features the registry could not provide, one sentence each.
    pub not_honoured: Vec<String>,
}

/// A client for one registry.
pub struct ListingClient {
    http: Http,
}

impl ListingClient {
    /// A client for `registry` (`host[:port]`, or a URL with its scheme). Without a
    /// scheme, `conn.plain_http` or a loopback host (`localhost`, `127.*`, `[::1]`)
    /// means `http`, anything else `https`.
    pub fn new(registry: &str, conn: &Connection) -> Result<Self, ClientError> {
        Ok(ListingClient {
            http: Http::new(
                &address::base_url(registry, conn.plain_http).map_err(ClientError::Invalid)?,
                conn,
            )?,
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.http.base()
    }

    /// Repositories of the registry, or under `namespace`.
    pub async fn repositories(
        &self,
        namespace: Option<&str>,
        opts: &Options,
    ) -> Result<Listing<Repository>, ClientError> {
        if extension::offers(&self.http, None).await? {
            extension::repositories(&self.http, namespace, opts).await
        } else {
            fallback::repositories(&self.http, namespace, opts).await
        }
    }

    /// What the repositories of the registry, or under `namespace`, hold on disk.
    pub async fn usage(&self, namespace: Option<&str>) -> Result<usage::UsageReport, ClientError> {
        if extension::offers(&self.http, None).await? {
            usage::via_extension(&self.http, namespace).await
        } else {
            usage::via_manifests(&self.http, namespace).await
        }
    }

    /// Tags of `repo` with their digests (only those pointing at `digest`, if given).
    pub async fn tags(
        &self,
        repo: &str,
        digest: Option<&str>,
        opts: &Options,
    ) -> Result<Listing<Tag>, ClientError> {
        if extension::offers(&self.http, Some(repo)).await? {
            extension::tags(&self.http, repo, digest, opts).await
        } else {
            fallback::tags(&self.http, repo, digest, opts).await
        }
    }

    /// Manifests of `repo`.
    pub async fn manifests(
        &self,
        repo: &str,
        opts: &Options,
    ) -> Result<Listing<Manifest>, ClientError> {
        if extension::offers(&self.http, Some(repo)).await? {
            extension::manifests(&self.http, repo, None, opts).await
        } else {
            fallback::manifests(&self.http, repo, opts).await
        }
    }

    /// Referrers of `subject` in `repo`.
    pub async fn referrers(
        &self,
        repo: &str,
        subject: &str,
        opts: &Options,
    ) -> Result<Listing<Manifest>, ClientError> {
        if extension::offers(&self.http, Some(repo)).await? {
            extension::manifests(&self.http, repo, Some(subject), opts).await
        } else {
            fallback::referrers(&self.http, repo, subject, opts).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sort_flags() {
        let s = |v: &str| v.parse::<Sorting>();
        assert_eq!(s("name"), Ok(Sorting::default()));
        assert_eq!(
            s("pushed:desc"),
            Ok(Sorting {
                key: SortKey::Pushed,
                descending: true
            })
        );
        assert!(s("size").is_err());
        assert!(s("name:up").is_err());
    }

    #[test]
    fn client_side_filters() {
        let ann: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let f = |t: Option<&str>, a: &[&str]| Filters {
            artifact_type: t.map(str::to_string),
            annotations: a.iter().map(|s| s.to_string()).collect(),
            tagged: None,
        };
        assert!(f(None, &[]).admit(None, None));
        assert!(f(Some("t"), &["k", "k=v"]).admit(Some("t"), Some(&ann)));
        assert!(!f(Some("t"), &[]).admit(Some("u"), Some(&ann)));
        assert!(!f(None, &["k=w"]).admit(None, Some(&ann)));
        assert!(!f(None, &["x"]).admit(None, Some(&ann)));
        assert!(!f(None, &["k"]).admit(None, None));
    }
}
