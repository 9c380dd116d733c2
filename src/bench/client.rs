//! The benchmark's HTTP client for one registry: keep-alive connections pooled to
//! the concurrency, no proxy, no redirects, and every `Location` checked to stay on
//! the registry's own origin, so only the given URL is ever contacted. Blob bodies
//! are streamed from the generator and response bodies are counted, never kept.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use super::content::BlobSpec;
use super::signing::Signer;
use crate::client::{address, Credentials};
use crate::oci::media_types;

/// The `Accept` header of manifest requests.
pub use crate::oci::media_types::MANIFEST_ACCEPT;

/// The benchmark's raw client of one registry (a hyper pool sized for rate phases), addressed by its base URL.
#[derive(Debug, Clone)]
pub struct BenchClient {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    /// Set by [`BenchClient::ping`] when the registry asked for credentials.
    signer: Option<std::sync::Arc<Signer>>,
}

/// An answer whose body was read and counted (and kept only when small).
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body length.
    pub len: u64,
    /// The body, when it was at most `keep` bytes.
    pub body: Option<Bytes>,
}

/// Errors name the request and, for unexpected statuses, the start of the body.
async fn unexpected(what: &str, resp: Response) -> anyhow::Error {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    anyhow!("{what}: unexpected {status}: {body}")
}

impl BenchClient {
    /// A client for `url` keeping up to `pool` idle connections; each request is
    /// abandoned after `timeout`.
    pub fn new(url: &str, pool: usize, timeout: Duration) -> Result<BenchClient> {
        let normal = address::base_url(url, false).map_err(|e| anyhow!(e))?;
        let base = Url::parse(&format!("{normal}/"))
            .with_context(|| format!("invalid registry URL {url:?}"))?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .http1_only()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(BenchClient {
            http,
            base,
            timeout,
            signer: None,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:5000/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (starting with `/v2/`) on this registry.
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("invalid path {path:?}"))
    }

    /// Resolves a `Location` or `Link` target against the base URL and refuses any
    /// other origin.
    pub fn resolve(&self, location: &str) -> Result<Url> {
        let u = self
            .base
            .join(location)
            .with_context(|| format!("invalid location {location:?}"))?;
        if u.origin() != self.base.origin() {
            bail!(
                "the registry pointed at another origin ({u}); only {} is contacted",
                self.base
            );
        }
        Ok(u)
    }

    /// A request, signed when the registry asked for credentials.
    async fn request(&self, method: Method, url: Url) -> Result<reqwest::RequestBuilder> {
        let auth = match &self.signer {
            Some(s) => Some(s.authorization(&url).await?),
            None => None,
        };
        let req = self.http.request(method, url).timeout(self.timeout);
        Ok(match auth {
            Some(a) => req.header(reqwest::header::AUTHORIZATION, a),
            None => req,
        })
    }

    /// Whether requests are signed (the lean connection pool sends none).
    pub fn signed(&self) -> bool {
        self.signer.is_some()
    }

    /// Sends a request and reads the body, keeping it when at most `keep` bytes.
    pub async fn call(&self, req: reqwest::RequestBuilder, keep: usize) -> Result<Answer> {
        let mut resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut len = 0u64;
        let mut kept = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            len += chunk.len() as u64;
            if len <= keep as u64 {
                kept.extend_from_slice(&chunk);
            }
        }
        Ok(Answer {
            status,
            headers,
            len,
            body: (len <= keep as u64).then(|| Bytes::from(kept)),
        })
    }

    /// `GET` of a path or absolute same-origin URL, body kept up to `keep` bytes.
    pub async fn get(&self, target: &str, keep: usize) -> Result<Answer> {
        let url = self.resolve(target)?;
        self.call(self.request(Method::GET, url).await?, keep).await
    }

    /// `DELETE` of a path; the status tells what happened.
    pub async fn delete(&self, target: &str) -> Result<StatusCode> {
        let url = self.resolve(target)?;
        Ok(self
            .call(self.request(Method::DELETE, url).await?, 0)
            .await?
            .status)
    }

    /// `GET /v2/`: the registry answers; when it asks for authentication and
    /// `credentials` are given, every later request is signed as its challenge
    /// asks (Basic, or Bearer tokens from its realm).
    pub async fn ping(&mut self, credentials: Option<&Credentials>) -> Result<()> {
        let a = self
            .get("/v2/", 4096)
            .await
            .with_context(|| format!("cannot reach the registry at {}", self.base))?;
        match (a.status, credentials) {
            (StatusCode::OK, _) => Ok(()),
            (StatusCode::UNAUTHORIZED, None) => bail!(
                "{} asks for authentication (401 on /v2/); give --username and --password",
                self.base
            ),
            (StatusCode::UNAUTHORIZED, Some(c)) => {
                let signer = Signer::from_challenge(self.http.clone(), &self.base, &a.headers, c)?;
                self.signer = Some(std::sync::Arc::new(signer));
                let again = self.get("/v2/", 4096).await?;
                if again.status != StatusCode::OK {
                    bail!(
                        "GET {}v2/ answered {} with the credentials given; check --username and --password",
                        self.base,
                        again.status
                    );
                }
                Ok(())
            }
            (s, _) => bail!("GET {}v2/ answered {s}, not 200", self.base),
        }
    }

    /// Opens an upload session and returns its location.
    pub async fn start_upload(&self, repo: &str) -> Result<Url> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let resp = self
            .request(Method::POST, url)
            .await?
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(unexpected("POST upload", resp).await);
        }
        self.location(&resp)
    }

    fn location(&self, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("{} answer without a Location header", resp.status()))?;
        self.resolve(loc)
    }

    fn with_digest(mut url: Url, digest: &str) -> Url {
        url.query_pairs_mut().append_pair("digest", digest);
        url
    }

    /// Monolithic push: `POST` a session, then one `PUT` carrying the whole blob,
    /// streamed from the generator.
    pub async fn push_monolithic(&self, repo: &str, blob: BlobSpec, digest: &str) -> Result<()> {
        let session = self.start_upload(repo).await?;
        let resp = self
            .request(Method::PUT, Self::with_digest(session, digest))
            .await?
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, blob.size)
            .body(reqwest::Body::wrap_stream(blob.stream(0, blob.size)))
            .send()
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(unexpected("PUT blob", resp).await);
        }
        Ok(())
    }

    /// Chunked push: `POST` a session, one `PATCH` per `chunk` bytes with its
    /// `Content-Range`, then a closing `PUT` with the digest and no body.
    pub async fn push_chunked(
        &self,
        repo: &str,
        blob: BlobSpec,
        digest: &str,
        chunk: u64,
    ) -> Result<()> {
        let mut session = self.start_upload(repo).await?;
        let source = blob.source();
        let mut offset = 0u64;
        while offset < blob.size {
            let len = chunk.max(1).min(blob.size - offset);
            let resp = self
                .request(Method::PATCH, session.clone())
                .await?
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len)
                .header(CONTENT_RANGE, format!("{}-{}", offset, offset + len - 1))
                .body(reqwest::Body::wrap_stream(source.stream(offset, len)))
                .send()
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(unexpected("PATCH chunk", resp).await);
            }
            session = self.location(&resp)?;
            offset += len;
        }
        let resp = self
            .request(Method::PUT, Self::with_digest(session, digest))
            .await?
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(unexpected("closing PUT", resp).await);
        }
        Ok(())
    }

    /// Pushes a small blob held in memory: `POST` a session, `PUT` the bytes.
    pub async fn push_bytes(&self, repo: &str, bytes: Bytes, digest: &str) -> Result<()> {
        let session = self.start_upload(repo).await?;
        let resp = self
            .request(Method::PUT, Self::with_digest(session, digest))
            .await?
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, bytes.len())
            .body(bytes)
            .send()
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(unexpected("PUT blob", resp).await);
        }
        Ok(())
    }

    /// Links an existing blob from repository `from` into `repo`; `false` when the
    /// registry opened an upload session instead (no mount), which is then cancelled.
    pub async fn mount(&self, repo: &str, digest: &str, from: &str) -> Result<bool> {
        let mut url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let resp = self
            .request(Method::POST, url)
            .await?
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(session) = self.location(&resp) {
                    if let Ok(req) = self.request(Method::DELETE, session).await {
                        let _ = self.call(req, 0).await;
                    }
                }
                Ok(false)
            }
            _ => Err(unexpected("POST mount", resp).await),
        }
    }

    /// Pushes an OCI image manifest under `reference` (a tag or its digest), with
    /// extra `tag` query parameters; returns the answer's headers.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: Bytes,
        tags: &[String],
    ) -> Result<reqwest::header::HeaderMap> {
        let mut url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        if !tags.is_empty() {
            let mut q = url.query_pairs_mut();
            for t in tags {
                q.append_pair("tag", t);
            }
        }
        let resp = self
            .request(Method::PUT, url)
            .await?
            .header(CONTENT_TYPE, media_types::OCI_MANIFEST)
            .header(CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(unexpected("PUT manifest", resp).await);
        }
        Ok(resp.headers().clone())
    }

    /// `GET` (or `HEAD`) of a manifest, accepting every manifest type (some
    /// registries answer 404 to a client that does not accept OCI manifests).
    pub async fn get_manifest(&self, repo: &str, reference: &str, head: bool) -> Result<Answer> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let method = if head { Method::HEAD } else { Method::GET };
        let req = self
            .request(method, url)
            .await?
            .header(ACCEPT, MANIFEST_ACCEPT);
        self.call(req, 0).await
    }

    /// Pulls a whole blob, counting its bytes; fails unless it is `expected` long.
    pub async fn pull_blob(&self, repo: &str, digest: &str, expected: u64) -> Result<u64> {
        let a = self.get(&format!("/v2/{repo}/blobs/{digest}"), 0).await?;
        if a.status != StatusCode::OK {
            bail!("GET blob: unexpected {}", a.status);
        }
        if a.len != expected {
            bail!("GET blob: {} bytes, expected {expected}", a.len);
        }
        Ok(a.len)
    }

    /// Pulls `len` bytes at `offset` of a blob with a `Range` request (206 expected).
    pub async fn pull_range(
        &self,
        repo: &str,
        digest: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let req = self
            .request(Method::GET, url)
            .await?
            .header(RANGE, format!("bytes={}-{}", offset, offset + len - 1));
        let a = self.call(req, len as usize).await?;
        if a.status != StatusCode::PARTIAL_CONTENT {
            bail!("ranged GET blob: {} instead of 206", a.status);
        }
        match a.body {
            Some(b) if b.len() as u64 == len => Ok(b),
            _ => bail!("ranged GET blob: {} bytes, expected {len}", a.len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> BenchClient {
        BenchClient::new("http://127.0.0.1:5000/v2/", 4, Duration::from_secs(5)).expect("valid")
    }

    #[test]
    fn base_is_normalised() {
        assert_eq!(reg().base().as_str(), "http://127.0.0.1:5000/");
        let bare =
            BenchClient::new("127.0.0.1:5000", 4, Duration::from_secs(5)).expect("host:port");
        assert_eq!(bare.base().as_str(), "http://127.0.0.1:5000/");
        assert!(BenchClient::new(
            "http://127.0.0.1:5000/ignored?x=1",
            4,
            Duration::from_secs(5)
        )
        .is_err());
    }

    #[test]
    fn locations_stay_on_the_origin() {
        let r = reg();
        assert_eq!(
            r.resolve("/v2/a/blobs/uploads/1?_state=x")
                .expect("relative")
                .as_str(),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/1?_state=x"
        );
        assert!(r.resolve("http://127.0.0.1:5000/v2/x").is_ok());
        assert!(r.resolve("http://127.0.0.1:5001/v2/x").is_err());
        assert!(r.resolve("https://127.0.0.1:5000/v2/x").is_err());
        assert!(r.resolve("http://example.com/v2/x").is_err());
    }

    #[test]
    fn digest_is_appended_to_existing_queries() {
        let u = Url::parse("http://h/v2/a/blobs/uploads/1?_state=abc").expect("url");
        assert_eq!(
            BenchClient::with_digest(u, "sha256:00").as_str(),
            "http://h/v2/a/blobs/uploads/1?_state=abc&digest=sha256%3A00"
        );
    }

    #[test]
    fn rejects_non_http_urls() {
        assert!(BenchClient::new("ftp://h/", 1, Duration::from_secs(1)).is_err());
        assert!(BenchClient::new("not a url", 1, Duration::from_secs(1)).is_err());
    }
}
