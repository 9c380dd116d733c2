//! `marina bench` against in-process reference servers with tiny sizes and counts:
//! every workload runs and produces sane numbers, cleanup deletes what was pushed
//! (or is refused when deletion is off), and `--compare` pairs the phases. No
//! performance figure is asserted.

use std::time::Duration;

use marina::bench::progress::Progress;
use marina::bench::report::{Outcome, PhaseResult, Report, Unit};
use marina::bench::{html, table, Settings, TargetSpec, Workload};

use crate::support::TestServer;

const KIB: u64 = 1024;

fn tiny() -> Settings {
    Settings {
        workloads: Workload::ALL.to_vec(),
        sizes: vec![KIB, 70 * KIB],
        chunk_size: 16 * KIB,
        push_budget: 210 * KIB,
        range_size: 4 * KIB,
        connections: 4,
        concurrency: 4,
        duration: Duration::from_millis(150),
        max_requests: 300,
        small_blobs: 20,
        small_blob_size: 4 * KIB,
        tag_pushes: 20,
        tags: 250,
        page: 100,
        referrers: 25,
        repos: 130,
        phase_timeout: Duration::from_secs(60),
        cleanup: true,
    }
}

async fn bench(settings: Settings, targets: &[TargetSpec]) -> Report {
    marina::bench::run(settings, targets, Progress::hidden(), |_, _| {})
        .await
        .expect("the benchmark runs")
}

fn phase<'a>(r: &'a Report, target: usize, id: &str) -> &'a PhaseResult {
    r.targets[target]
        .phases
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no phase {id} in {:#?}", r.targets[target].phases))
}

/// The numbers of a measured phase hang together.
fn assert_sane(p: &PhaseResult) {
    let show = format!("{p:#?}");
    assert_eq!(p.outcome, Outcome::Ok, "{show}");
    assert!(p.ops > 0 && p.errors == 0, "{show}");
    assert!(p.elapsed_s > 0.0 && p.rate > 0.0, "{show}");
    let l = p.latency;
    assert!(l.count > 0 && l.p50_ms > 0.0, "{show}");
    assert!(l.p50_ms <= l.p99_ms && l.p99_ms <= l.max_ms, "{show}");
    if p.id != "tag-seed" {
        assert_eq!(l.count, p.ops, "one latency per operation: {show}");
    }
    let u = p.server.expect("server usage with a pid");
    assert!(
        u.cpu_s >= 0.0 && u.rss_max_mib > 0.0 && u.hwm_mib > 0.0,
        "{show}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_against_the_reference_server_and_cleans_up() {
    let server = TestServer::start_with(|c| {
        c.registry.sparse_manifests = false;
        c.registry.referrers_page_size = 10;
    })
    .await;
    let s = tiny();
    let report = bench(
        s.clone(),
        &[TargetSpec {
            url: server.url.clone(),
            pid: Some(std::process::id()),
            credentials: None,
        }],
    )
    .await;

    let ids: Vec<&str> = report.targets[0]
        .phases
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "push-mono-1KiB",
            "push-mono-70KiB",
            "push-chunked-1KiB",
            "push-chunked-70KiB",
            "pull-1KiB",
            "pull-70KiB",
            "pull-range",
            "manifest-get-tag",
            "manifest-head-tag",
            "manifest-get-digest",
            "manifest-head-digest",
            "small-blobs",
            "tag-push",
            "tag-seed",
            "tag-list-first",
            "tag-list-last",
            "referrers-seed",
            "referrers-all-first",
            "referrers-all-last",
            "referrers-filtered-first",
            "referrers-filtered-last",
            "catalog-seed",
            "catalog-first",
            "catalog-last",
            "cleanup",
        ]
    );
    for p in &report.targets[0].phases {
        assert_sane(p);
    }

    // Bytes and counts are exactly what was asked for.
    for (size, repeats) in [(KIB, 50), (70 * KIB, 3)] {
        assert_eq!(s.repeats(size), repeats);
        for kind in ["push-mono", "push-chunked", "pull"] {
            let p = phase(&report, 0, &format!("{kind}-{}KiB", size / KIB));
            assert_eq!(p.unit, Unit::Bytes);
            assert_eq!((p.ops, p.bytes), (repeats, size * repeats), "{p:#?}");
        }
    }
    assert_eq!(phase(&report, 0, "small-blobs").ops, 20);
    assert_eq!(phase(&report, 0, "tag-push").ops, 20);
    let seed = phase(&report, 0, "tag-seed");
    assert_eq!(seed.ops, 250);
    assert!(
        seed.detail.as_deref().unwrap_or("").contains("?tag="),
        "{seed:#?}"
    );
    assert_eq!(phase(&report, 0, "referrers-seed").ops, 25);
    assert_eq!(phase(&report, 0, "catalog-seed").ops, 130);
    let range = phase(&report, 0, "pull-range");
    assert_eq!(range.bytes, range.ops * 4 * KIB);

    // Pages: the server pages referrers by 10, so 25 referrers make 3 pages, and
    // the filtered 3 (one in ten) fit in one.
    let note = |id: &str| phase(&report, 0, id).detail.clone().unwrap_or_default();
    assert!(
        note("referrers-all-first").contains("10 referrers per page, page 1 of 3"),
        "{}",
        note("referrers-all-first")
    );
    assert!(
        note("referrers-all-last").contains("5 referrers per page, page 3 of 3"),
        "{}",
        note("referrers-all-last")
    );
    assert!(
        note("referrers-filtered-last").contains("3 referrers per page, page 1 of 1"),
        "{}",
        note("referrers-filtered-last")
    );
    for id in [
        "tag-list-first",
        "tag-list-last",
        "catalog-first",
        "catalog-last",
    ] {
        assert!(!note(id).contains("no paging"), "{id}: {}", note(id));
    }

    // Cleanup deleted everything it pushed, and the registry shows nothing left.
    let c = report.targets[0].cleanup.clone().expect("cleanup ran");
    assert!(c.manifests_deleted >= 130 + 25 + 4, "{c:?}");
    assert!(c.blobs_deleted >= 2 * (50 + 3) + 20 + 130, "{c:?}");
    assert_eq!((c.refused, c.failed), (0, 0), "{c:?}");
    let catalog = server.get("/v2/_catalog?n=1000").await.json();
    let left: Vec<_> = catalog["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| r.starts_with(&report.prefix))
        .collect();
    assert!(left.is_empty(), "repositories left after cleanup: {left:?}");
    let tags = server
        .get(&format!("/v2/{}/tag-list/tags/list", report.prefix))
        .await;
    let remaining = tags.json()["tags"].as_array().map_or(0, |t| t.len());
    assert_eq!(remaining, 0, "tags left after cleanup");

    // The report survives JSON and renders.
    let json = serde_json::to_string(&report).expect("serialises");
    let back: Report = serde_json::from_str(&json).expect("parses");
    assert_eq!(back.prefix, report.prefix);
    for (x, y) in back.targets[0].phases.iter().zip(&report.targets[0].phases) {
        assert_eq!(
            (&x.id, x.ops, x.bytes, x.outcome),
            (&y.id, y.ops, y.bytes, y.outcome)
        );
        assert!(
            (x.rate - y.rate).abs() <= 1e-9 * y.rate.abs(),
            "{} rate",
            x.id
        );
    }
    assert_eq!(back.targets[0].cleanup, report.targets[0].cleanup);
    let text = table::render(&report);
    for id in &ids {
        assert!(text.contains(id), "{id} missing from\n{text}");
    }
    let page = html::render(&report);
    assert_eq!(
        page.matches("<svg").count(),
        9,
        "a chart per workload and cleanup"
    );
    assert!(
        !page.contains("src=") && !page.contains("href=") && !page.contains("<script"),
        "self-contained: no external assets, no scripts"
    );
    assert!(report.started.ends_with('Z') && report.machine.cpus >= 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_is_refused_when_deletion_is_off() {
    let server = TestServer::start_with(|c| {
        c.registry.delete.manifests = false;
        c.registry.delete.tags = false;
        c.registry.delete.blobs = false;
    })
    .await;
    let settings = Settings {
        workloads: vec![Workload::SmallBlobs, Workload::TagPush],
        ..tiny()
    };
    let report = bench(
        settings,
        &[TargetSpec {
            url: server.url.clone(),
            pid: None,
            credentials: None,
        }],
    )
    .await;
    let c = report.targets[0].cleanup.clone().expect("cleanup ran");
    assert_eq!(
        (c.manifests_deleted, c.blobs_deleted, c.failed),
        (0, 0, 0),
        "{c:?}"
    );
    assert_eq!(
        c.refused,
        20 + 1 + 1,
        "20 small blobs, one manifest, its blob: {c:?}"
    );
    assert!(report.targets[0].phases.iter().all(|p| p.server.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_both_registries_alternately_and_computes_ratios() {
    let a = TestServer::start().await;
    let b = TestServer::start_with(|c| c.registry.referrers = false).await;
    let settings = Settings {
        workloads: vec![
            Workload::Manifests,
            Workload::SmallBlobs,
            Workload::Referrers,
        ],
        referrers: 5,
        ..tiny()
    };
    let spec = |s: &TestServer| TargetSpec {
        url: s.url.clone(),
        pid: None,
        credentials: None,
    };
    let report = bench(settings, &[spec(&a), spec(&b)]).await;
    assert_eq!(report.targets.len(), 2);
    let pa: Vec<&str> = report.targets[0]
        .phases
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    let pb: Vec<&str> = report.targets[1]
        .phases
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(pa, pb, "same phases on both");

    // B has no referrers API: its referrer phases are unsupported and not compared.
    assert_eq!(
        phase(&report, 1, "referrers-seed").outcome,
        Outcome::Unsupported
    );
    assert_eq!(
        phase(&report, 1, "referrers-all-last").outcome,
        Outcome::Unsupported
    );
    assert_eq!(phase(&report, 0, "referrers-all-last").outcome, Outcome::Ok);
    assert!(report
        .comparison
        .iter()
        .all(|r| !r.phase.starts_with("referrers")));

    // Every measured phase has its three ratios, consistent with the two sides.
    for id in [
        "manifest-get-tag",
        "manifest-head-tag",
        "manifest-get-digest",
        "manifest-head-digest",
        "small-blobs",
    ] {
        let (x, y) = (phase(&report, 0, id), phase(&report, 1, id));
        let get = |m: &str| {
            report
                .comparison
                .iter()
                .find(|r| r.phase == id && r.metric == m)
                .unwrap_or_else(|| panic!("no {m} ratio for {id}"))
        };
        assert!((get("rate").times_better - x.rate / y.rate).abs() < 1e-9);
        assert!((get("p99").times_better - y.latency.p99_ms / x.latency.p99_ms).abs() < 1e-9);
        assert_eq!(get("p50").a, x.latency.p50_ms);
    }
    let firsts: Vec<&str> = report
        .comparison
        .iter()
        .filter(|r| r.metric == "rate")
        .map(|r| r.first.as_str())
        .collect();
    // Phases 0-3 (manifests), 4 (small blobs) and 10 (cleanup) were measured on both.
    assert_eq!(
        firsts,
        ["A", "B", "A", "B", "A", "A"],
        "phases alternate which registry goes first"
    );
    let text = table::render(&report);
    assert!(
        text.contains("× rate") && text.contains("unsupported"),
        "{text}"
    );
}

/// `--username/--password`: the benchmark signs in as the registry's 401 asks,
/// with Basic and with tokens from its token endpoint, and runs every request
/// as that user; without credentials it stops with a message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_signs_in_with_basic_and_with_tokens() {
    use crate::auth_support::{rule, start_secure, write_htpasswd};
    use marina::client::Credentials;
    use marina::config::{AuthConfig, AuthScheme};

    for scheme in [AuthScheme::Basic, AuthScheme::Token] {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthConfig {
            htpasswd: Some(write_htpasswd(dir.path(), &[("bencher", "bench-pw")])),
            scheme,
            rules: vec![rule(&["bencher"], &[], false, &["**"], &["*"])],
            ..AuthConfig::default()
        };
        let server = start_secure(auth, None, |_| {}).await;
        let settings = Settings {
            workloads: vec![
                Workload::Manifests,
                Workload::SmallBlobs,
                Workload::BlobPush,
            ],
            ..tiny()
        };
        let spec = |credentials| TargetSpec {
            url: server.url.clone(),
            pid: None,
            credentials,
        };
        let refused = marina::bench::run(
            settings.clone(),
            &[spec(None)],
            Progress::hidden(),
            |_, _| {},
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("give --username and --password"),
            "{scheme:?}: {refused}"
        );
        let report = bench(
            settings,
            &[spec(Some(Credentials {
                username: "bencher".into(),
                password: "bench-pw".into(),
            }))],
        )
        .await;
        for p in &report.targets[0].phases {
            assert_eq!(p.outcome, Outcome::Ok, "{scheme:?}: {p:#?}");
            assert_eq!(p.errors, 0, "{scheme:?}: {p:#?}");
        }
        assert!(
            report.targets[0]
                .phases
                .iter()
                .any(|p| p.id.starts_with("manifest")),
            "{scheme:?}"
        );
    }
}
