//! Drives a run: checks the registries answer, then goes through the plan phase by
//! phase, each against every registry in alternating order, watching the server
//! processes and the client's own CPU, and assembles the report.

use std::time::Duration;

use anyhow::{ensure, Result};

use super::client::BenchClient;
use super::compare::{order, ratios};
use super::machine::settle;
use super::plan::plan;
use super::procstat::{own_cpu_seconds, Monitor};
use super::progress::Progress;
use super::report::{PhaseResult, Report, TargetReport};
use super::settings::Settings;
use super::target::Target;
use super::workloads::{execute, note, Ctx};

/// A registry to measure.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// Base URL, e.g. `http://127.0.0.1:5000`.
    pub url: String,
    /// Its server process, for CPU and memory figures.
    pub pid: Option<u32>,
    /// Credentials, used when the registry asks for them.
    pub credentials: Option<crate::client::Credentials>,
}

/// Writes out what the machine left unwritten ([`settle`]), noting it on the
/// last phase of target `last` when it is much.
async fn settle_after(results: &mut [Vec<PhaseResult>], last: Option<usize>) {
    let settled = settle().await;
    let phase = last.and_then(|ti| results[ti].last_mut());
    if let (Some(r), Some(text)) = (phase, settled.note()) {
        note(r, text);
    }
}

/// Runs every phase of `settings` against one registry, or two compared.
/// `on_phase` sees each result as it comes (label, result).
pub async fn run(
    settings: Settings,
    targets: &[TargetSpec],
    progress: Progress,
    mut on_phase: impl FnMut(&str, &PhaseResult),
) -> Result<Report> {
    ensure!(
        (1..=2).contains(&targets.len()),
        "one registry, or two to compare"
    );
    let started = super::machine::now_rfc3339();
    let pool = settings.connections.max(settings.concurrency);
    // A request may take as long as a whole phase, plus slack for the last one.
    let timeout = settings.phase_timeout + Duration::from_secs(30);
    let mut ts = Vec::new();
    for (spec, label) in targets.iter().zip(["A", "B"]) {
        let mut registry = BenchClient::new(&spec.url, pool, timeout)?;
        registry.ping(spec.credentials.as_ref()).await?;
        ts.push(Target::new(label, registry, spec.pid));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let ctx = Ctx {
        settings: settings.clone(),
        prefix: format!("marina-bench-{}", &id[..8]),
        seed: rand::random(),
    };
    let mut results: Vec<Vec<PhaseResult>> = vec![Vec::new(); ts.len()];
    // The target whose phase ran last: what it left unwritten is noted on it.
    let mut last: Option<usize> = None;
    for (i, phase) in plan(&settings).into_iter().enumerate() {
        for ti in order(i, ts.len()) {
            settle_after(&mut results, last).await;
            last = Some(ti);
            let t = &mut ts[ti];
            let bar = progress.bar(&format!("[{}] {}", t.label, phase.id()));
            let monitor = t.pid.and_then(Monitor::start);
            let cpu = own_cpu_seconds();
            let mut r = execute(&ctx, phase, t, &bar).await;
            bar.finish_and_clear();
            r.client_cpu_s = ((own_cpu_seconds() - cpu).max(0.0) * 1000.0).round() / 1000.0;
            if let Some(m) = monitor {
                r.server = m.finish().await;
            }
            if let Some(u) = r.server {
                let peak = u.rss_max_mib.max(u.hwm_mib);
                t.peak_rss_mib = Some(t.peak_rss_mib.map_or(peak, |p| p.max(peak)));
            }
            on_phase(&t.label, &r);
            results[ti].push(r);
        }
    }
    settle_after(&mut results, last).await;
    let reports: Vec<TargetReport> = ts
        .into_iter()
        .zip(results)
        .map(|(t, phases)| TargetReport {
            label: t.label,
            url: t.registry.base().to_string(),
            pid: t.pid,
            phases,
            cleanup: t.cleanup,
            peak_rss_mib: t.peak_rss_mib,
        })
        .collect();
    let comparison = match reports.as_slice() {
        [a, b] => ratios(a, b),
        _ => Vec::new(),
    };
    Ok(Report {
        tool: format!("marina bench {}", env!("CARGO_PKG_VERSION")),
        started,
        machine: super::machine::describe(),
        settings: serde_json::to_value(&settings)?,
        prefix: ctx.prefix,
        targets: reports,
        comparison,
    })
}
