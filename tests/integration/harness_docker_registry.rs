//! The harness against Debian's docker-registry (CNCF distribution 2.8) on a
//! loopback port with a temporary root: its real deviations are reported, and the
//! verdict table is pinned. Skipped, with a message, when the binary is absent.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use marina::harness::{self, report, Options, Verdict};

/// A docker-registry process, killed when dropped.
struct DockerRegistry {
    child: Child,
    url: String,
    _root: tempfile::TempDir,
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn start() -> Option<DockerRegistry> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("docker-registry").is_file()))
        .unwrap_or(false);
    if !found {
        crate::support::missing_tool(
            "the docker-registry binary",
            "apt-get install docker-registry",
        );
        return None;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = root.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.path().join("data").display()
        ),
    )
    .expect("write config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    let reg = DockerRegistry {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _root: root,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{}/v2/", reg.url)).send().await {
            if r.status().as_u16() == 200 {
                return Some(reg);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("docker-registry did not answer on {} within 20 s", reg.url);
}

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
    let Some(reg) = start().await else { return };
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
