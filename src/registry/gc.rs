//! Garbage collection by reachability, safe beside concurrent pushes and beside
//! other processes collecting the same stores.
//!
//! What lives: a blob link of a repository lives while a manifest of that
//! repository references the blob (config, layers, index children; a `subject` is
//! not a reference), or for [`Config::gc_grace_secs`](crate::config::Config) after
//! it was made (an upload, a mount, a monolithic push): a push uploads its layers
//! before its manifest. A blob lives while any repository links it or any
//! manifest anywhere references it. Everything else is collected.
//!
//! Why it is safe without an in-process lock: every decision is a condition
//! re-checked inside one metadata write transaction, and the stores' writes that
//! could contradict it are made inside such transactions too.
//! - A link is pruned by a `DELETE … WHERE` that re-checks "old and unreferenced";
//!   a manifest push checks that its blobs are linked inside its own transaction.
//!   Whichever commits first wins: either the push sees the link gone and answers
//!   `MANIFEST_BLOB_UNKNOWN` (the client uploads again), or the prune sees the
//!   reference and keeps the link. Never a 201 with a missing blob.
//! - A blob's bytes are removed inside the transaction that forgets the blob, and
//!   linking a blob checks inside its transaction that the bytes are there: a link
//!   racing with a removal fails (`Vanished`) instead of pointing at nothing.
//!
//! Retention rules (`[[retention]]`) run first: they delete old tags and old
//! untagged manifests of matching repositories, each deletion re-checking its
//! condition in its own transaction (a tag pushed again, or a manifest tagged,
//! referenced by an index or given a subject meanwhile, stays). Their blobs then
//! go the way of any unreferenced blob.
//!
//! With SQLite the write transaction is a database-wide lock that every process
//! on the same file honours (a `marina gc` beside a running server); a shared
//! database must give the same guarantee with its own transactions.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::{Registry, RegistryError};
use crate::metrics::GcRun;
use crate::oci::Digest;
use crate::store::GarbagePreview;

/// Rows handled per transaction.
const BATCH: u32 = 500;
/// Most batches of one step in one run (bounds a run on a huge backlog).
const MAX_BATCHES: usize = 10_000;
/// Digest prefixes (of 256) the server's periodic collection lists for bytes
/// no record names: a listing per prefix (a LIST request on S3) is too much
/// to repeat for all at every run, and such bytes come only from crashes; a
/// full pass takes 256 / this many collections.
pub(crate) const UNRECORDED_PREFIXES_PER_RUN: usize = 16;

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Tags deleted by retention rules.
    pub tags: u64,
    /// Untagged manifests deleted by retention rules.
    pub manifests: u64,
    /// Blob links pruned (unreferenced by their repository, older than the grace).
    pub links: u64,
    /// Blobs whose bytes were removed.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Repositories forgotten because nothing was left in them.
    pub repositories: u64,
    /// How long the run took.
    pub duration: Duration,
}

impl Registry {
    /// Collects everything unreachable: prunes dead links, removes the bytes of
    /// blobs nothing holds, forgets emptied repositories and compacts the
    /// metadata. `progress` is told the step and how much it did so far.
    pub async fn collect_garbage_with(
        &self,
        progress: &(dyn Fn(&str, u64) + Send + Sync),
    ) -> Result<GcReport, RegistryError> {
        let started = Instant::now();
        let mut report = GcReport::default();
        for item in self.retention_plan().await? {
            let (tags, manifests) = item.apply(&*self.meta).await?;
            report.tags += tags;
            report.manifests += manifests;
            progress("retention", report.tags + report.manifests);
        }
        let cutoff = self.gc_cutoff();
        for _ in 0..MAX_BATCHES {
            let n = self.meta.prune_links(cutoff, BATCH).await?;
            report.links += n;
            progress("links", report.links);
            if n < u64::from(BATCH) {
                break;
            }
        }
        for _ in 0..MAX_BATCHES {
            let candidates = self.meta.unreferenced_blobs(BATCH).await?;
            let seen = candidates.len();
            let (mut n, mut bytes) = (0u64, 0u64);
            for (d, size) in candidates {
                let Ok(digest) = d.parse::<Digest>() else {
                    continue;
                };
                let remove = || -> BoxFuture<'_, std::io::Result<()>> {
                    Box::pin(self.remove_bytes(&digest))
                };
                if self.meta.collect_blob(&d, &remove).await? {
                    n += 1;
                    bytes += size;
                }
            }
            report.blobs += n;
            report.bytes += bytes;
            progress("blobs", report.blobs);
            if seen < BATCH as usize || n == 0 {
                break;
            }
        }
        report.repositories = self.meta.prune_repositories().await?;
        self.meta.compact().await?;
        report.duration = started.elapsed();
        self.metrics.gc(&GcRun {
            duration: report.duration,
            blobs: report.blobs,
            manifests: report.manifests,
            bytes: report.bytes,
        });
        Ok(report)
    }

    /// Removes stored bytes that no blob record names and that are older
    /// than the grace period: left by a crash between a blob's publish
    /// (its bytes renamed into place) and its record's commit. Each removal
    /// re-checks, inside a metadata write, that no record appeared. Looks at
    /// `prefixes` digest prefixes (of 256), after the last call's. Returns
    /// how many blobs and bytes went.
    pub async fn collect_unrecorded_bytes(
        &self,
        prefixes: usize,
    ) -> Result<(u64, u64), RegistryError> {
        self.unrecorded_bytes(prefixes, true).await
    }

    /// What [`Registry::collect_unrecorded_bytes`] would remove over the
    /// whole store now (blobs and bytes), removing nothing.
    pub async fn unrecorded_bytes_preview(&self) -> Result<(u64, u64), RegistryError> {
        self.unrecorded_bytes(256, false).await
    }

    /// Finds unrecorded bytes in `prefixes` digest prefixes and, with
    /// `remove`, removes them; counts them either way.
    async fn unrecorded_bytes(
        &self,
        prefixes: usize,
        remove: bool,
    ) -> Result<(u64, u64), RegistryError> {
        let grace = Duration::from_secs(self.config.gc_grace_secs);
        let before = std::time::SystemTime::now() - grace;
        let (mut n, mut bytes) = (0u64, 0u64);
        let prefixes = prefixes.min(256);
        let from = self
            .unrecorded_from
            .fetch_add(prefixes, std::sync::atomic::Ordering::Relaxed);
        for step in 0..prefixes {
            let prefix = ((from + step) % 256) as u8;
            let blobs = self.blobs.clone();
            let found =
                tokio::task::spawn_blocking(move || blobs.blobs_written_before(prefix, before))
                    .await
                    .map_err(|e| RegistryError::Internal(format!("listing blob files: {e}")))?;
            for (digest, size) in found {
                let removal = || -> BoxFuture<'_, std::io::Result<()>> {
                    if remove {
                        Box::pin(self.remove_bytes(&digest))
                    } else {
                        Box::pin(std::future::ready(Ok(())))
                    }
                };
                if self
                    .meta
                    .collect_unrecorded(&digest.to_string(), &removal)
                    .await?
                {
                    if remove {
                        tracing::info!(%digest, size, "removed blob bytes no record named");
                    }
                    n += 1;
                    bytes += size;
                }
            }
        }
        Ok((n, bytes))
    }

    /// Removes a blob's bytes; bytes already gone are fine (another
    /// collector, or a crash after the removal).
    async fn remove_bytes(&self, digest: &Digest) -> std::io::Result<()> {
        match self.blobs.remove(digest).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// [`Registry::collect_garbage_with`] without progress reports.
    pub async fn collect_garbage(&self) -> Result<GcReport, RegistryError> {
        self.collect_garbage_with(&|_, _| {}).await
    }

    /// What a collection now would remove, removing nothing.
    pub async fn garbage_preview(&self) -> Result<GarbagePreview, RegistryError> {
        Ok(self.meta.garbage_preview(self.gc_cutoff()).await?)
    }

    /// What the retention rules would delete now, per matching repository (the
    /// untagged manifests that deleting these tags would free are found when the
    /// rules run).
    pub async fn retention_plan(&self) -> Result<Vec<RetentionItem>, RegistryError> {
        if self.config.retention.is_empty() {
            return Ok(Vec::new());
        }
        let rules: Vec<(
            globset::GlobMatcher,
            globset::GlobSet,
            &crate::config::RetentionRule,
        )> = self
            .config
            .retention
            .iter()
            .filter_map(|r| {
                let repos = crate::oci::name::repository_glob(&r.repositories).ok()?;
                let mut protect = globset::GlobSetBuilder::new();
                for t in &r.protect_tags {
                    protect.add(globset::Glob::new(t).ok()?);
                }
                Some((repos, protect.build().ok()?, r))
            })
            .collect();
        let now = self.clock.now_millis();
        let mut plan = Vec::new();
        let mut last = None;
        let mut scanned = 0;
        while scanned < super::kept::SCAN_LIMIT {
            let page = self.catalog(last.take(), 1000).await?;
            scanned += page.items.len().max(1);
            last = page.items.last().cloned();
            for repo in &page.items {
                // The first rule that matches a repository governs it.
                let Some((_, protect, rule)) = rules.iter().find(|(g, _, _)| g.is_match(repo))
                else {
                    continue;
                };
                let tags = self.meta.tags_by_age(repo).await?;
                let mut kept = 0u32;
                let mut doomed = Vec::new();
                for (tag, pushed_at) in tags {
                    if protect.is_match(&tag) {
                        continue;
                    }
                    let too_many = rule.keep_tags.is_some_and(|n| kept >= n);
                    let too_old = rule
                        .tag_max_age_secs
                        .is_some_and(|s| pushed_at <= now - (s as i64).saturating_mul(1000));
                    if too_many || too_old {
                        doomed.push((tag, pushed_at));
                    } else {
                        kept += 1;
                    }
                }
                let untagged_cutoff = rule
                    .untagged_max_age_secs
                    .map(|s| now - (s as i64).saturating_mul(1000));
                let manifests = match untagged_cutoff {
                    Some(cutoff) => self.meta.expendable_untagged(repo, cutoff).await?,
                    None => Vec::new(),
                };
                if !doomed.is_empty() || untagged_cutoff.is_some() {
                    plan.push(RetentionItem {
                        repository: repo.clone(),
                        tags: doomed,
                        untagged_cutoff,
                        manifests,
                    });
                }
            }
            if !page.more || last.is_none() {
                break;
            }
        }
        Ok(plan)
    }

    /// The blob bytes each of `repos` holds, and of those no other repository holds.
    pub async fn repository_usage(
        &self,
        repos: Vec<String>,
    ) -> Result<Vec<crate::store::RepositoryUsage>, RegistryError> {
        let mut usage = Vec::with_capacity(repos.len());
        for r in &repos {
            usage.push(self.meta.repository_usage(r).await?);
        }
        Ok(usage)
    }

    /// The blobs held under `namespace` (the whole registry without one), each
    /// counted once.
    pub async fn namespace_usage(
        &self,
        namespace: Option<&crate::oci::RepoName>,
    ) -> Result<crate::store::NamespaceUsage, RegistryError> {
        let ns = namespace.map(|n| n.to_string()).unwrap_or_default();
        Ok(self.meta.namespace_usage(&ns).await?)
    }

    /// Links made before this instant (milliseconds since the epoch) are past
    /// their grace period.
    fn gc_cutoff(&self) -> i64 {
        self.clock.now_millis() - (self.config.gc_grace_secs as i64).saturating_mul(1000)
    }
}

/// What retention deletes in one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionItem {
    /// The repository.
    pub repository: String,
    /// Tags to delete, with the push time they must still have.
    pub tags: Vec<(String, i64)>,
    /// Untagged manifests pushed at or before this instant (milliseconds since the
    /// epoch) may go, when a rule says so.
    pub untagged_cutoff: Option<i64>,
    /// The untagged manifests that may go now (more may follow once these tags
    /// and manifests are gone).
    pub manifests: Vec<String>,
}

/// Rounds of untagged-manifest deletion per repository: deleting an index frees
/// its children for the next round.
const UNTAGGED_ROUNDS: usize = 8;

impl RetentionItem {
    /// Deletes what the item names, each deletion re-checked; returns the tags
    /// and manifests deleted.
    async fn apply(
        &self,
        meta: &dyn crate::store::MetadataStore,
    ) -> Result<(u64, u64), RegistryError> {
        let mut tags = 0;
        for (tag, pushed_at) in &self.tags {
            if meta
                .delete_tag_pushed_at(&self.repository, tag, *pushed_at)
                .await?
            {
                tags += 1;
            }
        }
        let mut manifests = 0;
        if let Some(cutoff) = self.untagged_cutoff {
            for _ in 0..UNTAGGED_ROUNDS {
                let round = meta.expendable_untagged(&self.repository, cutoff).await?;
                let mut deleted = 0;
                for d in &round {
                    if meta.delete_expendable(&self.repository, d, cutoff).await? {
                        deleted += 1;
                    }
                }
                manifests += deleted;
                if deleted == 0 {
                    break;
                }
            }
        }
        Ok((tags, manifests))
    }
}
