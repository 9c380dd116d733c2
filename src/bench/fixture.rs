//! A small fixed report for rendering tests: two registries, a few phases of each
//! kind (bytes, requests, unsupported, partial), server usage, and ratios.

use super::compare::ratios;
use super::procstat::Usage;
use super::report::{Machine, Outcome, PhaseResult, Report, TargetReport, Unit};
use super::stats::LatencySummary;

fn phase(id: &str, workload: &str, unit: Unit, rate: f64, p50: f64, p99: f64) -> PhaseResult {
    PhaseResult {
        id: id.into(),
        workload: workload.into(),
        title: format!("{id} <title>"),
        outcome: Outcome::Ok,
        detail: None,
        unit,
        concurrency: 1,
        ops: 100,
        errors: 0,
        bytes: if unit == Unit::Bytes { 100 << 20 } else { 0 },
        elapsed_s: 1.0,
        rate,
        latency: LatencySummary {
            count: 100,
            mean_ms: p50,
            p50_ms: p50,
            p99_ms: p99,
            max_ms: p99 * 1.5,
        },
        client_cpu_s: 0.25,
        server: Some(Usage {
            cpu_s: 0.5,
            rss_max_mib: 40.0,
            hwm_mib: 42.0,
        }),
    }
}

/// The sample report.
pub fn sample_report() -> Report {
    let a = vec![
        phase(
            "push-mono-256MiB",
            "blob-push",
            Unit::Bytes,
            900.0,
            280.0,
            290.0,
        ),
        phase(
            "manifest-get-tag",
            "manifests",
            Unit::Ops,
            20000.0,
            2.5,
            6.0,
        ),
        phase(
            "referrers-all-first",
            "referrers",
            Unit::Ops,
            1500.0,
            0.6,
            2.0,
        ),
        PhaseResult {
            detail: Some("time limit (60 s) reached after 90 of 100".into()),
            outcome: Outcome::Partial,
            ops: 90,
            ..phase("tag-seed", "tag-list", Unit::Ops, 5000.0, 3.0, 9.0)
        },
    ];
    let mut b = vec![
        phase(
            "push-mono-256MiB",
            "blob-push",
            Unit::Bytes,
            150.0,
            1700.0,
            1800.0,
        ),
        phase(
            "manifest-get-tag",
            "manifests",
            Unit::Ops,
            800.0,
            60.0,
            250.0,
        ),
        PhaseResult {
            outcome: Outcome::Unsupported,
            detail: Some(
                "no referrers API (GET …/referrers/<digest> answered 404 Not Found)".into(),
            ),
            ops: 0,
            rate: 0.0,
            latency: LatencySummary::default(),
            server: None,
            ..phase("referrers-all-first", "referrers", Unit::Ops, 0.0, 0.0, 0.0)
        },
        phase("tag-seed", "tag-list", Unit::Ops, 350.0, 40.0, 160.0),
    ];
    b[3].server = None;
    let targets = vec![
        TargetReport {
            label: "A".into(),
            url: "http://127.0.0.1:5000/".into(),
            pid: Some(100),
            phases: a,
            cleanup: None,
            peak_rss_mib: Some(48.0),
        },
        TargetReport {
            label: "B".into(),
            url: "http://127.0.0.1:5001/".into(),
            pid: Some(200),
            phases: b,
            cleanup: None,
            peak_rss_mib: Some(310.0),
        },
    ];
    let comparison = ratios(&targets[0], &targets[1]);
    Report {
        tool: "marina bench 0.1.0".into(),
        started: "2026-01-02T03:04:05Z".into(),
        machine: Machine {
            cpus: 2,
            cpu_model: "Example CPU".into(),
            kernel: "6.1.0".into(),
            load: "0.50 0.40 0.30".into(),
            memory: "1.5 GiB free, 5.0 GiB cached of 8.0 GiB".into(),
        },
        settings: serde_json::json!({}),
        prefix: "marina-bench-00000000".into(),
        targets,
        comparison,
    }
}
