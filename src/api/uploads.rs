//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (end-4a/4b/4c, end-11) and the
//! session endpoints at `<blob-push-location>` (end-5, end-6, end-13, end-14).

use std::sync::Arc;

use crate::api::security::Login;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{ApiResponse, OpenApi};

use super::body::{ByteStream, RawBody};
use super::error::{upload_range, ApiError};
use super::headers::parse_content_range;
use super::params::{ContentRange, DigestAlgorithm};
use super::ApiTags;
use crate::oci::{Algorithm, Digest, ErrorCode, RepoName};
use crate::registry::{MountOutcome, Registry, UploadId};

/// Upload endpoints.
pub struct UploadsApi(pub Arc<Registry>);

/// Answers of the upload endpoints.
#[derive(ApiResponse)]
pub enum UploadResponse {
    /// The blob is stored (or mounted) and can be fetched at `Location`.
    #[oai(status = 201)]
    Created(
        #[oai(header = "Location")] String,
        #[oai(header = "Docker-Content-Digest")] String,
    ),
    /// An upload session is open at `Location`; `Range` gives what it holds.
    #[oai(status = 202)]
    Accepted(
        #[oai(header = "Location")] String,
        #[oai(header = "Range")] String,
        #[oai(header = "Docker-Upload-UUID")] String,
    ),
}

/// Answer of an upload status request.
#[derive(ApiResponse)]
pub enum UploadStatus {
    /// The session is open; `Range` gives the bytes received.
    #[oai(status = 204)]
    Open(
        #[oai(header = "Location")] String,
        #[oai(header = "Range")] String,
        #[oai(header = "Docker-Upload-UUID")] String,
    ),
}

/// Answer of an upload cancel.
#[derive(ApiResponse)]
pub enum UploadCancelled {
    /// The session and its data are gone.
    #[oai(status = 204)]
    Cancelled,
}

fn session_location(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn blob_location(repo: &RepoName, digest: &str) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

fn accepted(repo: &RepoName, id: String, size: u64) -> UploadResponse {
    UploadResponse::Accepted(session_location(repo, &id), upload_range(size), id)
}

pub(super) fn chunk_range(
    h: Option<&str>,
) -> Result<Option<crate::registry::ChunkRange>, ApiError> {
    parse_content_range(h).map_err(|m| ApiError::bad_request(ErrorCode::BlobUploadInvalid, m))
}

/// Bodies declared at most this long close a session straight from the route
/// table ([`finish_direct`]): a small blob, gathered whole by the registry.
const DIRECT_BODY: u64 = 64 << 10;

/// `POST /v2/<name>/blobs/uploads/` with no query (a plain session), answered
/// straight from the route table (see `super::direct`): with the closing `PUT`
/// of [`finish_direct`], the two requests of every small blob's push. `None`
/// for anything else (a mount, a single-request upload, another algorithm, a
/// name that does not parse), which the generated routes answer.
pub(super) async fn start_direct(
    registry: &Registry,
    name: &str,
    query: Option<&str>,
) -> Option<poem::Response> {
    use poem::IntoResponse;
    if query.is_some_and(|q| !q.is_empty()) {
        return None;
    }
    let repo: RepoName = name.parse().ok()?;
    Some(
        match registry.start_upload(&repo, Algorithm::Sha256).await {
            Ok(id) => accepted(&repo, id, 0).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        },
    )
}

/// `PUT <session>?digest=<digest>` with a body declared (by `Content-Length`)
/// at most [`DIRECT_BODY`] long, answered straight from the route table like
/// [`start_direct`]; `None` for any other (the generated routes answer it,
/// the body untouched).
pub(super) async fn finish_direct(
    registry: &Registry,
    name: &str,
    session: &str,
    req: &mut poem::Request,
) -> Option<poem::Response> {
    use poem::IntoResponse;
    let mut params = form_urlencoded::parse(req.uri().query()?.as_bytes());
    let (key, value) = params.next()?;
    if key != "digest" || params.next().is_some() {
        return None;
    }
    let digest: Digest = value.parse().ok()?;
    let headers = req.headers();
    let declared = headers
        .get(poem::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|&n| n <= DIRECT_BODY)?;
    let content_range = match headers.get(poem::http::header::CONTENT_RANGE) {
        Some(v) => Some(v.to_str().ok()?.to_string()),
        None => None,
    };
    let repo: RepoName = name.parse().ok()?;
    let session: UploadId = session.parse().ok()?;
    let range = match chunk_range(content_range.as_deref()) {
        Ok(r) => r,
        Err(e) => return Some(e.into_response()),
    };
    let body: ByteStream = Box::pin(req.take_body().into_bytes_stream());
    let finished = registry
        .finish_upload(
            &repo,
            session.as_str(),
            &digest,
            range,
            Some(declared),
            body,
        )
        .await;
    Some(match finished {
        Ok(_) => UploadResponse::Created(
            blob_location(&repo, &digest.to_string()),
            digest.to_string(),
        )
        .into_response(),
        Err(e) => with_location(e, &repo, session.as_str()).into_response(),
    })
}

#[OpenApi]
impl UploadsApi {
    /// Start an upload, upload in one request, or mount a blob
    ///
    /// Without parameters: opens a session (202 + `Location`). With `digest`: the body
    /// is the whole blob (201). With `mount` (and optionally `from`): links an existing
    /// blob (201), or opens a session when it cannot (202). `digest-algorithm=sha512`
    /// selects the hash of a chunked upload.
    #[oai(
        path = "/v2/:name/blobs/uploads/",
        method = "post",
        operation_id = "startUpload",
        tag = "ApiTags::Uploads"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        req: &poem::Request,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Digest of the body, for a single-request upload.
        digest: Query<Option<Digest>>,
        /// Digest of a blob to mount.
        mount: Query<Option<Digest>>,
        /// Repository to mount from (omit for an anonymous mount).
        from: Query<Option<String>>,
        /// Hash algorithm of the coming chunked upload (`sha256` or `sha512`).
        #[oai(name = "digest-algorithm")]
        digest_algorithm: Query<Option<DigestAlgorithm>>,
        /// The blob, for a single-request upload.
        body: RawBody,
    ) -> Result<UploadResponse, ApiError> {
        let repo = name.0;
        let algorithm = digest_algorithm
            .0
            .map_or(Algorithm::Sha256, |DigestAlgorithm(a)| a);
        if let Some(d) = mount.0 {
            // An empty `from` is no `from`; one that names no repository has
            // nothing to mount from, so the client gets a session (202), as
            // for any mount that cannot be made.
            let from = match from.as_deref().filter(|f| !f.is_empty()) {
                None => None,
                Some(f) => match f.parse::<RepoName>() {
                    Ok(name) => Some(name),
                    Err(_) => {
                        let id = self.0.start_upload(&repo, algorithm).await?;
                        return Ok(accepted(&repo, id, 0));
                    }
                },
            };
            // With access control on, the source must be one the caller may pull.
            let access = req
                .extensions()
                .get::<crate::auth::Access>()
                .filter(|a| !a.reads_everything());
            let visible = access.map(|a| move |name: &str| a.may_list(name));
            let visible = visible.as_ref().map(|v| v as &crate::registry::Visible<'_>);
            return Ok(
                match self
                    .0
                    .mount(&repo, &d, from.as_ref(), visible, algorithm)
                    .await?
                {
                    MountOutcome::Mounted => {
                        UploadResponse::Created(blob_location(&repo, &d.to_string()), d.to_string())
                    }
                    MountOutcome::Started(id) => accepted(&repo, id, 0),
                },
            );
        }
        if let Some(d) = digest.0 {
            self.0
                .upload_monolithic(&repo, &d, body.declared_len, body.into_stream())
                .await?;
            return Ok(UploadResponse::Created(
                blob_location(&repo, &d.to_string()),
                d.to_string(),
            ));
        }
        let id = self.0.start_upload(&repo, algorithm).await?;
        Ok(accepted(&repo, id, 0))
    }

    /// Upload status
    ///
    /// 204 with `Range: 0-<last byte>` for an open session; 404 otherwise.
    #[oai(
        path = "/v2/:name/blobs/uploads/:session",
        method = "get",
        operation_id = "uploadStatus",
        tag = "ApiTags::Uploads"
    )]
    async fn status(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Upload session id (from `Location`).
        session: Path<UploadId>,
    ) -> Result<UploadStatus, ApiError> {
        let repo = name.0;
        let size = self.0.upload_status(&repo, session.as_str()).await?;
        Ok(UploadStatus::Open(
            session_location(&repo, session.as_str()),
            upload_range(size),
            session.0.to_string(),
        ))
    }

    /// Upload a chunk
    ///
    /// Appends the body. With `Content-Range: <start>-<end>` the chunk must start where
    /// the upload ends (416 otherwise). Without it the body is streamed in whole.
    #[oai(
        path = "/v2/:name/blobs/uploads/:session",
        method = "patch",
        operation_id = "uploadChunk",
        tag = "ApiTags::Uploads"
    )]
    async fn chunk(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Upload session id.
        session: Path<UploadId>,
        /// Position of the chunk, inclusive.
        #[oai(name = "Content-Range")]
        content_range: Header<Option<ContentRange>>,
        /// The chunk.
        body: RawBody,
    ) -> Result<UploadResponse, ApiError> {
        let repo = name.0;
        let range = content_range.0.and_then(|ContentRange(r)| r);
        let size = self
            .0
            .upload_chunk(&repo, session.as_str(), range, None, body.into_stream())
            .await
            .map_err(|e| with_location(e, &repo, session.as_str()))?;
        Ok(accepted(&repo, session.0.to_string(), size))
    }

    /// Finish an upload
    ///
    /// Closes the session with the digest of the whole blob; the body may carry a last
    /// chunk. 201 when the content matches the digest, 400 `DIGEST_INVALID` otherwise.
    #[oai(
        path = "/v2/:name/blobs/uploads/:session",
        method = "put",
        operation_id = "finishUpload",
        tag = "ApiTags::Uploads"
    )]
    async fn finish(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Upload session id.
        session: Path<UploadId>,
        /// Digest of the whole blob (required).
        digest: Query<Digest>,
        /// Position of the last chunk, if the body carries one.
        #[oai(name = "Content-Range")]
        content_range: Header<Option<ContentRange>>,
        /// Optional last chunk.
        body: RawBody,
    ) -> Result<UploadResponse, ApiError> {
        let repo = name.0;
        let d = digest.0;
        let range = content_range.0.and_then(|ContentRange(r)| r);
        self.0
            .finish_upload(
                &repo,
                session.as_str(),
                &d,
                range,
                body.declared_len,
                body.into_stream(),
            )
            .await
            .map_err(|e| with_location(e, &repo, session.as_str()))?;
        Ok(UploadResponse::Created(
            blob_location(&repo, &d.to_string()),
            d.to_string(),
        ))
    }

    /// Cancel an upload
    ///
    /// Drops the session and what it received (204).
    #[oai(
        path = "/v2/:name/blobs/uploads/:session",
        method = "delete",
        operation_id = "cancelUpload",
        tag = "ApiTags::Uploads"
    )]
    async fn cancel(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Upload session id.
        session: Path<UploadId>,
    ) -> Result<UploadCancelled, ApiError> {
        let repo = name.0;
        self.0.cancel_upload(&repo, session.as_str()).await?;
        Ok(UploadCancelled::Cancelled)
    }
}

/// A 416 tells the client where to resume: add the session's `Location`.
fn with_location(e: crate::registry::RegistryError, repo: &RepoName, session: &str) -> ApiError {
    let is_416 = matches!(
        e,
        crate::registry::RegistryError::RangeNotSatisfiable { .. }
            | crate::registry::RegistryError::RangeInverted { .. }
    );
    let err = ApiError::from(e);
    if is_416 {
        err.with_header("Location", session_location(repo, session))
    } else {
        err
    }
}
