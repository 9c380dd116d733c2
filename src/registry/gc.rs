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
//! With SQLite the write transaction is a database-wide lock that every process
//! on the same file honours (a `marina gc` beside a running server); a shared
//! database must give the same guarantee with its own transactions.

use std::time::{Duration, Instant};

use super::{blocking, Registry, RegistryError};
use crate::metrics::GcRun;
use crate::oci::Digest;
use crate::store::GarbagePreview;

/// Rows handled per transaction.
const BATCH: u32 = 500;
/// Most batches of one step in one run (bounds a run on a huge backlog).
const MAX_BATCHES: usize = 10_000;

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
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
        let cutoff = self.gc_cutoff();
        for _ in 0..MAX_BATCHES {
            let meta = self.meta.clone();
            let n = blocking(move || Ok(meta.prune_links(cutoff, BATCH)?)).await?;
            report.links += n;
            progress("links", report.links);
            if n < u64::from(BATCH) {
                break;
            }
        }
        for _ in 0..MAX_BATCHES {
            let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
            let (n, bytes, seen) = blocking(move || {
                let candidates = meta.unreferenced_blobs(BATCH)?;
                let seen = candidates.len();
                let (mut n, mut bytes) = (0u64, 0u64);
                for (d, size) in candidates {
                    let Ok(digest) = d.parse::<Digest>() else {
                        continue;
                    };
                    let mut remove = || match blobs.remove(&digest) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        other => other,
                    };
                    if meta.collect_blob(&d, &mut remove)? {
                        n += 1;
                        bytes += size;
                    }
                }
                Ok((n, bytes, seen))
            })
            .await?;
            report.blobs += n;
            report.bytes += bytes;
            progress("blobs", report.blobs);
            if seen < BATCH as usize || n == 0 {
                break;
            }
        }
        let meta = self.meta.clone();
        report.repositories = blocking(move || {
            let n = meta.prune_repositories()?;
            meta.compact()?;
            Ok(n)
        })
        .await?;
        report.duration = started.elapsed();
        self.metrics.gc(&GcRun {
            duration: report.duration,
            blobs: report.blobs,
            manifests: 0,
            bytes: report.bytes,
        });
        Ok(report)
    }

    /// [`Registry::collect_garbage_with`] without progress reports.
    pub async fn collect_garbage(&self) -> Result<GcReport, RegistryError> {
        self.collect_garbage_with(&|_, _| {}).await
    }

    /// What a collection now would remove, removing nothing.
    pub async fn garbage_preview(&self) -> Result<GarbagePreview, RegistryError> {
        let meta = self.meta.clone();
        let cutoff = self.gc_cutoff();
        blocking(move || Ok(meta.garbage_preview(cutoff)?)).await
    }

    /// Links made before this instant (milliseconds since the epoch) are past
    /// their grace period.
    fn gc_cutoff(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        now - (self.config.gc_grace_secs as i64).saturating_mul(1000)
    }
}
