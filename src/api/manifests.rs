//! `/v2/<name>/manifests/<tag-or-digest>`: GET, HEAD, PUT, DELETE (end-3, end-7a/7b, end-9).

use std::sync::Arc;

use crate::api::security::Login;
use bytes::Bytes;
use poem_openapi::param::{Path, Query};
use poem_openapi::{ApiResponse, OpenApi};

use super::body::{ManifestBody, ManifestPayload};
use super::error::ApiError;
use super::headers::cache_headers;
use super::params::Lookup;
use super::ApiTags;
use crate::oci::{ErrorCode, Reference, RepoName, Tag};
use crate::registry::{Registry, RegistryError};

/// Manifest endpoints.
pub struct ManifestsApi(pub Arc<Registry>);

/// Answer of a manifest GET or HEAD.
#[derive(ApiResponse)]
pub enum ManifestResponse {
    /// The manifest, with the exact Content-Type it was pushed with.
    #[oai(status = 200)]
    Found(
        ManifestPayload,
        #[oai(header = "Docker-Content-Digest")] String,
        #[oai(header = "Content-Length")] u64,
        /// For a pull-through cache's name: `hit`, `miss`, `revalidated` or `stale`.
        #[oai(header = "Marina-Cache")]
        Option<String>,
        /// For a stale cached answer: that the upstream did not answer.
        #[oai(header = "Warning")]
        Option<String>,
    ),
}

/// Answer of a manifest PUT.
#[derive(ApiResponse)]
pub enum ManifestPushed {
    /// Stored. `OCI-Tag` lists every tag now pointing at it; `OCI-Subject` echoes its subject.
    #[oai(status = 201)]
    Created(
        #[oai(header = "Location")] String,
        #[oai(header = "Docker-Content-Digest")] String,
        #[oai(header = "OCI-Tag")] Option<String>,
        #[oai(header = "OCI-Subject")] Option<String>,
    ),
}

/// Answer of a manifest or tag DELETE.
#[derive(ApiResponse)]
pub enum ManifestDeleted {
    /// Deleted.
    #[oai(status = 202)]
    Accepted,
}

/// A manifest GET or HEAD answered straight from the route table's values, without
/// the generated routes (the hottest request a registry gets). `None` when a value
/// does not parse: the generated routes then answer with the parameter's error.
pub(super) async fn serve_direct(
    registry: &Registry,
    name: &str,
    reference: &str,
    head: bool,
) -> Option<poem::Response> {
    use poem::IntoResponse;
    use poem_openapi::types::ParseFromParameter;
    let repo: RepoName = name.parse().ok()?;
    let Lookup(reference) = Lookup::parse_from_parameter(reference).ok()?;
    Some(match fetch(registry, &repo, &reference, head).await {
        Ok(found) => found.into_response(),
        Err(e) => e.into_response(),
    })
}

/// A manifest's answer: its bytes (none for HEAD) and headers.
async fn fetch(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<ManifestResponse, ApiError> {
    let (m, cache) = registry.read_manifest(repo, reference).await?;
    let (cache, warning) = cache_headers(cache);
    let len = m.bytes.len() as u64;
    let bytes = if head {
        Bytes::new()
    } else {
        Bytes::from(m.bytes)
    };
    Ok(ManifestResponse::Found(
        ManifestPayload {
            bytes,
            media_type: m.media_type,
        },
        m.digest,
        len,
        cache,
        warning,
    ))
}

#[OpenApi]
impl ManifestsApi {
    /// Fetch a manifest
    ///
    /// By tag or digest; returned byte for byte with the Content-Type it was pushed with.
    #[oai(
        path = "/v2/:name/manifests/:reference",
        method = "get",
        operation_id = "getManifest",
        tag = "ApiTags::Manifests"
    )]
    async fn get_manifest(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// A tag or a digest.
        reference: Path<Lookup>,
        /// The upstream host a pull-through cache should serve this name from
        /// (containerd's mirrors send it); answered with `OCI-Namespace`. Handled
        /// before routing: the name is served from that upstream's local prefix.
        #[oai(name = "ns")]
        _ns: Query<Option<String>>,
    ) -> Result<ManifestResponse, ApiError> {
        fetch(&self.0, &name, &reference.0 .0, false).await
    }

    /// Check that a manifest exists
    #[oai(
        path = "/v2/:name/manifests/:reference",
        method = "head",
        operation_id = "headManifest",
        tag = "ApiTags::Manifests"
    )]
    async fn head_manifest(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// A tag or a digest.
        reference: Path<Lookup>,
        /// The upstream host a pull-through cache should serve this name from
        /// (containerd's mirrors send it); answered with `OCI-Namespace`. Handled
        /// before routing: the name is served from that upstream's local prefix.
        #[oai(name = "ns")]
        _ns: Query<Option<String>>,
    ) -> Result<ManifestResponse, ApiError> {
        fetch(&self.0, &name, &reference.0 .0, true).await
    }

    /// Push a manifest
    ///
    /// Under a tag, or under its digest with any number of `tag` parameters. Every
    /// blob and child manifest it references must already be in the repository
    /// (`MANIFEST_BLOB_UNKNOWN` otherwise) unless sparse manifests are allowed.
    #[oai(
        path = "/v2/:name/manifests/:reference",
        method = "put",
        operation_id = "putManifest",
        tag = "ApiTags::Manifests"
    )]
    async fn put_manifest(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// A tag or the manifest's digest.
        reference: Path<Reference>,
        /// Extra tags to point at the manifest (repeatable).
        tag: Query<Vec<Tag>>,
        /// The manifest.
        body: ManifestBody,
    ) -> Result<ManifestPushed, ApiError> {
        let repo = name.0;
        let reference = reference.0;
        let tags = tag.0;
        let limit = self.0.config().max_manifest_bytes;
        let content_type = body.0.content_type.clone();
        let bytes = match body.0.read_limited(limit).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(size)) => return Err(RegistryError::ManifestTooLarge { size, limit }.into()),
            Err(e) => {
                return Err(ApiError::bad_request(
                    ErrorCode::ManifestInvalid,
                    format!("manifest body could not be read: {e}"),
                ))
            }
        };
        let pushed = self
            .0
            .put_manifest(&repo, &reference, content_type.as_deref(), bytes, tags)
            .await?;
        let tags = (!pushed.tags.is_empty()).then(|| {
            pushed
                .tags
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        });
        Ok(ManifestPushed::Created(
            format!("/v2/{repo}/manifests/{}", pushed.digest),
            pushed.digest.to_string(),
            tags,
            pushed.subject.map(|s| s.to_string()),
        ))
    }

    /// Delete a manifest or a tag
    ///
    /// By digest: the manifest, its tags and its referrer entries go (202). By tag:
    /// only the tag goes. 405 when that kind of deletion is disabled.
    #[oai(
        path = "/v2/:name/manifests/:reference",
        method = "delete",
        operation_id = "deleteManifest",
        tag = "ApiTags::Manifests"
    )]
    async fn delete_manifest(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// A tag or a digest.
        reference: Path<Lookup>,
    ) -> Result<ManifestDeleted, ApiError> {
        let repo = name.0;
        let reference = reference.0 .0;
        self.0.delete_manifest(&repo, &reference).await?;
        Ok(ManifestDeleted::Accepted)
    }
}
