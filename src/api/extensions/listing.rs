//! The `_marina` listing extension's operations: thin handlers that read the query,
//! call the registry, and answer one versioned page with a `Link` to the next.

use std::sync::Arc;

use crate::api::security::Login;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::{ApiResponse, OpenApi};

use super::model::{
    ManifestEntry, ManifestList, ManifestsV1, ReferrerList, ReferrersV1, RepositoriesV1,
    RepositoryList, TagList, TagsV1,
};
use super::params::{parse_filter, OrderBy, Paging, SortBy};
use super::payload::{negotiate, MediaType, Versioned};
use super::ExtensionTags;
use crate::api::error::ApiError;
use crate::api::{parse_digest, parse_repo};
use crate::auth::Access;
use crate::oci::{Digest, RepoName};
use crate::registry::listing::{ManifestFilter, Position};
use crate::registry::Registry;

/// The listing extension's operations.
pub struct ListingExtApi(pub Arc<Registry>);

/// Answer of a repository listing.
#[derive(ApiResponse)]
pub enum RepositoriesResponse {
    /// One page of repositories; `Link` points at the next when more remain.
    #[oai(status = 200)]
    Ok(
        Versioned<RepositoryList, RepositoriesV1>,
        #[oai(header = "Link")] Option<String>,
    ),
}

/// Answer of a tag listing.
#[derive(ApiResponse)]
pub enum TagsResponse {
    /// One page of tags; `Link` points at the next when more remain.
    #[oai(status = 200)]
    Ok(
        Versioned<TagList, TagsV1>,
        #[oai(header = "Link")] Option<String>,
    ),
}

/// Answer of a manifest listing.
#[derive(ApiResponse)]
pub enum ManifestsResponse {
    /// One page of manifests; `Link` points at the next when more remain.
    #[oai(status = 200)]
    Ok(
        Versioned<ManifestList, ManifestsV1>,
        #[oai(header = "Link")] Option<String>,
    ),
}

/// Answer of a referrer listing.
#[derive(ApiResponse)]
pub enum ReferrersResponse {
    /// One page of referrers; `Link` points at the next when more remain.
    #[oai(status = 200)]
    Ok(
        Versioned<ReferrerList, ReferrersV1>,
        #[oai(header = "Link")] Option<String>,
    ),
}

impl ListingExtApi {
    /// One page of the manifests of `repo` (the referrers of `subject`, if given)
    /// as response entries, with the `Link` to the next page of `module`.
    async fn manifest_page(
        &self,
        repo: &RepoName,
        subject: Option<&Digest>,
        filter: ManifestFilter,
        paging: &Paging,
        module: &str,
        extra: &[(&str, String)],
    ) -> Result<(Vec<ManifestEntry>, Option<String>), ApiError> {
        let page = self
            .0
            .list_manifest_summaries(repo, subject, filter, paging.request())
            .await?;
        let link = paging.link(
            &format!("/v2/{repo}/_marina/list/{module}"),
            page.items.len(),
            page.more,
            page.items.last().map(Position::of_manifest),
            extra,
        );
        Ok((page.items.into_iter().map(Into::into).collect(), link))
    }
}

fn accept(req: &Request) -> Option<&str> {
    req.headers()
        .get(poem::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

#[OpenApi]
impl ListingExtApi {
    /// List repositories
    ///
    /// Repositories holding at least one manifest: of the whole registry, or with
    /// `namespace`, every repository under it (`org2/team-a` lists
    /// `org2/team-a/image-a1`, …) at any depth. Sorted by name or last push time.
    #[oai(
        path = "/v2/_marina/list/repositories",
        method = "get",
        operation_id = "marinaListRepositories",
        tag = "ExtensionTags::Listing"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn repositories(
        &self,
        _login: Login,
        req: &Request,
        /// Only repositories under this namespace (a name prefix ending before a `/`).
        namespace: Query<Option<String>>,
        /// Most repositories per page (default 100, capped by the registry).
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        n: Query<Option<u32>>,
        /// Continue after the previous page (the token from `Link`).
        next: Query<Option<String>>,
        /// Sort by `name` (default) or `pushed` (last push time).
        sort: Query<Option<SortBy>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderBy>>,
    ) -> Result<RepositoriesResponse, ApiError> {
        negotiate(accept(req), RepositoriesV1::MEDIA_TYPE)?;
        let namespace = match namespace.0.as_deref().map(|n| n.trim_matches('/')) {
            None | Some("") => None,
            Some(ns) => Some(parse_repo(ns)?),
        };
        let paging = Paging::parse(n.0, next.as_deref(), sort.0, order.0)?;
        // With access control on, only what the caller may pull is listed.
        let everything = req
            .extensions()
            .get::<Access>()
            .is_none_or(Access::reads_everything);
        let (items, next) = match req.extensions().get::<Access>() {
            None => {
                let page = self
                    .0
                    .list_repositories(namespace.as_ref(), paging.request())
                    .await?;
                let next = page
                    .items
                    .last()
                    .filter(|_| page.more)
                    .map(Position::of_repository);
                (page.items, next)
            }
            Some(access) => {
                let page = self
                    .0
                    .list_visible_repositories(namespace.as_ref(), paging.request(), |r| {
                        access.may_list(r)
                    })
                    .await?;
                (page.items, page.next)
            }
        };
        let extra: Vec<(&str, String)> = namespace
            .iter()
            .map(|ns| ("namespace", ns.to_string()))
            .collect();
        let page_size = paging.n.min(self.0.config().max_list_page) as usize;
        let link = paging.link(
            "/v2/_marina/list/repositories",
            page_size,
            next.is_some(),
            next,
            &extra,
        );
        let usage = self
            .0
            .repository_usage(items.iter().map(|r| r.name.clone()).collect())
            .await?;
        let mut repositories: Vec<super::model::RepositoryEntry> =
            items.into_iter().map(Into::into).collect();
        for (entry, u) in repositories.iter_mut().zip(usage) {
            entry.bytes = Some(u.bytes);
            entry.unique_bytes = Some(u.unique_bytes);
        }
        // Totals would count what the caller may not see: only for callers who may
        // see everything.
        let usage = match everything {
            true => {
                let u = self.0.namespace_usage(namespace.as_ref()).await?;
                Some(super::model::Usage {
                    repositories: u.repositories,
                    blobs: u.blobs,
                    bytes: u.bytes,
                })
            }
            false => None,
        };
        let body = RepositoryList {
            namespace: namespace.map(|n| n.to_string()),
            repositories,
            usage,
        };
        Ok(RepositoriesResponse::Ok(Versioned::new(body), link))
    }

    /// List tags with digests and push times
    ///
    /// Every tag of the repository with the digest it points at and when it was last
    /// pushed; with `digest`, only the tags pointing at that manifest. `artifactType`
    /// and `annotation` keep the tags whose manifest matches.
    #[oai(
        path = "/v2/:name/_marina/list/tags",
        method = "get",
        operation_id = "marinaListTags",
        tag = "ExtensionTags::Listing"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn tags(
        &self,
        _login: Login,
        req: &Request,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Only tags pointing at this manifest digest.
        digest: Query<Option<String>>,
        /// Only tags whose manifest has this artifact type.
        #[oai(name = "artifactType")]
        artifact_type: Query<Option<String>>,
        /// Only tags whose manifest has this annotation: `KEY` (present) or
        /// `KEY=VALUE`. Repeat for several (all must hold).
        #[oai(default)]
        annotation: Query<Vec<String>>,
        /// Most tags per page (default 100, capped by the registry).
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        n: Query<Option<u32>>,
        /// Continue after the previous page (the token from `Link`).
        next: Query<Option<String>>,
        /// Sort by `name` (default) or `pushed`.
        sort: Query<Option<SortBy>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderBy>>,
    ) -> Result<TagsResponse, ApiError> {
        negotiate(accept(req), TagsV1::MEDIA_TYPE)?;
        let repo = name.0;
        let digest = digest
            .0
            .filter(|d| !d.is_empty())
            .map(|d| parse_digest(&d))
            .transpose()?;
        let (filter, mut extra) = parse_filter(artifact_type.0, &annotation, None)?;
        if let Some(d) = &digest {
            extra.insert(0, ("digest", d.to_string()));
        }
        let paging = Paging::parse(n.0, next.as_deref(), sort.0, order.0)?;
        let page = self
            .0
            .list_tag_records(&repo, digest.as_ref(), filter, paging.request())
            .await?;
        let link = paging.link(
            &format!("/v2/{repo}/_marina/list/tags"),
            page.items.len(),
            page.more,
            page.items.last().map(Position::of_tag),
            &extra,
        );
        let body = TagList {
            repository: repo.to_string(),
            digest: digest.map(|d| d.to_string()),
            tags: page.items.into_iter().map(Into::into).collect(),
        };
        Ok(TagsResponse::Ok(Versioned::new(body), link))
    }

    /// List manifests, tagged and untagged
    ///
    /// Every manifest of the repository with its digest, media type, artifact type,
    /// size, tags, push time, subject and annotations. Filters apply before paging,
    /// so every page but the last is full.
    #[oai(
        path = "/v2/:name/_marina/list/manifests",
        method = "get",
        operation_id = "marinaListManifests",
        tag = "ExtensionTags::Listing"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn manifests(
        &self,
        _login: Login,
        req: &Request,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Only manifests of this artifact type.
        #[oai(name = "artifactType")]
        artifact_type: Query<Option<String>>,
        /// Only manifests with this annotation: `KEY` (present) or `KEY=VALUE`.
        /// Repeat for several (all must hold).
        #[oai(default)]
        annotation: Query<Vec<String>>,
        /// `true`: only tagged manifests; `false`: only untagged ones.
        tagged: Query<Option<bool>>,
        /// Most manifests per page (default 100, capped by the registry).
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        n: Query<Option<u32>>,
        /// Continue after the previous page (the token from `Link`).
        next: Query<Option<String>>,
        /// Sort by `name` (the digest; default) or `pushed`.
        sort: Query<Option<SortBy>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderBy>>,
    ) -> Result<ManifestsResponse, ApiError> {
        negotiate(accept(req), ManifestsV1::MEDIA_TYPE)?;
        let repo = name.0;
        let (filter, extra) = parse_filter(artifact_type.0, &annotation, tagged.0)?;
        let paging = Paging::parse(n.0, next.as_deref(), sort.0, order.0)?;
        let (manifests, link) = self
            .manifest_page(&repo, None, filter, &paging, "manifests", &extra)
            .await?;
        let body = ManifestList {
            repository: repo.to_string(),
            manifests,
        };
        Ok(ManifestsResponse::Ok(Versioned::new(body), link))
    }

    /// List referrers with filters
    ///
    /// The manifests whose `subject` is `subject`, like the referrers API, with the
    /// same fields, filters, sorting and paging as the manifest listing.
    #[oai(
        path = "/v2/:name/_marina/list/referrers",
        method = "get",
        operation_id = "marinaListReferrers",
        tag = "ExtensionTags::Listing"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn referrers(
        &self,
        _login: Login,
        req: &Request,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
        /// Digest of the subject manifest.
        subject: Query<Digest>,
        /// Only referrers of this artifact type.
        #[oai(name = "artifactType")]
        artifact_type: Query<Option<String>>,
        /// Only referrers with this annotation: `KEY` (present) or `KEY=VALUE`.
        /// Repeat for several (all must hold).
        #[oai(default)]
        annotation: Query<Vec<String>>,
        /// `true`: only tagged referrers; `false`: only untagged ones.
        tagged: Query<Option<bool>>,
        /// Most referrers per page (default 100, capped by the registry).
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        n: Query<Option<u32>>,
        /// Continue after the previous page (the token from `Link`).
        next: Query<Option<String>>,
        /// Sort by `name` (the digest; default) or `pushed`.
        sort: Query<Option<SortBy>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderBy>>,
    ) -> Result<ReferrersResponse, ApiError> {
        negotiate(accept(req), ReferrersV1::MEDIA_TYPE)?;
        let repo = name.0;
        let subject = subject.0;
        let (filter, mut extra): (ManifestFilter, _) =
            parse_filter(artifact_type.0, &annotation, tagged.0)?;
        extra.insert(0, ("subject", subject.to_string()));
        let paging = Paging::parse(n.0, next.as_deref(), sort.0, order.0)?;
        let (manifests, link) = self
            .manifest_page(&repo, Some(&subject), filter, &paging, "referrers", &extra)
            .await?;
        let body = ReferrerList {
            repository: repo.to_string(),
            subject: subject.to_string(),
            manifests,
        };
        Ok(ReferrersResponse::Ok(Versioned::new(body), link))
    }
}
