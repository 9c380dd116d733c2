//! The harness against Debian's docker-registry (CNCF distribution 2.8) on a
//! loopback port with a temporary root: its real deviations are reported, and the
//! verdict table is pinned. Skipped, with a message, when the binary is absent.

use marina::harness::{self, report, Options, Verdict};

use crate::support::DockerRegistry;

/// (check, requirement) pairs distribution 2.8 is known to break.
const KNOWN_DEVIATIONS: [(&str, &str); 8] = [
    ("referrers.api", "R101"),
    ("push.chunk-out-of-order", "R053"),
    ("push.chunk-repeated", "R053"),
    ("push.chunk-final-out-of-order", "R057"),
    ("manifests.invalid-reference", "R072"),
    ("tags.n", "R095"),
    ("tags.n-zero", "R097"),
    ("tags.order", "R093"),
];

/// The verdict table without the requirement of property failures: distribution
/// lists tags in directory order, which differs between filesystems, so the case
/// a property shrinks to (and the requirement it breaks) may differ by machine.
fn stable_table(table: &str) -> String {
    table
        .lines()
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [id, "fail", ..] if id.starts_with("properties.") => format!("{id:<34} fail"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_registry_deviations_are_reported() {
    let Some(reg) = DockerRegistry::start().await else {
        return;
    };
    let report = harness::check(
        &reg.url,
        Options {
            seed: 7,
            cases: 12,
            ..Options::default()
        },
    )
    .await
    .expect("the harness runs");
    drop(reg);
    let text = report::render_terminal(&report, false);
    for (id, req) in KNOWN_DEVIATIONS {
        let o = report
            .outcomes
            .iter()
            .find(|o| o.id == id)
            .unwrap_or_else(|| panic!("{id} ran"));
        assert!(
            matches!(&o.verdict, Verdict::Fail(f) if f.requirement == req),
            "{id} fails {req}:\n{text}"
        );
    }
    for id in [
        "push.single-post",
        "push.mount-anonymous",
        "manifests.tag-params",
        "manifests.sha512",
        "delete.tag",
        // No _oci/ext/discover (404): no extension to check.
        "extensions.discover",
        "extensions.discover-repository",
        "extensions.marina-repositories",
        "extensions.marina-errors",
    ] {
        let o = report
            .outcomes
            .iter()
            .find(|o| o.id == id)
            .unwrap_or_else(|| panic!("{id} ran"));
        assert_eq!(
            o.verdict.kind(),
            "unsupported",
            "{id} is an allowed alternative:\n{text}"
        );
    }
    assert_eq!(report.exit_code(), 1);
    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("harness_verdicts_docker_registry", stable_table(&report.verdict_table()));
    });
}
