//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>` (end-2, end-10).

use std::sync::Arc;

use crate::api::security::Login;
use poem::Body;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{ApiResponse, OpenApi};

use super::body::BlobPayload;
use super::error::ApiError;
use super::headers::{parse_range, ByteRange};
use super::ApiTags;
use crate::oci::{Digest, ErrorCode, RepoName};
use crate::registry::{BlobWant, CacheStatus, PulledBlob, Registry};

/// Blob endpoints.
pub struct BlobsApi(pub Arc<Registry>);

/// Answers of a blob GET or HEAD.
#[derive(ApiResponse)]
pub enum BlobResponse {
    /// The whole blob.
    #[oai(status = 200)]
    Whole(
        BlobPayload,
        #[oai(header = "Docker-Content-Digest")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Accept-Ranges")] String,
        /// For a pull-through cache's name: `hit`, or `miss` (fetched from the upstream now).
        #[oai(header = "Marina-Cache")]
        Option<String>,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        BlobPayload,
        #[oai(header = "Docker-Content-Digest")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Range")] String,
        /// For a pull-through cache's name: `hit` or `miss`.
        #[oai(header = "Marina-Cache")]
        Option<String>,
    ),
    /// Fetch the blob from the object store at `Location`, a presigned URL
    /// valid for a few minutes (`--blob-redirect`).
    #[oai(status = 307)]
    Redirect(
        #[oai(header = "Location")] String,
        #[oai(header = "Docker-Content-Digest")] String,
    ),
}

/// Answer of a blob DELETE.
#[derive(ApiResponse)]
pub enum BlobDeleted {
    /// Unlinked from the repository.
    #[oai(status = 202)]
    Accepted,
}

/// A blob GET or HEAD answered straight from the route table's values, without the
/// generated routes. `None` when a value does not parse or the `Range` or
/// `If-Range` header is not one valid string: the generated routes then answer
/// with the parameter's error.
pub(super) async fn serve_direct(
    registry: &Arc<Registry>,
    name: &str,
    digest: &str,
    headers: &poem::http::HeaderMap,
    head: bool,
) -> Option<poem::Response> {
    use poem::IntoResponse;
    let repo: RepoName = name.parse().ok()?;
    let digest: Digest = digest.parse().ok()?;
    let range = single_header(headers, poem::http::header::RANGE)?;
    let if_range = single_header(headers, poem::http::header::IF_RANGE)?;
    let range = range_to_serve(range, if_range, &digest);
    Some(match serve(registry, &repo, &digest, range, head).await {
        Ok(found) => found.into_response(),
        Err(e) => e.into_response(),
    })
}

/// A header that may be absent (`Some(None)`) or given once as text;
/// `None` when it is repeated or not text.
fn single_header(
    headers: &poem::http::HeaderMap,
    name: poem::http::header::HeaderName,
) -> Option<Option<&str>> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Some(None),
        (Some(one), None) => Some(Some(one.to_str().ok()?)),
        (Some(_), Some(_)) => None,
    }
}

/// The `Range` to honour given the request's `If-Range` (RFC 9110, 13.1.5): a
/// blob never changes, so its validator is its digest as an entity tag; any
/// other validator (another tag, a date: no `Last-Modified` is sent) does not
/// match, and then the range is ignored and the whole blob sent.
fn range_to_serve<'a>(
    range: Option<&'a str>,
    if_range: Option<&str>,
    digest: &Digest,
) -> Option<&'a str> {
    match if_range {
        None => range,
        Some(v)
            if v.trim().strip_prefix('"').and_then(|v| v.strip_suffix('"'))
                == Some(digest.to_string().as_str()) =>
        {
            range
        }
        Some(_) => None,
    }
}

/// A blob's answer: whole, a range of it, or a redirect to the object store.
async fn serve(
    registry: &Arc<Registry>,
    repo: &RepoName,
    digest: &Digest,
    range: Option<&str>,
    head: bool,
) -> Result<BlobResponse, ApiError> {
    let (size, cache) = match registry.blob_size(repo, digest).await {
        Ok(size) if registry.is_proxied(repo) => {
            registry.metrics().pull_through("blob", "hit");
            (size, Some(CacheStatus::Hit))
        }
        Ok(size) => (size, None),
        Err(e) if !registry.is_proxied(repo) => return Err(e.into()),
        Err(_) => {
            let want = match (head, range) {
                (true, _) => BlobWant::Head,
                (false, None) => BlobWant::Whole,
                (false, Some(_)) => BlobWant::Range,
            };
            let (size, body) = match registry.pull_blob(repo, digest, want).await? {
                PulledBlob::Stored(size) => (size, None),
                PulledBlob::Size(size) => (size, Some(Body::empty())),
                PulledBlob::Streaming { size, chunks } => {
                    (size, Some(Body::from_bytes_stream(chunks)))
                }
            };
            match body {
                // Now stored: served below like any blob.
                None => (size, Some(CacheStatus::Miss)),
                // Sized by the upstream (HEAD), or streamed while it downloads.
                Some(body) => {
                    return Ok(BlobResponse::Whole(
                        BlobPayload(body),
                        digest.to_string(),
                        size,
                        "bytes".into(),
                        Some(CacheStatus::Miss.as_str().into()),
                    ))
                }
            }
        }
    };
    let cache = cache.map(|c| c.as_str().to_string());
    if !head {
        if let Some(url) = registry.blob_redirect(digest).await? {
            return Ok(BlobResponse::Redirect(url, digest.to_string()));
        }
    }
    let (start, len, partial) = match parse_range(range, size) {
        ByteRange::Whole => (0, size, false),
        ByteRange::Part { start, end } => (start, end - start + 1, true),
        ByteRange::Unsatisfiable => {
            // The spec's table has no code for a range past the end; the blob
            // exists, so not BLOB_UNKNOWN (clients act on that code): the one
            // that claims nothing about the content, as for a full disk.
            return Err(ApiError::new(
                poem::http::StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::Unsupported,
                format!(
                    "range {} cannot be satisfied for a blob of {size} bytes",
                    range.unwrap_or("")
                ),
            )
            .with_header("Content-Range", format!("bytes */{size}")));
        }
    };
    let body = if head {
        Body::empty()
    } else {
        Body::from_bytes_stream(registry.read_blob(digest, start, len).await?)
    };
    let digest = digest.to_string();
    Ok(if partial {
        BlobResponse::Partial(
            BlobPayload(body),
            digest,
            len,
            format!("bytes {start}-{}/{size}", start + len - 1),
            cache,
        )
    } else {
        BlobResponse::Whole(BlobPayload(body), digest, size, "bytes".into(), cache)
    })
}

#[OpenApi]
impl BlobsApi {
    /// Fetch a blob
    ///
    /// Streams the blob from disk. A single `Range: bytes=…` is answered with 206 and
    /// `Content-Range`; an unsatisfiable one with 416.
    #[oai(
        path = "/v2/:name/blobs/:digest",
        method = "get",
        operation_id = "getBlob",
        tag = "ApiTags::Blobs"
    )]
    async fn get_blob(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Blob digest, e.g. `sha256:…`.
        digest: Path<Digest>,
        /// Optional single byte range.
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// Send the range only if the blob is still this one (`"<digest>"`);
        /// otherwise the whole blob.
        #[oai(name = "If-Range")]
        if_range: Header<Option<String>>,
        /// The upstream host a pull-through cache should serve this name from
        /// (containerd's mirrors send it); answered with `OCI-Namespace`. Handled
        /// before routing: the name is served from that upstream's local prefix.
        #[oai(name = "ns")]
        _ns: Query<Option<String>>,
    ) -> Result<BlobResponse, ApiError> {
        let range = range_to_serve(range.as_deref(), if_range.as_deref(), &digest);
        serve(&self.0, &name, &digest, range, false).await
    }

    /// Check that a blob exists
    ///
    /// Same headers as a GET (`Docker-Content-Digest`, `Content-Length`), no body.
    #[oai(
        path = "/v2/:name/blobs/:digest",
        method = "head",
        operation_id = "headBlob",
        tag = "ApiTags::Blobs"
    )]
    async fn head_blob(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Blob digest.
        digest: Path<Digest>,
        /// Optional single byte range.
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// Send the range only if the blob is still this one (`"<digest>"`);
        /// otherwise the whole blob.
        #[oai(name = "If-Range")]
        if_range: Header<Option<String>>,
        /// The upstream host a pull-through cache should serve this name from
        /// (containerd's mirrors send it); answered with `OCI-Namespace`. Handled
        /// before routing: the name is served from that upstream's local prefix.
        #[oai(name = "ns")]
        _ns: Query<Option<String>>,
    ) -> Result<BlobResponse, ApiError> {
        let range = range_to_serve(range.as_deref(), if_range.as_deref(), &digest);
        serve(&self.0, &name, &digest, range, true).await
    }

    /// Delete a blob
    ///
    /// Unlinks the blob from the repository (202). 405 when blob deletion is disabled.
    #[oai(
        path = "/v2/:name/blobs/:digest",
        method = "delete",
        operation_id = "deleteBlob",
        tag = "ApiTags::Blobs"
    )]
    async fn delete_blob(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Blob digest.
        digest: Path<Digest>,
    ) -> Result<BlobDeleted, ApiError> {
        let repo = name.0;
        let digest = digest.0;
        self.0.delete_blob(&repo, &digest).await?;
        Ok(BlobDeleted::Accepted)
    }
}
