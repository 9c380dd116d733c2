//! Cleanup: delete every manifest the run pushed (by digest, which also removes its
//! tags), then every blob, `concurrency` at a time. A registry that answers 405
//! does not allow that kind of deletion: the rest of that kind is skipped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::ProgressBar;
use reqwest::StatusCode;

use super::{finish, Ctx};
use crate::bench::driver;
use crate::bench::plan::Phase;
use crate::bench::report::{CleanupSummary, PhaseResult, Unit};
use crate::bench::target::Target;

/// Deletes what the ledger lists.
pub async fn run(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let (mut manifests, mut blobs) = {
        let mut l = t.ledger.lock().unwrap_or_else(|p| p.into_inner());
        (
            std::mem::take(&mut l.manifests),
            std::mem::take(&mut l.blobs),
        )
    };
    for list in [&mut manifests, &mut blobs] {
        list.sort();
        list.dedup();
    }
    let items: Arc<Vec<(bool, String, String)>> = Arc::new(
        manifests
            .into_iter()
            .map(|(r, d)| (true, r, d))
            .chain(blobs.into_iter().map(|(r, d)| (false, r, d)))
            .collect(),
    );
    let n = items.len() as u64;
    bar.set_length(n);
    let counters = Arc::new(Counters::default());
    // Manifests go first: delete them all before any blob, so that no manifest is
    // left pointing at a deleted blob if the run stops half-way.
    let split = items.iter().filter(|i| i.0).count() as u64;
    let mut tallies = Vec::new();
    for (from, to) in [(0, split), (split, n)] {
        let bounds = ctx.count_bounds(ctx.settings.concurrency, to - from);
        let (reg, items, counters) = (t.registry.clone(), items.clone(), counters.clone());
        let tally = driver::run(bounds, bar, move |i| {
            let (reg, items, c) = (reg.clone(), items.clone(), counters.clone());
            async move {
                let (manifest, repo, digest) = &items[(from + i) as usize];
                let refused = if *manifest {
                    &c.manifests_refused
                } else {
                    &c.blobs_refused
                };
                if refused.load(Ordering::Relaxed) {
                    c.refused.fetch_add(1, Ordering::Relaxed);
                    return Ok(0);
                }
                let kind = if *manifest { "manifests" } else { "blobs" };
                match reg.delete(&format!("/v2/{repo}/{kind}/{digest}")).await? {
                    s if s.is_success() || s == StatusCode::NOT_FOUND => {
                        let done = if *manifest { &c.manifests } else { &c.blobs };
                        done.fetch_add(1, Ordering::Relaxed);
                        Ok(0)
                    }
                    StatusCode::METHOD_NOT_ALLOWED => {
                        refused.store(true, Ordering::Relaxed);
                        c.refused.fetch_add(1, Ordering::Relaxed);
                        Ok(0)
                    }
                    s => anyhow::bail!("DELETE {kind}/{digest} in {repo}: {s}"),
                }
            }
        })
        .await;
        tallies.push((bounds, tally));
    }
    let mut summary = CleanupSummary {
        manifests_deleted: counters.manifests.load(Ordering::Relaxed),
        blobs_deleted: counters.blobs.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        failed: 0,
    };
    let (b2, mut total) = tallies.pop().expect("two passes");
    let (b1, first) = tallies.pop().expect("two passes");
    total.ops += first.ops;
    total.errors += first.errors;
    total.elapsed += first.elapsed;
    total.latencies.merge(&first.latencies);
    total.started += first.started;
    total.hit_time_limit |= first.hit_time_limit;
    if total.first_error.is_none() {
        total.first_error = first.first_error;
    }
    summary.failed = n - summary.manifests_deleted - summary.blobs_deleted - summary.refused;
    let bounds = driver::Bounds {
        max_ops: b1.max_ops + b2.max_ops,
        ..b2
    };
    let mut r = finish(ctx, phase, Unit::Ops, bounds, total, false);
    super::note(
        &mut r,
        format!(
            "deleted {} manifests and {} blobs; {} refused (405), {} failed",
            summary.manifests_deleted, summary.blobs_deleted, summary.refused, summary.failed
        ),
    );
    t.cleanup = Some(summary);
    r
}

#[derive(Default)]
struct Counters {
    manifests: AtomicU64,
    blobs: AtomicU64,
    refused: AtomicU64,
    manifests_refused: AtomicBool,
    blobs_refused: AtomicBool,
}
