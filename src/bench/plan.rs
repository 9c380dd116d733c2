//! The phases a run goes through, in order, derived from the settings. Each phase
//! is measured separately against each registry; seeding and cleanup are phases of
//! their own so that their cost is visible but kept apart from what they prepare.

use super::settings::{size_label, Settings, Workload};

/// One measured step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Push blobs of `size` bytes, monolithic (`POST` + `PUT`) or chunked (`PATCH`es).
    Push {
        /// Chunked rather than monolithic.
        chunked: bool,
        /// Blob size in bytes.
        size: u64,
    },
    /// Pull whole blobs of `size` bytes.
    Pull {
        /// Blob size in bytes.
        size: u64,
    },
    /// Ranged reads of the largest blob.
    PullRange,
    /// Manifest requests at `connections` concurrency.
    Manifest {
        /// `HEAD` rather than `GET`.
        head: bool,
        /// By digest rather than by tag.
        by_digest: bool,
    },
    /// Small blob pushes at `concurrency`.
    SmallBlobs,
    /// One `PUT` per new tag of the same manifest.
    TagPush,
    /// Tagging one manifest many times for the tag list (with `?tag=` when supported).
    TagSeed,
    /// A page of the seeded tag list.
    TagList {
        /// The last page rather than the first.
        last: bool,
    },
    /// Pushing the referrers of one subject.
    ReferrersSeed,
    /// A page of the referrers.
    Referrers {
        /// Filtered by `artifactType`.
        filtered: bool,
        /// The last page rather than the first.
        last: bool,
    },
    /// Creating the catalog's repositories.
    CatalogSeed,
    /// A page of the catalog.
    Catalog {
        /// The page ending at the last seeded repository rather than the first page.
        last: bool,
    },
    /// Deleting everything the run pushed.
    Cleanup,
}

impl Phase {
    /// Stable identifier used in reports and for pairing phases across registries.
    pub fn id(&self) -> String {
        let fl = |last: bool| if last { "last" } else { "first" };
        match *self {
            Phase::Push { chunked, size } => format!(
                "push-{}-{}",
                if chunked { "chunked" } else { "mono" },
                size_label(size)
            ),
            Phase::Pull { size } => format!("pull-{}", size_label(size)),
            Phase::PullRange => "pull-range".into(),
            Phase::Manifest { head, by_digest } => format!(
                "manifest-{}-{}",
                if head { "head" } else { "get" },
                if by_digest { "digest" } else { "tag" }
            ),
            Phase::SmallBlobs => "small-blobs".into(),
            Phase::TagPush => "tag-push".into(),
            Phase::TagSeed => "tag-seed".into(),
            Phase::TagList { last } => format!("tag-list-{}", fl(last)),
            Phase::ReferrersSeed => "referrers-seed".into(),
            Phase::Referrers { filtered, last } => format!(
                "referrers-{}-{}",
                if filtered { "filtered" } else { "all" },
                fl(last)
            ),
            Phase::CatalogSeed => "catalog-seed".into(),
            Phase::Catalog { last } => format!("catalog-{}", fl(last)),
            Phase::Cleanup => "cleanup".into(),
        }
    }

    /// The workload the phase belongs to (`cleanup` for cleanup).
    pub fn workload(&self) -> &'static str {
        match self {
            Phase::Push { .. } => Workload::BlobPush.name(),
            Phase::Pull { .. } | Phase::PullRange => Workload::BlobPull.name(),
            Phase::Manifest { .. } => Workload::Manifests.name(),
            Phase::SmallBlobs => Workload::SmallBlobs.name(),
            Phase::TagPush => Workload::TagPush.name(),
            Phase::TagSeed | Phase::TagList { .. } => Workload::TagList.name(),
            Phase::ReferrersSeed | Phase::Referrers { .. } => Workload::Referrers.name(),
            Phase::CatalogSeed | Phase::Catalog { .. } => Workload::Catalog.name(),
            Phase::Cleanup => "cleanup",
        }
    }

    /// A one-line description with the settings that shape it.
    pub fn title(&self, s: &Settings) -> String {
        let fl = |last: bool| if last { "last" } else { "first" };
        match *self {
            Phase::Push {
                chunked: false,
                size,
            } => {
                format!("monolithic push, {} ×{}", size_label(size), s.repeats(size))
            }
            Phase::Push {
                chunked: true,
                size,
            } => format!(
                "chunked push, {} ×{} in {} chunks",
                size_label(size),
                s.repeats(size),
                size_label(s.chunk_size)
            ),
            Phase::Pull { size } => format!("pull, {} ×{}", size_label(size), s.repeats(size)),
            Phase::PullRange => format!(
                "ranged pulls of {}, {} concurrent",
                size_label(s.range_size),
                s.concurrency
            ),
            Phase::Manifest { head, by_digest } => format!(
                "manifest {} by {}, {} connections",
                if head { "HEAD" } else { "GET" },
                if by_digest { "digest" } else { "tag" },
                s.connections
            ),
            Phase::SmallBlobs => format!(
                "small blob pushes, {} ×{}, {} concurrent",
                size_label(s.small_blob_size),
                s.small_blobs,
                s.concurrency
            ),
            Phase::TagPush => format!(
                "tag pushes, one PUT each, ×{}, {} concurrent",
                s.tag_pushes, s.concurrency
            ),
            Phase::TagSeed => format!("seeding {} tags on one manifest", s.tags),
            Phase::TagList { last } => format!(
                "tag list, {} page of {} out of {}",
                fl(last),
                s.page,
                s.tags
            ),
            Phase::ReferrersSeed => format!("seeding {} referrers of one subject", s.referrers),
            Phase::Referrers { filtered, last } => format!(
                "referrers{}, {} page, of {}",
                if filtered {
                    " filtered by artifactType"
                } else {
                    ""
                },
                fl(last),
                s.referrers
            ),
            Phase::CatalogSeed => format!("seeding {} repositories", s.repos),
            Phase::Catalog { last } => format!(
                "catalog, {} page of {} with {} repositories",
                fl(last),
                s.page,
                s.repos
            ),
            Phase::Cleanup => "deleting what the run pushed".into(),
        }
    }
}

/// Every phase the settings call for, in running order.
pub fn plan(s: &Settings) -> Vec<Phase> {
    let mut v = Vec::new();
    if s.runs(Workload::BlobPush) {
        for chunked in [false, true] {
            v.extend(s.sizes.iter().map(|&size| Phase::Push { chunked, size }));
        }
    }
    if s.runs(Workload::BlobPull) {
        v.extend(s.sizes.iter().map(|&size| Phase::Pull { size }));
        v.push(Phase::PullRange);
    }
    if s.runs(Workload::Manifests) {
        for by_digest in [false, true] {
            for head in [false, true] {
                v.push(Phase::Manifest { head, by_digest });
            }
        }
    }
    if s.runs(Workload::SmallBlobs) {
        v.push(Phase::SmallBlobs);
    }
    if s.runs(Workload::TagPush) {
        v.push(Phase::TagPush);
    }
    if s.runs(Workload::TagList) {
        v.extend([
            Phase::TagSeed,
            Phase::TagList { last: false },
            Phase::TagList { last: true },
        ]);
    }
    if s.runs(Workload::Referrers) {
        v.push(Phase::ReferrersSeed);
        for filtered in [false, true] {
            for last in [false, true] {
                v.push(Phase::Referrers { filtered, last });
            }
        }
    }
    if s.runs(Workload::Catalog) {
        v.extend([
            Phase::CatalogSeed,
            Phase::Catalog { last: false },
            Phase::Catalog { last: true },
        ]);
    }
    if s.cleanup {
        v.push(Phase::Cleanup);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_covers_every_workload_once_with_unique_ids() {
        let p = plan(&Settings::default());
        let ids: Vec<String> = p.iter().map(Phase::id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        for w in Workload::ALL {
            assert!(p.iter().any(|ph| ph.workload() == w.name()), "{w}");
        }
        assert_eq!(ids.first().map(String::as_str), Some("push-mono-1MiB"));
        assert_eq!(ids.last().map(String::as_str), Some("cleanup"));
        assert_eq!(p.len(), 8 + 5 + 4 + 1 + 1 + 3 + 5 + 3 + 1);
    }

    #[test]
    fn selection_and_no_cleanup() {
        let s = Settings {
            workloads: vec![Workload::Catalog, Workload::SmallBlobs],
            cleanup: false,
            ..Settings::default()
        };
        let ids: Vec<String> = plan(&s).iter().map(Phase::id).collect();
        assert_eq!(
            ids,
            [
                "small-blobs",
                "catalog-seed",
                "catalog-first",
                "catalog-last"
            ]
        );
    }
}
