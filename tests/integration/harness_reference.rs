//! The harness against Marina's own server in-process: every check passes, and
//! a server with deletes and referrers turned off gets the answers the spec allows.

use marina::config::{Config, DeletePolicy, WarningRule};
use marina::harness::{self, report, Options, Section, Verdict};

/// Starts the reference server on an ephemeral loopback port with a temporary
/// directory, adjusted by `f`.
async fn server(f: impl FnOnce(&mut Config)) -> (marina::server::ServerHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::ephemeral(dir.path());
    config.registry.sparse_manifests = false;
    config.registry.referrers_page_size = 100;
    config.registry.warnings.push(WarningRule {
        repositories: "marina-check/*-main".into(),
        message: "this repository is for conformance tests".into(),
    });
    f(&mut config);
    let handle = marina::server::start(config).await.expect("server starts");
    (handle, dir)
}

/// Checks the spec lets a registry answer "not supported" to, whatever it is.
const ALLOWED_UNSUPPORTED: [&str; 2] = ["protocol.namespace", "protocol.retry-after"];

/// Whether a check's verdict is what a conforming registry that is no
/// pull-through cache gets: pass, an allowed "not supported", or the proxy
/// check skipped (it runs only with --ns and --ns-image).
pub(crate) fn passes(o: &harness::Outcome) -> bool {
    match &o.verdict {
        Verdict::Pass => true,
        Verdict::Unsupported { .. } => ALLOWED_UNSUPPORTED.contains(&o.id.as_str()),
        Verdict::Skipped { .. } => o.id == "protocol.proxy",
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_against_the_reference_server() {
    every_check_passes(|_| {}).await;
}

/// The whole harness against the reference server adjusted by `f` (another
/// metadata store, say): every check passes, with the pinned verdict table.
pub(crate) async fn every_check_passes(f: impl FnOnce(&mut Config)) {
    let (handle, _dir) = server(f).await;
    let report = harness::check(
        &handle.url(),
        Options {
            seed: 7,
            cases: 12,
            ..Options::default()
        },
    )
    .await
    .expect("the harness runs");
    handle.stop().await;
    let text = report::render_terminal(&report, true);
    for o in &report.outcomes {
        assert!(
            passes(o),
            "{} is {}, not pass:\n{text}",
            o.id,
            o.verdict.kind()
        );
    }
    assert_eq!(report.exit_code(), 0, "{text}");
    assert!(
        report.outcomes.len() >= 60,
        "every check ran: {}",
        report.outcomes.len()
    );
    assert!(
        report.cleanup.contains(", 0 not deleted"),
        "{}",
        report.cleanup
    );
    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("harness_verdicts_marina", report.verdict_table());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_deletes_and_referrers_get_the_allowed_verdicts() {
    let (handle, _dir) = server(|c| {
        c.registry.delete = DeletePolicy {
            manifests: false,
            tags: false,
            blobs: false,
        };
        c.registry.referrers = false;
    })
    .await;
    let options = Options {
        sections: vec![Section::Delete, Section::Referrers],
        ..Options::default()
    };
    let report = harness::check(&handle.url(), options)
        .await
        .expect("the harness runs");
    handle.stop().await;
    let text = report::render_terminal(&report, true);
    for o in &report.outcomes {
        let expected = match o.id.as_str() {
            "referrers.api" => "fail",
            id if id.starts_with("referrers.") => "skipped",
            _ => "unsupported",
        };
        assert_eq!(o.verdict.kind(), expected, "{}:\n{text}", o.id);
    }
    let api = report
        .outcomes
        .iter()
        .find(|o| o.id == "referrers.api")
        .expect("referrers.api ran");
    assert!(
        matches!(&api.verdict, Verdict::Fail(f) if f.requirement == "R101"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_runs_pull_an_existing_image_and_push_nothing() {
    let (handle, _dir) = server(|_| {}).await;
    // Seed the registry with one image, as a read-only registry would already hold.
    let seed = harness::check(
        &handle.url(),
        Options {
            only: vec!["pull.manifest-by-tag".into()],
            delete: false,
            repo_prefix: "seed".into(),
            ..Options::default()
        },
    )
    .await
    .expect("seeding runs");
    assert_eq!(seed.outcomes[0].verdict.kind(), "pass");
    let client = reqwest::Client::new();
    let catalog: serde_json::Value = client
        .get(format!("{}/v2/_catalog", handle.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let repo = catalog["repositories"][0]
        .as_str()
        .expect("the seeded repository")
        .to_string();
    let options = Options {
        push: false,
        delete: false,
        image: Some(format!("{repo}:fixture")),
        sections: vec![Section::Pull, Section::Push, Section::Manifests],
        ..Options::default()
    };
    let report = harness::check(&handle.url(), options)
        .await
        .expect("the harness runs");
    handle.stop().await;
    let text = report::render_terminal(&report, true);
    for o in &report.outcomes {
        let expected = if o.id.starts_with("pull.") || o.id == "push.upload-unknown" {
            "pass"
        } else {
            "skipped"
        };
        assert_eq!(o.verdict.kind(), expected, "{}:\n{text}", o.id);
    }
}
