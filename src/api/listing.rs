//! Tag listing (end-8a/8b) and the repository catalog (`/v2/_catalog`, used by
//! clients and tools though outside the spec).

use std::sync::Arc;

use crate::api::security::Login;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::ApiError;
use super::headers::{cache_headers, next_link};
use super::ApiTags;
use crate::auth::Access;
use crate::oci::RepoName;
use crate::registry::Registry;

/// Listing endpoints.
pub struct ListingApi(pub Arc<Registry>);

/// `GET /v2/<name>/tags/list` body.
#[derive(Debug, Object)]
pub struct TagList {
    /// The repository.
    pub name: String,
    /// Tags in lexical (byte) order.
    pub tags: Vec<String>,
}

/// `GET /v2/_catalog` body.
#[derive(Debug, Object)]
pub struct Catalog {
    /// Repository names in lexical order.
    pub repositories: Vec<String>,
}

/// Answer of a tag list.
#[derive(ApiResponse)]
pub enum TagListResponse {
    /// One page of tags; `Link` points at the next when more remain.
    #[oai(status = 200)]
    Ok(
        Json<TagList>,
        #[oai(header = "Link")] Option<String>,
        /// For a pull-through cache's name: `merged` (the upstream's tags with the
        /// cached ones) or `stale` (the cached ones; the upstream did not answer).
        #[oai(header = "Marina-Cache")]
        Option<String>,
        /// For a stale answer: that the upstream did not answer.
        #[oai(header = "Warning")]
        Option<String>,
    ),
}

/// Answer of a catalog request.
#[derive(ApiResponse)]
pub enum CatalogResponse {
    /// One page of repositories; `Link` points at the next when more remain.
    #[oai(status = 200)]
    Ok(Json<Catalog>, #[oai(header = "Link")] Option<String>),
}

/// `Link` to the page after `page` of a name list, when more remain.
fn page_link(path: &str, page: &crate::registry::CatalogPage, n: u32) -> Option<String> {
    match (page.more && n > 0, page.items.last()) {
        (true, Some(last)) => Some(next_link(path, &[("n", &n.to_string()), ("last", last)])),
        _ => None,
    }
}

#[OpenApi]
impl ListingApi {
    /// List tags
    ///
    /// Tags in lexical order, after `last`, at most `n` (`n=0` gives an empty list).
    /// When more remain, `Link: <…>; rel="next"` points at the next page.
    #[oai(
        path = "/v2/:name/tags/list",
        method = "get",
        operation_id = "listTags",
        tag = "ApiTags::Tags"
    )]
    async fn list_tags(
        &self,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Most tags to return.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        n: Query<Option<u32>>,
        /// Return tags after this one.
        last: Query<Option<String>>,
    ) -> Result<TagListResponse, ApiError> {
        let repo = name.0;
        let max = self.0.config().max_list_page;
        let n = n.0.unwrap_or(max);
        let (page, cache) = self.0.read_tags(&repo, last.0.clone(), n).await?;
        let (cache, warning) = cache_headers(cache);
        let link = page_link(&format!("/v2/{repo}/tags/list"), &page, n.min(max));
        Ok(TagListResponse::Ok(
            Json(TagList {
                name: repo.to_string(),
                tags: page.items,
            }),
            link,
            cache,
            warning,
        ))
    }

    /// List repositories
    ///
    /// Repositories holding at least one manifest, in lexical order, paged like tags.
    #[oai(
        path = "/v2/_catalog",
        method = "get",
        operation_id = "catalog",
        tag = "ApiTags::Catalog"
    )]
    async fn catalog(
        &self,
        req: &poem::Request,
        _login: Login,
        /// Most repositories to return.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        n: Query<Option<u32>>,
        /// Return repositories after this one.
        last: Query<Option<String>>,
    ) -> Result<CatalogResponse, ApiError> {
        let max = self.0.config().max_list_page;
        let n = n.0.unwrap_or(max).min(max);
        // With access control on, only what the caller may pull is listed, and a
        // page boundary never names a hidden repository.
        let access = req
            .extensions()
            .get::<Access>()
            .filter(|a| !a.reads_everything());
        let (repositories, link) = match access {
            None => {
                let page = self.0.catalog(last.0.clone(), n).await?;
                let link = page_link("/v2/_catalog", &page, n);
                (page.items, link)
            }
            Some(access) => {
                let start = last.0.clone().filter(|l| !l.is_empty());
                let page = self
                    .0
                    .visible_catalog(n, start, |name| access.may_list(name))
                    .await?;
                let link = page
                    .next
                    .as_ref()
                    .map(|l| next_link("/v2/_catalog", &[("n", &n.to_string()), ("last", l)]));
                (page.items, link)
            }
        };
        Ok(CatalogResponse::Ok(Json(Catalog { repositories }), link))
    }
}
