//! `GET /v2/<name>/referrers/<digest>` (end-12a/12b), served from the subject index.

use std::sync::Arc;

use crate::api::security::Login;
use poem_openapi::param::{Path, Query};
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::{json, Map, Value};

use super::body::IndexPayload;
use super::error::ApiError;
use super::headers::{cache_headers, next_link};
use super::ApiTags;
use crate::oci::{media_types, Digest, RepoName};
use crate::registry::Registry;

/// Referrers endpoint.
pub struct ReferrersApi(pub Arc<Registry>);

/// Answer of a referrers request.
#[derive(ApiResponse)]
pub enum ReferrersResponse {
    /// An image index whose `manifests` describe the referrers (possibly none).
    #[oai(status = 200)]
    Ok(
        IndexPayload,
        #[oai(header = "OCI-Filters-Applied")] Option<String>,
        #[oai(header = "Link")] Option<String>,
        /// For a pull-through cache's name: `merged` (the upstream's referrers with
        /// the cached ones), `hit` (a later page, from the cache) or `stale`.
        #[oai(header = "Marina-Cache")]
        Option<String>,
        /// For a stale answer: that the upstream did not answer.
        #[oai(header = "Warning")]
        Option<String>,
    ),
}

#[OpenApi]
impl ReferrersApi {
    /// List referrers
    ///
    /// Manifests whose `subject` is the given digest, as an image index. `artifactType`
    /// filters them (announced by `OCI-Filters-Applied`); `Link` points at the next
    /// page when there are more than the configured page size.
    #[oai(
        path = "/v2/:name/referrers/:digest",
        method = "get",
        operation_id = "listReferrers",
        tag = "ApiTags::Referrers"
    )]
    async fn referrers(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Digest of the subject manifest.
        digest: Path<Digest>,
        /// Only referrers of this artifact type.
        #[oai(name = "artifactType")]
        artifact_type: Query<Option<String>>,
        /// Continue after this referrer digest (from `Link`).
        last: Query<Option<String>>,
    ) -> Result<ReferrersResponse, ApiError> {
        let repo = name.0;
        let subject = digest.0;
        let filter = artifact_type.0.filter(|a| !a.is_empty());
        let (page, cache) = self
            .0
            .read_referrers(&repo, &subject, filter.clone(), last.0.clone())
            .await?;
        let (cache, warning) = cache_headers(cache);
        let manifests: Vec<Value> = page
            .items
            .iter()
            .map(|r| {
                let mut d = Map::new();
                d.insert("mediaType".into(), json!(r.media_type));
                d.insert("digest".into(), json!(r.digest));
                d.insert("size".into(), json!(r.size));
                if let Some(a) = &r.artifact_type {
                    d.insert("artifactType".into(), json!(a));
                }
                if let Some(a) = r
                    .annotations
                    .as_deref()
                    .and_then(|a| serde_json::from_str::<Value>(a).ok())
                {
                    d.insert("annotations".into(), a);
                }
                Value::Object(d)
            })
            .collect();
        let body = json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": manifests,
        });
        let link = match (page.more, page.items.last()) {
            (true, Some(last)) => {
                let mut params = vec![("last", last.digest.as_str())];
                if let Some(f) = filter.as_deref() {
                    params.push(("artifactType", f));
                }
                Some(next_link(
                    &format!("/v2/{repo}/referrers/{subject}"),
                    &params,
                ))
            }
            _ => None,
        };
        Ok(ReferrersResponse::Ok(
            IndexPayload(serde_json::to_vec(&body).unwrap_or_default()),
            filter.map(|_| "artifactType".to_string()),
            link,
            cache,
            warning,
        ))
    }
}
