//! The listing extension's semantics: repositories of the registry or of a namespace,
//! tags (optionally only those pointing at a digest), manifests tagged or not, and
//! referrers, each filtered, sorted and paged by an opaque cursor.
//!
//! The cursor is the sort key of the last item returned, tied to the sort it was made
//! for. Continuing from it is a keyset query, so pages stay correct while content
//! changes between them: nothing present throughout is skipped or repeated.

use super::kept::{kept_page, KeptPage};
use super::{Registry, RegistryError};
use crate::oci::{Digest, RepoName};
use crate::store::Page;

pub use crate::store::listing::{
    AnnotationFilter, ManifestFilter, ManifestSummary, PageRequest, Position, RepositoryRecord,
    Sort, SortField, SortOrder, TagRecord,
};

/// Why a cursor token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a token this registry made.
    #[error("the `next` token is not one this registry issued")]
    Malformed,
    /// Made for a different sort than the request asks for.
    #[error("the `next` token was issued for another sort order; keep `sort` and `order` as in the `Link` URL")]
    OtherSort,
}

fn sort_code(sort: Sort) -> &'static str {
    match (sort.field, sort.order) {
        (SortField::Name, SortOrder::Asc) => "na",
        (SortField::Name, SortOrder::Desc) => "nd",
        (SortField::Pushed, SortOrder::Asc) => "pa",
        (SortField::Pushed, SortOrder::Desc) => "pd",
    }
}

/// Encodes the position after which the next page starts, for `sort`. The token is
/// opaque to clients (hex of `<sort>:<millis>:<key>`).
pub fn encode_cursor(sort: Sort, after: &Position) -> String {
    hex::encode(format!(
        "{}:{}:{}",
        sort_code(sort),
        after.pushed_at,
        after.key
    ))
}

/// Decodes a token made by [`encode_cursor`] for the same `sort`.
pub fn decode_cursor(sort: Sort, token: &str) -> Result<Position, CursorError> {
    let raw = hex::decode(token).map_err(|_| CursorError::Malformed)?;
    let raw = String::from_utf8(raw).map_err(|_| CursorError::Malformed)?;
    let mut parts = raw.splitn(3, ':');
    let (Some(code), Some(millis), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CursorError::Malformed);
    };
    let pushed_at = millis.parse().map_err(|_| CursorError::Malformed)?;
    if !["na", "nd", "pa", "pd"].contains(&code) {
        return Err(CursorError::Malformed);
    }
    if code != sort_code(sort) {
        return Err(CursorError::OtherSort);
    }
    Ok(Position {
        pushed_at,
        key: key.to_string(),
    })
}

impl Registry {
    fn clamp(&self, mut req: PageRequest) -> PageRequest {
        req.n = req.n.min(self.config.max_list_page);
        req
    }

    /// One page of the repositories of the registry (`namespace` `None`) or of every
    /// repository under `namespace` (names starting with `<namespace>/`).
    pub async fn list_repositories(
        &self,
        namespace: Option<&RepoName>,
        req: PageRequest,
    ) -> Result<Page<RepositoryRecord>, RegistryError> {
        let ns = namespace.map(|n| n.to_string()).unwrap_or_default();
        let req = self.clamp(req);
        Ok(self.meta.list_repositories(&ns, &req).await?)
    }

    /// One page of the repositories that `visible` admits (access control decides
    /// it), as [`Registry::list_repositories`] orders them; the page is full unless
    /// it is the last, and its cursor names a visible repository.
    pub async fn list_visible_repositories(
        &self,
        namespace: Option<&RepoName>,
        req: PageRequest,
        visible: impl Fn(&str) -> bool,
    ) -> Result<KeptPage<RepositoryRecord, Position>, RegistryError> {
        let want = req.n.min(self.config.max_list_page) as usize;
        let scan = self.config.max_list_page;
        let page = kept_page(
            want,
            req.after.clone(),
            |after| {
                let req = PageRequest {
                    sort: req.sort,
                    after,
                    n: scan,
                };
                self.list_repositories(namespace, req)
            },
            Position::of_repository,
            |r: &RepositoryRecord| visible(&r.name),
        )
        .await?;
        if page.truncated {
            tracing::warn!(
                limit = super::kept::SCAN_LIMIT,
                "repository listing shortened: the caller may see too few of the repositories examined"
            );
        }
        Ok(page)
    }

    /// One page of the tags of `repo`, each with its digest and push time; with
    /// `digest`, only the tags pointing at it. `filter` applies to the manifest each
    /// tag points at (`tagged` is ignored).
    pub async fn list_tag_records(
        &self,
        repo: &RepoName,
        digest: Option<&Digest>,
        filter: ManifestFilter,
        req: PageRequest,
    ) -> Result<Page<TagRecord>, RegistryError> {
        let digest = digest.map(|d| d.to_string());
        let req = self.clamp(req);
        self.meta
            .list_tag_records(repo.as_str(), digest.as_deref(), &filter, &req)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(repo.to_string()))
    }

    /// One page of the manifests of `repo`, tagged and untagged; with `subject`,
    /// only its referrers.
    pub async fn list_manifest_summaries(
        &self,
        repo: &RepoName,
        subject: Option<&Digest>,
        filter: ManifestFilter,
        req: PageRequest,
    ) -> Result<Page<ManifestSummary>, RegistryError> {
        // The referrers switch governs the listing's referrers module too.
        if subject.is_some() && !self.config().referrers {
            return Err(RegistryError::ReferrersDisabled);
        }
        let subject = subject.map(|d| d.to_string());
        let req = self.clamp(req);
        self.meta
            .list_manifest_summaries(repo.as_str(), subject.as_deref(), &filter, &req)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(repo.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORTS: [Sort; 4] = [
        Sort {
            field: SortField::Name,
            order: SortOrder::Asc,
        },
        Sort {
            field: SortField::Name,
            order: SortOrder::Desc,
        },
        Sort {
            field: SortField::Pushed,
            order: SortOrder::Asc,
        },
        Sort {
            field: SortField::Pushed,
            order: SortOrder::Desc,
        },
    ];

    #[test]
    fn cursors_round_trip_for_their_own_sort_only() {
        let p = Position {
            pushed_at: 1_700_000_000_123,
            key: "sha256:abc:with:colons".into(),
        };
        for sort in SORTS {
            let t = encode_cursor(sort, &p);
            assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
            assert_eq!(decode_cursor(sort, &t), Ok(p.clone()));
            for other in SORTS.iter().filter(|o| **o != sort) {
                assert_eq!(decode_cursor(*other, &t), Err(CursorError::OtherSort));
            }
        }
    }

    #[test]
    fn foreign_tokens_are_refused() {
        let s = SORTS[0];
        for bad in [
            "",
            "zz",
            "6e61",
            &hex::encode("xx:1:a"),
            &hex::encode("na:x:a"),
            &hex::encode([0xff, 0xfe]),
        ] {
            assert_eq!(
                decode_cursor(s, bad),
                Err(CursorError::Malformed),
                "{bad:?}"
            );
        }
    }
}
