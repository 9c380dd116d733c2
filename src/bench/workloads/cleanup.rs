//! Cleanup: delete what the run pushed, `concurrency` at a time, within one phase
//! time limit: first the blobs no manifest refers to (the large ones), then every
//! manifest by digest (which removes its tags too), then the blobs those manifests
//! referred to, so no manifest is ever left pointing at a deleted blob. A registry
//! that answers 405 does not allow that kind of deletion: the rest of it is skipped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;
use reqwest::StatusCode;

use super::{finish, Ctx};
use crate::bench::driver::{self, Bounds, Tally};
use crate::bench::plan::Phase;
use crate::bench::report::{CleanupSummary, PhaseResult, Unit};
use crate::bench::target::{Kind, Target};

#[derive(Default)]
struct Counters {
    manifests: AtomicU64,
    blobs: AtomicU64,
    refused: AtomicU64,
    manifests_refused: AtomicBool,
    blobs_refused: AtomicBool,
}

/// Entries of `kind`, first occurrence kept, in the order pushed.
fn of_kind(entries: &[(Kind, String, String)], kind: Kind) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    entries
        .iter()
        .filter(|e| e.0 == kind && seen.insert((e.1.clone(), e.2.clone())))
        .map(|e| (e.1.clone(), e.2.clone()))
        .collect()
}

/// Deletes `items` (manifests or blobs).
async fn delete_all(
    t: &Target,
    bar: &ProgressBar,
    bounds: Bounds,
    manifest: bool,
    items: Vec<(String, String)>,
    c: Arc<Counters>,
) -> Tally {
    let items = Arc::new(items);
    let reg = t.registry.clone();
    driver::run(bounds, bar, move |i| {
        let (reg, items, c) = (reg.clone(), items.clone(), c.clone());
        async move {
            let (repo, digest) = &items[i as usize];
            let refused = if manifest {
                &c.manifests_refused
            } else {
                &c.blobs_refused
            };
            if refused.load(Ordering::Relaxed) {
                c.refused.fetch_add(1, Ordering::Relaxed);
                return Ok(0);
            }
            let kind = if manifest { "manifests" } else { "blobs" };
            match reg.delete(&format!("/v2/{repo}/{kind}/{digest}")).await? {
                s if s.is_success() || s == StatusCode::NOT_FOUND => {
                    let done = if manifest { &c.manifests } else { &c.blobs };
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
    .await
}

/// Deletes what the ledger lists.
pub async fn run(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let entries = std::mem::take(&mut t.ledger.lock().unwrap_or_else(|p| p.into_inner()).entries);
    let passes = [
        (false, of_kind(&entries, Kind::Blob)),
        (true, of_kind(&entries, Kind::Manifest)),
        (false, of_kind(&entries, Kind::Layer)),
    ];
    let n: u64 = passes.iter().map(|p| p.1.len() as u64).sum();
    bar.set_length(n);
    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + ctx.settings.phase_timeout;
    let mut total = Tally::default();
    for (manifest, items) in passes {
        let bounds = Bounds {
            time: deadline.saturating_duration_since(Instant::now()),
            ..ctx.count_bounds(ctx.settings.concurrency, items.len() as u64)
        };
        let tally = delete_all(t, bar, bounds, manifest, items, counters.clone()).await;
        total.ops += tally.ops;
        total.errors += tally.errors;
        total.elapsed += tally.elapsed;
        total.started += tally.started;
        total.hit_time_limit |= tally.hit_time_limit;
        total.latencies.merge(&tally.latencies);
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    let mut summary = CleanupSummary {
        manifests_deleted: counters.manifests.load(Ordering::Relaxed),
        blobs_deleted: counters.blobs.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        failed: 0,
    };
    summary.failed = n - summary.manifests_deleted - summary.blobs_deleted - summary.refused;
    let bounds = ctx.count_bounds(ctx.settings.concurrency, n);
    let mut r = finish(ctx, phase, Unit::Ops, bounds, total, false);
    super::note(
        &mut r,
        format!(
            "deleted {} manifests and {} blobs; {} refused (405), {} failed or not reached",
            summary.manifests_deleted, summary.blobs_deleted, summary.refused, summary.failed
        ),
    );
    t.cleanup = Some(summary);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_separated_and_deduplicated_in_order() {
        let e = |k, r: &str, d: &str| (k, r.to_string(), d.to_string());
        let entries = vec![
            e(Kind::Layer, "a", "1"),
            e(Kind::Blob, "a", "2"),
            e(Kind::Manifest, "a", "3"),
            e(Kind::Layer, "a", "1"),
            e(Kind::Layer, "b", "1"),
            e(Kind::Blob, "a", "0"),
        ];
        let pairs = |v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(r, d)| format!("{r}:{d}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(of_kind(&entries, Kind::Blob)), ["a:2", "a:0"]);
        assert_eq!(pairs(of_kind(&entries, Kind::Manifest)), ["a:3"]);
        assert_eq!(pairs(of_kind(&entries, Kind::Layer)), ["a:1", "b:1"]);
    }
}
