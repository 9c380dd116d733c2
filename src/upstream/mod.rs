//! The pull-through cache's client of one upstream registry: manifests, blobs,
//! tag lists and referrers over HTTP, signed in with Basic or the token
//! protocol (tokens cached per scope until they expire), with a deadline on
//! every wait. It never forwards a client's own credentials: it signs in only
//! as the configured user. Redirects are followed by reqwest, which drops
//! `Authorization` when one leaves the upstream's origin.
//!
//! It knows nothing of the cache: `registry::proxy` decides when to ask.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use crate::client::auth::basic;
use crate::client::headers::{next_link, parse_www_authenticate};
use crate::config::UpstreamConfig;

/// Every manifest media type Marina stores, asked of the upstream.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Most pages of a tag list read from the upstream for one request.
const MAX_TAG_PAGES: usize = 20;

/// Why an upstream could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// It does not hold what was asked (404).
    #[error("not found upstream")]
    NotFound,
    /// It refused Marina's credentials (or lack of them).
    #[error("the upstream refused access ({0}); check the upstream's credentials")]
    Refused(u16),
    /// It asks Marina to slow down (429), for this many seconds if it said.
    #[error("the upstream is throttling requests")]
    Throttled(Option<u64>),
    /// It could not be reached, failed (5xx) or answered nonsense.
    #[error("the upstream is unavailable: {0}")]
    Unavailable(String),
    /// It did not answer, or stopped sending, within the timeout.
    #[error("the upstream did not answer within {0} s")]
    TimedOut(u64),
    /// What it sends is larger than the configured limit.
    #[error("the upstream's content of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced (or counted) size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// A manifest as the upstream answered it (no body for a HEAD).
#[derive(Debug, Clone)]
pub struct ManifestAnswer {
    /// `Docker-Content-Digest`, if it sent one.
    pub digest: Option<String>,
    /// `Content-Type`, if it sent one.
    pub content_type: Option<String>,
    /// The document (empty for a HEAD).
    pub bytes: Bytes,
}

/// A blob download under way: its announced size and its bytes, each wait for
/// more bounded by the timeout.
pub struct BlobAnswer {
    /// `Content-Length`, if the upstream sent one.
    pub size: Option<u64>,
    /// The body.
    pub body: BoxStream<'static, Result<Bytes, UpstreamError>>,
}

/// One configured upstream registry.
pub struct Upstream {
    base: String,
    http: reqwest::Client,
    username: Option<String>,
    password: Option<String>,
    timeout: Duration,
    /// Bearer tokens by scope, with when they stop being used.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .finish()
    }
}

impl Upstream {
    /// A client for `config`'s upstream; fails when the password source is
    /// unreadable or reqwest refuses the settings.
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, String> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .user_agent(concat!(
                "marina/",
                env!("CARGO_PKG_VERSION"),
                " (pull-through)"
            ))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Upstream {
            base: config.url.trim_end_matches('/').to_string(),
            http,
            username: config.username.clone(),
            password: config.password().map_err(|e| e.to_string())?,
            timeout,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The upstream's base URL, for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET` (or `HEAD`) `/v2/<name>/manifests/<reference>`, reading at most
    /// `limit` bytes of the document.
    pub async fn manifest(
        &self,
        name: &str,
        reference: &str,
        head: bool,
        limit: u64,
    ) -> Result<ManifestAnswer, UpstreamError> {
        let method = if head { Method::HEAD } else { Method::GET };
        let path = format!("/v2/{name}/manifests/{reference}");
        let resp = self
            .send(method, &path, Some(MANIFEST_ACCEPT), name)
            .await?;
        let header = |h| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let digest = header("docker-content-digest");
        let content_type = header(CONTENT_TYPE.as_str());
        let bytes = if head {
            Bytes::new()
        } else {
            self.read_limited(resp, limit).await?
        };
        Ok(ManifestAnswer {
            digest,
            content_type,
            bytes,
        })
    }

    /// The size of a blob, from a `HEAD`.
    pub async fn blob_size(&self, name: &str, digest: &str) -> Result<u64, UpstreamError> {
        let path = format!("/v2/{name}/blobs/{digest}");
        let resp = self.send(Method::HEAD, &path, None, name).await?;
        length(&resp)
            .ok_or_else(|| UpstreamError::Unavailable("a blob HEAD without Content-Length".into()))
    }

    /// Starts downloading a blob.
    pub async fn blob(&self, name: &str, digest: &str) -> Result<BlobAnswer, UpstreamError> {
        let path = format!("/v2/{name}/blobs/{digest}");
        let resp = self.send(Method::GET, &path, None, name).await?;
        let size = length(&resp);
        let idle = self.timeout;
        let secs = idle.as_secs();
        let stream = resp.bytes_stream();
        let body = futures_util::stream::unfold(stream, move |mut s| async move {
            match tokio::time::timeout(idle, s.next()).await {
                Err(_) => Some((Err(UpstreamError::TimedOut(secs)), s)),
                Ok(None) => None,
                Ok(Some(Ok(b))) => Some((Ok(b), s)),
                Ok(Some(Err(e))) => Some((Err(UpstreamError::Unavailable(e.to_string())), s)),
            }
        })
        .boxed();
        Ok(BlobAnswer { size, body })
    }

    /// Every tag of `name` (following `Link` for up to [`MAX_TAG_PAGES`] pages).
    pub async fn tags(&self, name: &str, limit: u64) -> Result<Vec<String>, UpstreamError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let mut path = format!("/v2/{name}/tags/list");
        let mut all = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self.send(Method::GET, &path, None, name).await?;
            let next = next_link(
                resp.headers()
                    .get_all("link")
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            )
            .ok()
            .flatten();
            let bytes = self.read_limited(resp, limit).await?;
            let list: TagList = serde_json::from_slice(&bytes).map_err(|e| {
                UpstreamError::Unavailable(format!("its tag list is not JSON: {e}"))
            })?;
            all.extend(list.tags.unwrap_or_default());
            match next.and_then(|n| same_origin_path(&self.base, &n)) {
                Some(p) => path = p,
                None => break,
            }
        }
        Ok(all)
    }

    /// The descriptors of the referrers index of `digest`.
    pub async fn referrers(
        &self,
        name: &str,
        digest: &str,
        artifact_type: Option<&str>,
        limit: u64,
    ) -> Result<Vec<serde_json::Value>, UpstreamError> {
        let mut path = format!("/v2/{name}/referrers/{digest}");
        if let Some(t) = artifact_type {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("artifactType", t)
                .finish();
            path = format!("{path}?{q}");
        }
        let resp = self.send(Method::GET, &path, None, name).await?;
        let bytes = self.read_limited(resp, limit).await?;
        let index: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            UpstreamError::Unavailable(format!("its referrers index is not JSON: {e}"))
        })?;
        Ok(index
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default())
    }

    /// Reads a whole body, refusing one over `limit` bytes.
    async fn read_limited(
        &self,
        resp: reqwest::Response,
        limit: u64,
    ) -> Result<Bytes, UpstreamError> {
        if let Some(size) = length(&resp).filter(|s| *s > limit) {
            return Err(UpstreamError::TooLarge { size, limit });
        }
        let secs = self.timeout.as_secs();
        let mut out = BytesMut::new();
        let mut stream = resp.bytes_stream();
        loop {
            match tokio::time::timeout(self.timeout, stream.next()).await {
                Err(_) => return Err(UpstreamError::TimedOut(secs)),
                Ok(None) => return Ok(out.freeze()),
                Ok(Some(Err(e))) => return Err(UpstreamError::Unavailable(e.to_string())),
                Ok(Some(Ok(b))) => {
                    out.extend_from_slice(&b);
                    if out.len() as u64 > limit {
                        return Err(UpstreamError::TooLarge {
                            size: out.len() as u64,
                            limit,
                        });
                    }
                }
            }
        }
    }

    /// Sends a request for repository `name`, signing in when challenged, and
    /// maps every answer but 200/206 to an error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        name: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        let scope = format!("repository:{name}:pull");
        let url = format!("{}{path}", self.base);
        let mut authorization = self.cached_token(&scope).map(|t| format!("Bearer {t}"));
        for attempt in 0..2 {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(a) = &authorization {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = self.within(req.send()).await?;
            match resp.status() {
                StatusCode::OK | StatusCode::PARTIAL_CONTENT => return Ok(resp),
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    authorization = Some(self.sign_in(&challenge, &scope).await?);
                }
                status => return Err(status_error(status, &resp)),
            }
        }
        Err(UpstreamError::Refused(401))
    }

    /// The `Authorization` value a challenge asks for: Basic with the
    /// configured user, or a Bearer token from the realm it names.
    async fn sign_in(&self, challenge: &str, scope: &str) -> Result<String, UpstreamError> {
        let challenges = parse_www_authenticate(challenge);
        let creds = self.username.as_deref().zip(self.password.as_deref());
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer.param("realm").ok_or_else(|| {
                UpstreamError::Unavailable("a Bearer challenge without realm".into())
            })?;
            let mut url = reqwest::Url::parse(realm).map_err(|e| {
                UpstreamError::Unavailable(format!("the token realm {realm:?} is not a URL: {e}"))
            })?;
            {
                let mut q = url.query_pairs_mut();
                if let Some(service) = bearer.param("service") {
                    q.append_pair("service", service);
                }
                q.append_pair("scope", bearer.param("scope").unwrap_or(scope));
            }
            let mut req = self.http.get(url);
            if let Some((u, p)) = creds {
                req = req.header(AUTHORIZATION, basic(u, p));
            }
            let resp = self.within(req.send()).await?;
            if !resp.status().is_success() {
                return Err(match resp.status() {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        UpstreamError::Refused(resp.status().as_u16())
                    }
                    s => status_error(s, &resp),
                });
            }
            #[derive(serde::Deserialize)]
            struct TokenAnswer {
                token: Option<String>,
                access_token: Option<String>,
                expires_in: Option<u64>,
            }
            let bytes = self.read_limited(resp, 1 << 20).await?;
            let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| {
                UpstreamError::Unavailable(format!("the token answer is not JSON: {e}"))
            })?;
            let token = answer.token.or(answer.access_token).ok_or_else(|| {
                UpstreamError::Unavailable("the token answer holds no token".into())
            })?;
            // Used until shortly before it expires (the spec's default is 60 s).
            let life = answer.expires_in.unwrap_or(60).saturating_sub(5).max(1);
            let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            tokens.retain(|_, (_, until)| *until > Instant::now());
            tokens.insert(
                scope.to_string(),
                (token.clone(), Instant::now() + Duration::from_secs(life)),
            );
            return Ok(format!("Bearer {token}"));
        }
        match (challenges.iter().any(|c| c.scheme == "basic"), creds) {
            (true, Some((u, p))) => Ok(basic(u, p)),
            _ => Err(UpstreamError::Refused(401)),
        }
    }

    fn cached_token(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(scope)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Waits for an answer's headers at most the timeout.
    async fn within(
        &self,
        send: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Result<reqwest::Response, UpstreamError> {
        match tokio::time::timeout(self.timeout, send).await {
            Err(_) => Err(UpstreamError::TimedOut(self.timeout.as_secs())),
            Ok(Err(e)) if e.is_timeout() => Err(UpstreamError::TimedOut(self.timeout.as_secs())),
            Ok(Err(e)) => Err(UpstreamError::Unavailable(transport_reason(&e))),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

/// `Content-Length`, when the answer has one.
fn length(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The error for an unexpected status.
fn status_error(status: StatusCode, resp: &reqwest::Response) -> UpstreamError {
    match status {
        StatusCode::NOT_FOUND => UpstreamError::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::Refused(status.as_u16()),
        StatusCode::TOO_MANY_REQUESTS => UpstreamError::Throttled(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        ),
        s => UpstreamError::Unavailable(format!("it answered {s}")),
    }
}

/// A transport error's innermost cause (reqwest's own message is generic).
fn transport_reason(e: &reqwest::Error) -> String {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}

/// The path and query of `link` when it stays on `base`'s origin (a relative
/// link does); `None` for another host, which is never followed.
fn same_origin_path(base: &str, link: &str) -> Option<String> {
    if link.starts_with('/') {
        return Some(link.to_string());
    }
    let base = reqwest::Url::parse(base).ok()?;
    let target = base.join(link).ok()?;
    (target.origin() == base.origin()).then(|| match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::same_origin_path;

    #[test]
    fn only_links_on_the_upstream_are_followed() {
        let base = "http://up.example:5000";
        assert_eq!(
            same_origin_path(base, "/v2/a/tags/list?last=x&n=2").as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(
            same_origin_path(base, "http://up.example:5000/v2/a/tags/list?last=x").as_deref(),
            Some("/v2/a/tags/list?last=x")
        );
        assert_eq!(
            same_origin_path(base, "http://evil.example/v2/a/tags/list"),
            None
        );
        assert_eq!(same_origin_path(base, "https://up.example:5000/v2/x"), None);
    }
}
