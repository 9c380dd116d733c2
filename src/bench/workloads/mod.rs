//! The phases themselves. Each runs against one [`Target`], does any untimed
//! preparation first (pre-hashing blobs, pushing the manifest it reads), then times
//! its operations through the [`driver`](super::driver) and turns the tally into a
//! [`PhaseResult`]. Everything a phase pushes goes into the target's ledger.

mod blobs;
mod catalog;
mod cleanup;
mod manifests;
mod referrers;
mod tags;

use std::time::Duration;

use indicatif::ProgressBar;

use super::driver::{Bounds, Tally};
use super::plan::Phase;
use super::report::{Outcome, PhaseResult, Unit};
use super::settings::Settings;
use super::stats::{rate, LatencySummary};
use super::target::Target;

/// What every phase needs besides its target.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The run's settings.
    pub settings: Settings,
    /// Repository prefix unique to the run, e.g. `marina-bench-1a2b3c4d`.
    pub prefix: String,
    /// Base seed of generated blobs (differs per run so content is always new).
    pub seed: u64,
}

impl Ctx {
    /// `<prefix>/<name>`.
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Bounds of a phase that runs a fixed number of operations.
    pub fn count_bounds(&self, workers: usize, max_ops: u64) -> Bounds {
        Bounds {
            workers,
            max_ops,
            time: self.settings.phase_timeout,
            max_errors: 20,
        }
    }

    /// Bounds of a phase that runs for `duration` (a request-rate phase).
    pub fn rate_bounds(&self, workers: usize) -> Bounds {
        Bounds {
            workers,
            max_ops: self.settings.max_requests,
            time: self.settings.duration.min(self.settings.phase_timeout),
            max_errors: 20,
        }
    }
}

/// Runs one phase against one target.
pub async fn execute(ctx: &Ctx, phase: Phase, t: &mut Target, bar: &ProgressBar) -> PhaseResult {
    match phase {
        Phase::Push { chunked, size } => blobs::push(ctx, t, bar, chunked, size, phase).await,
        Phase::Pull { size } => blobs::pull(ctx, t, bar, size, phase).await,
        Phase::PullRange => blobs::pull_range(ctx, t, bar, phase).await,
        Phase::SmallBlobs => blobs::small(ctx, t, bar, phase).await,
        Phase::Manifest { head, by_digest } => {
            manifests::fetch(ctx, t, bar, head, by_digest, phase).await
        }
        Phase::TagPush => manifests::tag_push(ctx, t, bar, phase).await,
        Phase::TagSeed => tags::seed(ctx, t, bar, phase).await,
        Phase::TagList { last } => tags::list(ctx, t, bar, last, phase).await,
        Phase::ReferrersSeed => referrers::seed(ctx, t, bar, phase).await,
        Phase::Referrers { filtered, last } => {
            referrers::list(ctx, t, bar, filtered, last, phase).await
        }
        Phase::CatalogSeed => catalog::seed(ctx, t, bar, phase).await,
        Phase::Catalog { last } => catalog::list(ctx, t, bar, last, phase).await,
        Phase::Cleanup => cleanup::run(ctx, t, bar, phase).await,
    }
}

/// A result with nothing measured yet.
fn blank(ctx: &Ctx, phase: Phase, unit: Unit, concurrency: usize) -> PhaseResult {
    PhaseResult {
        id: phase.id(),
        workload: phase.workload().to_string(),
        title: phase.title(&ctx.settings),
        outcome: Outcome::Ok,
        detail: None,
        unit,
        concurrency,
        ops: 0,
        errors: 0,
        bytes: 0,
        elapsed_s: 0.0,
        rate: 0.0,
        latency: LatencySummary::default(),
        client_cpu_s: 0.0,
        server: None,
    }
}

/// A phase that could not run, with the reason.
fn not_run(ctx: &Ctx, phase: Phase, outcome: Outcome, why: impl Into<String>) -> PhaseResult {
    PhaseResult {
        outcome,
        detail: Some(why.into()),
        ..blank(ctx, phase, Unit::Ops, 0)
    }
}

/// Turns a tally into a result. `timed` is true for phases that run for a set
/// time, where reaching it is the plan rather than a shortfall.
fn finish(
    ctx: &Ctx,
    phase: Phase,
    unit: Unit,
    bounds: Bounds,
    tally: Tally,
    timed: bool,
) -> PhaseResult {
    let secs = tally.elapsed.as_secs_f64();
    let amount = match unit {
        Unit::Bytes => tally.bytes as f64 / (1024.0 * 1024.0),
        Unit::Ops => tally.ops as f64,
    };
    let mut notes = Vec::new();
    if tally.hit_time_limit && !timed {
        notes.push(format!(
            "time limit ({}) reached after {} of {}",
            human(bounds.time),
            tally.ops,
            bounds.max_ops
        ));
    }
    if let Some(e) = &tally.first_error {
        notes.push(format!("{} failed; first: {e}", tally.errors));
    }
    let outcome = if tally.ops == 0 {
        Outcome::Failed
    } else if tally.errors > 0 || (tally.hit_time_limit && !timed) {
        Outcome::Partial
    } else {
        Outcome::Ok
    };
    PhaseResult {
        outcome,
        detail: (!notes.is_empty()).then(|| notes.join("; ")),
        ops: tally.ops,
        errors: tally.errors,
        bytes: tally.bytes,
        elapsed_s: secs,
        rate: rate(amount, secs),
        latency: tally.latencies.summary(),
        ..blank(ctx, phase, unit, bounds.workers)
    }
}

/// Appends a note to a result's detail.
pub(super) fn note(r: &mut PhaseResult, text: impl AsRef<str>) {
    r.detail = Some(match r.detail.take() {
        Some(d) => format!("{d}; {}", text.as_ref()),
        None => text.as_ref().to_string(),
    });
}

fn human(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}
