//! One registry under test and what the run has put in it so far: blobs to pull,
//! seeded tags, referrers and repositories, and the ledger of what to delete.

use std::sync::{Arc, Mutex};

use super::client::BenchClient;
use super::content::BlobSpec;
use super::report::CleanupSummary;

/// A blob the run pushed.
#[derive(Debug, Clone)]
pub struct PushedBlob {
    /// Repository it is in.
    pub repo: String,
    /// How to generate it.
    pub spec: BlobSpec,
    /// Its digest.
    pub digest: String,
}

/// A manifest the run pushed and can request by tag and digest.
#[derive(Debug, Clone)]
pub struct Image {
    /// Repository.
    pub repo: String,
    /// A tag pointing at it.
    pub tag: String,
    /// Its digest.
    pub digest: String,
    /// Its bytes.
    pub bytes: bytes::Bytes,
}

/// The seeded tag list.
#[derive(Debug, Clone)]
pub struct TagSeed {
    /// Repository.
    pub repo: String,
    /// Tags `name(0) .. name(count)` exist.
    pub count: u64,
    /// Digits in tag names.
    pub width: usize,
}

impl TagSeed {
    /// The name of tag number `i`: `t` and `i` zero-padded, so lexical order is numeric order.
    pub fn name(&self, i: u64) -> String {
        format!("t{i:0w$}", w = self.width)
    }
}

/// The first and last page URLs of a referrers listing, as the registry paged it.
#[derive(Debug, Clone)]
pub struct Pages {
    /// The first page's path.
    pub first: String,
    /// The last page's path or URL (the first when there is one page).
    pub last: String,
    /// Pages walked.
    pub count: u64,
    /// Entries seen over all pages.
    pub entries: u64,
}

/// The seeded referrers, or why the registry cannot list them.
#[derive(Debug, Clone)]
pub enum ReferrersSeed {
    /// Seeded and walked.
    Ready {
        /// Every referrer.
        all: Pages,
        /// Referrers of the filtered artifact type.
        filtered: Pages,
        /// Whether the registry announced it applied the filter.
        filter_applied: bool,
    },
    /// The registry has no referrers API, or seeding failed.
    Unavailable(String),
}

/// What a ledger entry is, which decides when cleanup deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A blob no manifest refers to (deleted first: the large ones).
    Blob,
    /// A manifest (deleted by digest, which removes its tags too).
    Manifest,
    /// A blob that manifests refer to (deleted after them).
    Layer,
}

/// Things to delete at the end: `(kind, repository, digest)` in the order pushed.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The entries.
    pub entries: Vec<(Kind, String, String)>,
}

/// A registry being measured.
pub struct Target {
    /// `A` or `B`.
    pub label: String,
    /// Its client.
    pub registry: BenchClient,
    /// Server process to watch.
    pub pid: Option<u32>,
    /// Blobs pushed by the push phases, for the pull phases.
    pub pushed: Vec<PushedBlob>,
    /// The manifest of the manifest phases.
    pub image: Option<Image>,
    /// The tag list of the tag-list phases.
    pub tags: Option<TagSeed>,
    /// The referrers of the referrers phases.
    pub referrers: Option<ReferrersSeed>,
    /// Repositories seeded for the catalog phases.
    pub repos: Option<u64>,
    /// What to delete.
    pub ledger: Arc<Mutex<Ledger>>,
    /// Highest resident set seen, MiB.
    pub peak_rss_mib: Option<f64>,
    /// What cleanup deleted, once it ran.
    pub cleanup: Option<CleanupSummary>,
}

impl Target {
    /// A target with nothing pushed yet.
    pub fn new(label: &str, registry: BenchClient, pid: Option<u32>) -> Target {
        Target {
            label: label.to_string(),
            registry,
            pid,
            pushed: Vec::new(),
            image: None,
            tags: None,
            referrers: None,
            repos: None,
            ledger: Arc::default(),
            peak_rss_mib: None,
            cleanup: None,
        }
    }

    /// Notes something to delete at the end.
    pub fn owe(&self, kind: Kind, repo: &str, digest: &str) {
        owe(&self.ledger, kind, repo, digest);
    }
}

/// Adds an entry to a ledger shared with worker tasks.
pub fn owe(ledger: &Mutex<Ledger>, kind: Kind, repo: &str, digest: &str) {
    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    l.entries.push((kind, repo.to_string(), digest.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_sort_numerically() {
        let s = TagSeed {
            repo: "r".into(),
            count: 100_000,
            width: 6,
        };
        assert_eq!(s.name(0), "t000000");
        assert_eq!(s.name(99_999), "t099999");
        assert!(s.name(9) < s.name(10));
    }
}
