//! The conformance runner (`marina conformance`): how the configuration reaches
//! both official suites, parsing of real-shaped reports, the exit-0-without-
//! results pitfall, `--expect`, `--strict`, timeouts, the reference server's
//! lifecycle (the CLI's wiring is tested in `tests/integration/conformance.rs`).
//! Test doubles (shell scripts written at run time)
//! stand in for the suites; the real suites run only when
//! `MARINA_CONFORMANCE_BIN` / `MARINA_CONFORMANCE_V111_BIN` point at them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::kind::{self, SuiteKind};
use super::outcome::Status;
use super::process::Exit;
use super::reference_server::ReferenceServer;
use super::summary::{self, Context};
use super::switches::{Profile, Switch};
use super::target::{Credentials, Endpoint};
use super::{current, expect, v111, verdict, Options, RunReport};
use crate::config::env::{
    CONFORMANCE_BIN as MARINA_CONFORMANCE_BIN, CONFORMANCE_V111_BIN as MARINA_CONFORMANCE_V111_BIN,
};
use tempfile::TempDir;

/// A loopback port nothing listens on: doubles never connect to it.
const NOWHERE: &str = "http://127.0.0.1:9";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance")
}

/// Writes an executable without this process ever holding a writable handle
/// on it (`cp` writes it), so no concurrently forked child can make its exec
/// fail with "text file busy".
fn write_executable(path: &Path, content: &str) {
    let src = path.with_extension("src");
    fs::write(&src, content).unwrap();
    let status = Command::new("cp").arg(&src).arg(path).status().unwrap();
    assert!(status.success(), "cp {} failed", src.display());
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stand-in for one of the suites: answers the kind probe like the real
/// binary, records its arguments, environment, working directory and
/// configuration file, then runs `body`.
struct Double {
    dir: TempDir,
    path: PathBuf,
    record: PathBuf,
}

impl Double {
    fn new(kind: SuiteKind, body: &str) -> Double {
        let dir = tempfile::Builder::new()
            .prefix("marina-double-")
            .tempdir()
            .unwrap();
        let record = dir.path().join("record");
        fs::create_dir(&record).unwrap();
        let probe = match kind {
            SuiteKind::Current => {
                "if [ \"$OCI_VERSION\" = marina-kind-probe ]; then\n  \
                 echo \"failed to load config: unsupported config version $OCI_VERSION\" >&2\n  exit 0\nfi\n"
            }
            SuiteKind::V111 => "if [ \"$1\" = -test.list ]; then echo TestConformance; exit 0; fi\n",
        };
        let script = format!(
            "#!/bin/bash\n{probe}REC='{rec}'\nFIX='{fix}'\n\
             env | sort > \"$REC/env.txt\"\nprintf '%s\\n' \"$@\" > \"$REC/args.txt\"\npwd > \"$REC/cwd.txt\"\n\
             if [ -n \"$OCI_CONFIGURATION\" ]; then cp \"$OCI_CONFIGURATION\" \"$REC/config.yaml\"; fi\n{body}\n",
            rec = record.display(),
            fix = fixtures().display(),
        );
        let path = dir.path().join(match kind {
            SuiteKind::Current => "oci-conformance",
            SuiteKind::V111 => "conformance.test",
        });
        write_executable(&path, &script);
        Double { dir, path, record }
    }

    fn current(body: &str) -> Double {
        Double::new(SuiteKind::Current, body)
    }

    fn v111(body: &str) -> Double {
        Double::new(SuiteKind::V111, body)
    }

    fn recorded(&self, file: &str) -> String {
        fs::read_to_string(self.record.join(file))
            .unwrap_or_else(|e| panic!("the double recorded no {file}: {e}"))
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.recorded("env.txt")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

/// Current-suite bodies.
const CURRENT_DOCKER_REGISTRY: &str = "cp \"$FIX/current-docker-registry/results.yaml\" \
     \"$FIX/current-docker-registry/junit.xml\" \"$OCI_RESULTS_DIR/\"\n\
     echo '<html></html>' > \"$OCI_RESULTS_DIR/report.html\"\n\
     echo 'level=WARN msg=\"failed test\" name=\"OCI Conformance Test/empty/referrers\"' >&2\nexit 1";
const CURRENT_CLEAN: &str =
    "cp \"$FIX/current-clean/results.yaml\" \"$FIX/current-clean/junit.xml\" \
     \"$OCI_RESULTS_DIR/\"\necho '<html></html>' > \"$OCI_RESULTS_DIR/report.html\"\nexit 0";
/// v1.1.x bodies.
const V111_DOCKER_REGISTRY: &str =
    "cp \"$FIX/v111-docker-registry/junit.xml\" \"$OCI_REPORT_DIR/junit.xml\"\nexit 1";
const V111_CLEAN: &str = "cp \"$FIX/v111-clean/junit.xml\" \"$OCI_REPORT_DIR/junit.xml\"\nexit 0";

/// Options for a double: no progress, a controlled inherited environment.
fn options(double: &Double) -> Options {
    let mut o = Options::new(&double.path);
    o.registry = Some(Endpoint::parse(NOWHERE).unwrap());
    o.out = Some(double.out_dir());
    o.progress = false;
    o.inherited_env = vec![
        (
            OsString::from("PATH"),
            std::env::var_os("PATH").unwrap_or_default(),
        ),
        (OsString::from("RUNNER_TEST_MARKER"), OsString::from("kept")),
    ];
    o
}

async fn run(o: Options) -> RunReport {
    super::run(o).await
}

fn assert_exit(report: &RunReport, code: u8) {
    assert_eq!(
        report.exit_code(),
        code,
        "unexpected exit code; summary:\n{}",
        report.summary
    );
}

#[tokio::test]
async fn the_kind_probe_tells_the_suites_apart() {
    let current = Double::current("exit 3");
    let v111 = Double::v111("exit 3");
    let neither = Double::current("exit 3");
    write_executable(&neither.path, "#!/bin/sh\necho hello\n");
    let env: Vec<(OsString, OsString)> = vec![("OCI_VERSION".into(), "1.0".into())];
    assert_eq!(
        kind::detect(&current.path, &env).await.unwrap(),
        SuiteKind::Current
    );
    assert_eq!(
        kind::detect(&v111.path, &env).await.unwrap(),
        SuiteKind::V111
    );
    let err = kind::detect(&neither.path, &env)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--suite-kind") && err.contains("hello"),
        "{err}"
    );
    // The probe stops both doubles before their recording part.
    assert!(!current.record.join("env.txt").exists());
    assert!(!v111.record.join("env.txt").exists());
}

#[tokio::test]
async fn the_current_suite_gets_its_whole_configuration_from_the_runner() {
    let double = Double::current(CURRENT_CLEAN);
    let mut o = options(&double);
    o.registry = Some(Endpoint::parse("http://127.0.0.1:5999").unwrap());
    o.profile = Profile::Stable;
    o.switches = vec![Switch::parse("apis.referrer", false).unwrap()];
    o.credentials = Some(Credentials {
        username: "alice".into(),
        password: "hunter2".into(),
    });
    o.repo1 = "team/one".into();
    o.inherited_env.extend([
        (OsString::from("OCI_VERSION"), OsString::from("1.0")),
        (OsString::from("OCI_API_PUSH"), OsString::from("false")),
        (
            OsString::from("OCI_FILTER_TEST"),
            OsString::from("OCI Conformance Test/ping"),
        ),
    ]);
    let report = run(o).await;
    assert_exit(&report, 0);

    let env = double.env();
    for removed in ["OCI_VERSION", "OCI_API_PUSH", "OCI_FILTER_TEST"] {
        assert!(
            !env.contains_key(removed),
            "{removed} leaked into the suite: {env:?}"
        );
    }
    assert_eq!(
        env.get("RUNNER_TEST_MARKER").map(String::as_str),
        Some("kept")
    );
    assert_eq!(env.get("OCI_TLS").map(String::as_str), Some("disabled"));
    let config_path = &env["OCI_CONFIGURATION"];
    let results_dir = &env["OCI_RESULTS_DIR"];
    assert!(Path::new(results_dir).starts_with(Path::new(config_path).parent().unwrap()));
    assert_eq!(
        double.recorded("cwd.txt").trim(),
        Path::new(config_path).parent().unwrap().to_str().unwrap()
    );

    let config: serde_norway::Value =
        serde_norway::from_str(&double.recorded("config.yaml")).unwrap();
    assert_eq!(config["registry"].as_str(), Some("127.0.0.1:5999"));
    assert_eq!(config["tls"].as_str(), Some("disabled"));
    assert_eq!(config["version"].as_str(), Some("1.1"));
    assert_eq!(config["repo1"].as_str(), Some("team/one"));
    assert_eq!(config["repo2"].as_str(), Some("conformance/repo2"));
    assert_eq!(config["username"].as_str(), Some("alice"));
    assert_eq!(config["password"].as_str(), Some("hunter2"));
    assert_eq!(config["resultsDir"].as_str(), Some(results_dir.as_str()));
    assert_eq!(config["apis"]["referrer"].as_bool(), Some(false));
    assert_eq!(config["apis"]["push"].as_bool(), Some(true));
    assert_eq!(
        config["apis"]["blobs"]["uploadCancel"].as_bool(),
        Some(false)
    );
    assert_eq!(
        config["data"]["sparse"].as_bool(),
        Some(false),
        "unknown registries get no sparse data"
    );
    assert_eq!(config["data"]["sha512"].as_bool(), Some(true));

    // The copy next to the reports hides the password; the summary says what was ignored.
    let copied = fs::read_to_string(double.out_dir().join("oci-conformance.yaml")).unwrap();
    assert!(
        !copied.contains("hunter2") && copied.contains("alice"),
        "{copied}"
    );
    assert!(
        report
            .summary
            .contains("inherited OCI_API_PUSH, OCI_FILTER_TEST, OCI_VERSION"),
        "{}",
        report.summary
    );
    assert!(
        report
            .summary
            .contains("options off: apis.blobs.digestHeader"),
        "{}",
        report.summary
    );
}

#[tokio::test]
async fn the_v111_suite_gets_its_environment_from_the_runner() {
    let double = Double::v111(V111_CLEAN);
    let mut o = options(&double);
    o.repo1 = "team/one".into();
    o.repo2 = "team/two".into();
    o.credentials = Some(Credentials {
        username: "bob".into(),
        password: "pw".into(),
    });
    // Automatic cross-mounts are optional: required of another registry only on request.
    o.switches = vec![Switch::parse("apis.blobs.mountAnonymous", true).unwrap()];
    o.inherited_env.extend([
        (OsString::from("OCI_DEBUG"), OsString::from("1")),
        (OsString::from("OCI_TAG_NAME"), OsString::from("preloaded")),
    ]);
    let report = run(o).await;
    assert_exit(&report, 0);

    let env = double.env();
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("OCI_ROOT_URL"), Some(NOWHERE));
    assert_eq!(get("OCI_NAMESPACE"), Some("team/one"));
    assert_eq!(get("OCI_CROSSMOUNT_NAMESPACE"), Some("team/two"));
    assert_eq!(get("OCI_USERNAME"), Some("bob"));
    assert_eq!(get("OCI_PASSWORD"), Some("pw"));
    for workflow in ["PULL", "PUSH", "CONTENT_DISCOVERY", "CONTENT_MANAGEMENT"] {
        assert_eq!(
            get(&format!("OCI_TEST_{workflow}")),
            Some("1"),
            "{workflow}"
        );
    }
    assert_eq!(get("OCI_AUTOMATIC_CROSSMOUNT"), Some("1"));
    assert!(get("OCI_REPORT_DIR").is_some_and(|d| d.ends_with("/results")));
    assert_eq!(get("OCI_DEBUG"), None);
    assert_eq!(get("OCI_TAG_NAME"), None);
    assert_eq!(double.recorded("args.txt").trim(), "-ginkgo.no-color");

    let record = fs::read_to_string(double.out_dir().join("suite-env.txt")).unwrap();
    assert!(
        record.contains("OCI_PASSWORD=*****") && !record.contains("=pw\n"),
        "{record}"
    );
}

#[tokio::test]
async fn switching_options_off_turns_off_v111_workflows() {
    let double = Double::v111(V111_CLEAN);
    let mut o = options(&double);
    o.switches = vec![
        Switch::parse("apis.referrer", false).unwrap(),
        Switch::parse("OCI_API_BLOBS_MOUNT_ANONYMOUS", false).unwrap(),
    ];
    let report = run(o).await;
    let env = double.env();
    assert!(!env.contains_key("OCI_TEST_CONTENT_DISCOVERY"), "{env:?}");
    assert!(!env.contains_key("OCI_AUTOMATIC_CROSSMOUNT"), "{env:?}");
    assert_eq!(env.get("OCI_TEST_PULL").map(String::as_str), Some("1"));
    assert!(
        report
            .summary
            .contains("workflows switched off: content discovery"),
        "{}",
        report.summary
    );
}

fn snapshot_context(kind: SuiteKind, files: &[&str]) -> Context {
    Context {
        suite: PathBuf::from("/opt/suites/suite-binary"),
        kind: Some(kind),
        target: "http://127.0.0.1:5001".into(),
        repos: ("conformance/repo1".into(), "conformance/repo2".into()),
        run: Some((Exit::Code(1), Duration::from_millis(9351))),
        reports: Some((
            PathBuf::from("./conformance-results/20261123T082552Z"),
            files.iter().map(|s| s.to_string()).collect(),
        )),
        ..Context::default()
    }
}

#[test]
fn current_suite_reports_from_docker_registry_are_summarised() {
    let outcome =
        current::judge(&fixtures().join("current-docker-registry"), &Exit::Code(1)).unwrap();
    assert_eq!(outcome.rows.len(), 28 + 24);
    assert_eq!(outcome.tests.len(), 14);
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    let referrers = outcome.rows.iter().find(|r| r.name == "Referrers").unwrap();
    assert_eq!(referrers.status, Status::Fail);
    let v = verdict::decide(&outcome, &[], false);
    assert_eq!(v.exit_code(), 1);
    let mut ctx = snapshot_context(
        SuiteKind::Current,
        &["junit.xml", "report.html", "results.yaml"],
    );
    ctx.configuration = vec!["profile dev (version dev); options off: data.sparse".into()];
    let text = summary::render(&ctx, Some(&outcome), &v);
    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("current_docker_registry", text);
    });
}

#[test]
fn v111_reports_from_docker_registry_are_summarised() {
    let outcome = v111::judge(
        &fixtures().join("v111-docker-registry"),
        &Exit::Code(1),
        v111::AutoMount::Untested,
    )
    .unwrap();
    assert_eq!(outcome.rows.len(), 80);
    assert_eq!(
        outcome
            .rows
            .iter()
            .filter(|r| r.status == Status::Fail)
            .count(),
        12
    );
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    let v = verdict::decide(&outcome, &[], false);
    assert_eq!(v.exit_code(), 1);
    let text = summary::render(
        &snapshot_context(SuiteKind::V111, &["junit.xml", "report.html"]),
        Some(&outcome),
        &v,
    );
    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("v111_docker_registry", text);
    });
}

#[tokio::test]
async fn a_failing_current_run_prints_its_failures_and_exits_1() {
    let double = Double::current(CURRENT_DOCKER_REGISTRY);
    let report = run(options(&double)).await;
    assert_exit(&report, 1);
    let s = &report.summary;
    assert!(s.contains("  FAIL      Blob chunked"), "{s}");
    assert!(s.contains("  Disabled  Sparse Manifests"), "{s}");
    assert!(
        s.contains(
            "blob out of order chunk: unexpected status code, expected one of [416], received 202"
        ),
        "{s}"
    );
    assert!(s.contains("Result: FAIL (exit 1)"), "{s}");
    let out = double.out_dir();
    for f in [
        "results.yaml",
        "junit.xml",
        "report.html",
        "stdout.txt",
        "stderr.txt",
        "oci-conformance.yaml",
        "summary.txt",
    ] {
        assert!(out.join(f).is_file(), "{f} missing from {}", out.display());
    }
    assert!(fs::read_to_string(out.join("stderr.txt"))
        .unwrap()
        .contains("failed test"));
}

#[tokio::test]
async fn a_failing_v111_run_prints_its_failures_and_exits_1() {
    let double = Double::v111(V111_DOCKER_REGISTRY);
    let report = run(options(&double)).await;
    assert_exit(&report, 1);
    let s = &report.summary;
    assert!(
        s.contains("  FAIL      Blob Upload Chunked Retry previous blob chunk should return 416"),
        "{s}"
    );
    assert!(s.contains("<string>: DIGEST_INVALID"), "{s}");
    // Without --on apis.blobs.mountAnonymous another registry is not asked
    // for the optional automatic cross-mount.
    assert!(!double.env().contains_key("OCI_AUTOMATIC_CROSSMOUNT"));
    assert!(
        s.contains("n/a       Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery enabled should return a 201  (optional behaviour"),
        "{s}"
    );
    assert!(s.contains("Result: FAIL (exit 1): 1 Pull, 3 Push, 7 Content Discovery, 1 Content Management failed"), "{s}");
    assert!(double.out_dir().join("junit.xml").is_file());
}

#[tokio::test]
async fn exit_0_without_results_is_never_a_pass() {
    // The current suite's answer to a configuration it rejects: a message and exit 0.
    let double =
        Double::current("echo 'failed to load config: unsupported config version 9.9' >&2\nexit 0");
    let report = run(options(&double)).await;
    assert_exit(&report, 2);
    assert!(
        report.summary.contains("wrote no results.yaml"),
        "{}",
        report.summary
    );
    assert!(
        report.summary.contains("unsupported config version 9.9"),
        "{}",
        report.summary
    );
    assert!(report.outcome.is_none());
}

#[tokio::test]
async fn truncated_or_inconsistent_reports_are_not_judged() {
    let cases = [
        // results.yaml cut short while encoding (an unknown status stops the encoder).
        "printf 'apis:\\n  Ping: Pass\\n  Blob push: ' > \"$OCI_RESULTS_DIR/results.yaml\"\nexit 0",
        // results.yaml written, junit.xml never written, exit 0.
        "cp \"$FIX/current-clean/results.yaml\" \"$OCI_RESULTS_DIR/\"\nexit 0",
        // Reports say pass, exit code says failure.
        "cp \"$FIX/current-clean/results.yaml\" \"$FIX/current-clean/junit.xml\" \"$OCI_RESULTS_DIR/\"\nexit 1",
        // Reports with failures, exit 0 (the suite exits 0 when a later report fails to write).
        "cp \"$FIX/current-docker-registry/results.yaml\" \"$FIX/current-docker-registry/junit.xml\" \"$OCI_RESULTS_DIR/\"\nexit 0",
        // Killed by a signal.
        "cp \"$FIX/current-clean/results.yaml\" \"$FIX/current-clean/junit.xml\" \"$OCI_RESULTS_DIR/\"\nkill -9 $$",
    ];
    for body in cases {
        let double = Double::current(body);
        let report = run(options(&double)).await;
        assert_eq!(
            report.exit_code(),
            2,
            "body {body:?} gave:\n{}",
            report.summary
        );
        assert!(report.summary.contains("NOT JUDGED"), "{}", report.summary);
    }
}

#[tokio::test]
async fn v111_without_junit_or_with_a_contradicting_exit_is_not_judged() {
    for body in [
        "echo panic: Address is required >&2\nexit 2",
        "cp \"$FIX/v111-clean/junit.xml\" \"$OCI_REPORT_DIR/\"\nexit 1",
    ] {
        let double = Double::v111(body);
        let report = run(options(&double)).await;
        assert_eq!(
            report.exit_code(),
            2,
            "body {body:?} gave:\n{}",
            report.summary
        );
    }
}

#[tokio::test]
async fn expect_files_tolerate_known_failures_and_report_fixed_ones() {
    let double = Double::current(CURRENT_DOCKER_REGISTRY);
    // Start from the failures of a first run.
    let first = run(options(&double)).await;
    assert_exit(&first, 1);
    let failing: Vec<&super::outcome::Row> = first
        .outcome
        .as_ref()
        .unwrap()
        .rows
        .iter()
        .filter(|r| r.status.is_failure())
        .collect();
    let file = double.dir.path().join("known-failures.txt");

    fs::write(
        &file,
        expect::render(&failing) + "API: Ping\nAPI: Blob chunkd\n",
    )
    .unwrap();
    let mut o = options(&double);
    o.expect = Some(file.clone());
    let report = run(o.clone()).await;
    assert_exit(&report, 0);
    let s = &report.summary;
    assert!(
        s.contains(&format!("{} expected failures", failing.len())),
        "{s}"
    );
    assert!(s.contains("Expected to fail but did not"), "{s}");
    assert!(s.contains("API: Ping (now Pass"), "{s}");
    assert!(s.contains("line ") && s.contains("API: Blob chunkd"), "{s}");
    assert!(s.contains("FAIL      Blob chunked  [expected]"), "{s}");

    // One failure no longer listed is new, and fails the run.
    let without_referrers: Vec<_> = failing
        .iter()
        .copied()
        .filter(|r| r.name != "Referrers")
        .collect();
    fs::write(&file, expect::render(&without_referrers)).unwrap();
    let report = run(o.clone()).await;
    assert_exit(&report, 1);
    assert!(
        report.summary.contains("New failures, not in"),
        "{}",
        report.summary
    );
    assert!(
        report.summary.contains("  API: Referrers"),
        "{}",
        report.summary
    );

    // A malformed file is reported before anything runs.
    fs::write(&file, "Blob chunked\n").unwrap();
    let report = run(o).await;
    assert_exit(&report, 2);
    assert!(report.summary.contains("line 1"), "{}", report.summary);
}

#[tokio::test]
async fn strict_fails_on_skips_but_not_on_v111_alternatives() {
    let skip = "sed 's/Blob anonymous mount: Pass/Blob anonymous mount: Skip/' \"$FIX/current-clean/results.yaml\" \
                > \"$OCI_RESULTS_DIR/results.yaml\"\ncp \"$FIX/current-clean/junit.xml\" \"$OCI_RESULTS_DIR/\"\nexit 0";
    let double = Double::current(skip);
    let mut o = options(&double);
    assert_exit(&run(o.clone()).await, 0);
    o.strict = true;
    let report = run(o).await;
    assert_exit(&report, 1);
    assert!(
        report
            .summary
            .contains("Result: FAIL (exit 1): 1 API failed"),
        "{}",
        report.summary
    );

    let double = Double::v111(V111_CLEAN);
    let mut o = options(&double);
    o.strict = true;
    let report = run(o).await;
    assert_exit(&report, 0);
    let na = report
        .outcome
        .as_ref()
        .unwrap()
        .rows
        .iter()
        .filter(|r| r.status == Status::NotApplicable)
        .count();
    assert_eq!(na, 4, "{}", report.summary);

    // Without OCI_AUTOMATIC_CROSSMOUNT the suite skips both automatic-mount
    // specs; switched off by the user, they are Disabled, a gap under --strict.
    let double = Double::v111(
        "if [ -z \"$OCI_AUTOMATIC_CROSSMOUNT\" ]; then\n  \
         sed '/enabled should return a 201/{s/status=\"passed\"/status=\"skipped\"/;n;\
         s#</testcase>#<skipped message=\"skipped - you have skipped this test.\"></skipped></testcase>#}' \
         \"$FIX/v111-clean/junit.xml\" > \"$OCI_REPORT_DIR/junit.xml\"\nelse\n  \
         cp \"$FIX/v111-clean/junit.xml\" \"$OCI_REPORT_DIR/\"\nfi\nexit 0",
    );
    let mut o = options(&double);
    o.strict = true;
    o.switches = vec![Switch::parse("apis.blobs.mountAnonymous", false).unwrap()];
    let report = run(o).await;
    assert_exit(&report, 1);
    assert!(
        report
            .summary
            .contains("Disabled  Cross-Repository Blob Mount Cross-mounting without from"),
        "{}",
        report.summary
    );
}

#[tokio::test]
async fn a_suite_past_its_timeout_is_killed_with_its_children() {
    let double = Double::current("sleep 300 &\necho $! > \"$REC/child.pid\"\nwait");
    let mut o = options(&double);
    o.timeout = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let report = run(o).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the runner waited {:?}",
        started.elapsed()
    );
    assert_exit(&report, 2);
    assert!(
        report.summary.contains("timed out after 1s"),
        "{}",
        report.summary
    );
    let pid = double.recorded("child.pid").trim().to_string();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let mut alive = proc_dir.exists();
    for _ in 0..50 {
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let state = fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        alive = proc_dir.exists() && !state.contains(") Z ");
    }
    assert!(
        !alive,
        "the suite's child process {pid} survived the timeout"
    );
}

#[tokio::test]
async fn the_reference_server_lives_on_loopback_with_a_temporary_directory() {
    let server = ReferenceServer::start().await.unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0);
    assert_eq!(server.url(), format!("http://{addr}"));
    let data_dir = server.data_dir().to_path_buf();
    assert!(data_dir.is_dir());
    let status = reqwest::get(format!("{}/v2/", server.url()))
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    let removed = server.stop().await.unwrap();
    assert_eq!(removed, data_dir);
    assert!(!data_dir.exists(), "{} was not removed", data_dir.display());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "{addr} still accepts connections"
    );
}

#[tokio::test]
async fn without_a_registry_the_runner_starts_and_stops_the_reference_server() {
    // The double checks the server is up while it runs, through bash's /dev/tcp.
    let ping = "reg=$(sed -n 's/^registry: *//p' \"$OCI_CONFIGURATION\" | tr -d \"'\\\"\")\n\
                exec 3<>\"/dev/tcp/${reg%:*}/${reg##*:}\"\n\
                printf 'GET /v2/ HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"$reg\" >&3\n\
                head -n1 <&3 > \"$REC/ping.txt\"\nexec 3<&-\n";
    let double = Double::current(&format!("{ping}{CURRENT_CLEAN}"));
    let mut o = options(&double);
    o.registry = None;
    let report = run(o).await;
    assert_exit(&report, 0);

    let reference = report
        .reference
        .clone()
        .expect("a reference server was started");
    assert!(
        reference.url.starts_with("http://127.0.0.1:"),
        "{}",
        reference.url
    );
    assert_eq!(reference.stop_error, None);
    assert!(
        !reference.data_dir.exists(),
        "{} survived the run",
        reference.data_dir.display()
    );
    let addr = reference.url.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "{addr} still accepts connections"
    );
    assert!(
        double.recorded("ping.txt").contains(" 200"),
        "ping: {}",
        double.recorded("ping.txt")
    );

    let config: serde_norway::Value =
        serde_norway::from_str(&double.recorded("config.yaml")).unwrap();
    assert_eq!(config["registry"].as_str(), Some(addr));
    assert_eq!(config["version"].as_str(), Some("dev"));
    assert_eq!(config["data"]["sparse"].as_bool(), Some(true));
    assert!(
        report.summary.contains("options off: none"),
        "{}",
        report.summary
    );
    assert!(
        report.summary.contains("(in-process reference server)"),
        "{}",
        report.summary
    );
}

#[tokio::test]
async fn the_reference_server_is_stopped_even_when_the_suite_fails_to_start() {
    let double = Double::current(CURRENT_CLEAN);
    let mut o = options(&double);
    o.registry = None;
    o.kind = Some(SuiteKind::Current);
    fs::remove_file(&double.path).unwrap();
    // The missing binary is caught before the server starts...
    let report = run(o.clone()).await;
    assert_exit(&report, 2);
    assert!(report.reference.is_none());
    // ...and a binary that cannot be executed fails after it started.
    fs::write(&double.path, "not executable").unwrap();
    let report = run(o).await;
    assert_exit(&report, 2);
    let reference = report.reference.expect("the server was started");
    assert!(!reference.data_dir.exists());
}

/// Runs a real suite binary against the in-process reference server and
/// requires a clean pass, or says how to enable the test.
async fn real_suite(variable: &str, kind: SuiteKind) {
    let Some(bin) = std::env::var_os(variable) else {
        // Written to the stderr handle, not with eprintln!, so the test
        // harness does not capture it: the skip must be visible.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: set {variable}=/path/to/the/{kind} suite binary to run the real suite"
        );
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut o = Options::new(PathBuf::from(bin));
    o.out = Some(out.path().to_path_buf());
    o.progress = false;
    o.strict = true;
    let report = super::run(o).await;
    assert_eq!(report.kind, Some(kind), "{}", report.summary);
    assert_exit(&report, 0);
    let reference = report.reference.expect("the reference server ran");
    assert!(!reference.data_dir.exists());
}

// Several threads: the in-process server must answer promptly while the suite
// process runs, even on a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_current_suite_passes_against_the_reference_server() {
    real_suite(MARINA_CONFORMANCE_BIN, SuiteKind::Current).await;
}

// Several threads: the in-process server must answer promptly while the suite
// process runs, even on a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_v111_suite_passes_against_the_reference_server() {
    real_suite(MARINA_CONFORMANCE_V111_BIN, SuiteKind::V111).await;
}
