//! Report rendering: the terminal summary, JUnit (real <failure>/<skipped>
//! elements), JSON and the self-contained HTML page, pinned as snapshots.

use marina::harness::report::{render_html, render_junit, render_terminal, Report};
use marina::harness::{Failure, Outcome, Section, Verdict};

fn outcome(id: &str, section: Section, verdict: Verdict, level: Option<&str>) -> Outcome {
    Outcome {
        id: id.into(),
        section,
        title: format!("what {id} checks"),
        covers: vec!["R053".into()],
        verdict,
        level: level.map(str::to_string),
        millis: 12,
    }
}

fn fail(req: &str) -> Verdict {
    Verdict::Fail(Failure {
        requirement: req.into(),
        expected: "a PATCH out of order: expected 416, got 202".into(),
        transcript: "> PATCH http://127.0.0.1:5000/v2/a/blobs/uploads/x\n> authorization: Bearer <redacted>\n< 202\n< range: 0-9 & <more>".into(),
    })
}

fn sample() -> Report {
    Report {
        target: "http://127.0.0.1:5000".into(),
        version: "0.1.0".into(),
        seed: 7,
        cases: 16,
        millis: 1234,
        outcomes: vec![
            outcome("protocol.ping", Section::Protocol, Verdict::Pass, None),
            outcome(
                "push.chunk-out-of-order",
                Section::Push,
                fail("R053"),
                Some("MUST"),
            ),
            outcome(
                "push.single-post",
                Section::Push,
                Verdict::unsupported("single POST answered 202"),
                None,
            ),
            outcome(
                "manifests.size-limit",
                Section::Manifests,
                fail("R082"),
                Some("SHOULD"),
            ),
            outcome(
                "referrers.empty",
                Section::Referrers,
                Verdict::skipped("the referrers API answered 404"),
                None,
            ),
        ],
        cleanup:
            "cleanup: 3 of 3 created manifests and blobs deleted or already gone, 0 not deleted"
                .into(),
    }
}

macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

#[test]
fn terminal_summary() {
    let r = sample();
    let text = render_terminal(&r, true);
    assert!(
        text.find("R053 MUST").unwrap() < text.find("R082 SHOULD").unwrap(),
        "MUST failures first"
    );
    snap!("harness_report_terminal", text);
}

#[test]
fn junit_has_real_failure_and_skipped_elements() {
    let xml = render_junit(&sample());
    assert_eq!(xml.matches("<failure ").count(), 2);
    assert_eq!(xml.matches("<skipped ").count(), 2);
    assert!(
        xml.contains("&lt;more&gt;") && !xml.contains("<more>"),
        "transcripts are escaped"
    );
    snap!("harness_report_junit", xml);
}

#[test]
fn html_is_self_contained_with_transcripts_in_details() {
    let html = render_html(&sample());
    assert!(
        !html.contains("http-equiv") && !html.contains("<script") && !html.contains("<link "),
        "no external assets"
    );
    assert_eq!(html.matches("<details>").count(), 2);
    snap!("harness_report_html", html);
}

#[test]
fn json_and_exit_code() {
    let r = sample();
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["outcomes"][1]["verdict"], "fail");
    assert_eq!(v["outcomes"][1]["requirement"], "R053");
    assert_eq!(r.exit_code(), 1, "a MUST failed");
    let mut only_should = sample();
    only_should.outcomes.remove(1);
    assert_eq!(
        only_should.exit_code(),
        0,
        "SHOULD failures do not fail the run"
    );
    snap!("harness_report_verdict_table", r.verdict_table());
}

fn marina(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_marina"))
        .args(args)
        .output()
        .expect("marina runs")
}

#[test]
fn cli_lists_the_catalog_with_full_must_coverage() {
    let out = marina(&["check", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| {
            l.starts_with(
                "154 spec requirements, 15 from its extension rules, 30 of the _marina extension;",
            )
        })
        .expect("summary line");
    let (covered, total) = summary
        .split_once("; ")
        .and_then(|(_, rest)| rest.split_once(" registry-observable"))
        .and_then(|(frac, _)| frac.split_once(" of "))
        .expect("n of m");
    assert_eq!(covered, total, "{summary}");
    assert!(text.contains("R053 MUST") && text.contains("push.chunk-out-of-order"));
    for source in [
        "== spec.md ==",
        "== extensions/README.md ==",
        "== extensions/_oci.md ==",
        "== spec/extensions/_marina.md ==",
    ] {
        assert!(text.contains(source), "{source} heads its requirements");
    }
    assert!(text.contains("X004 MUST") && text.contains("extensions.discover"));
    assert!(text.contains("M022 MUST") && text.contains("extensions.marina-live-paging"));
}

#[test]
fn cli_usage_and_connection_errors_exit_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = marina(&["check", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the registry"));
    let out = marina(&["check", "--section", "nope", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown section"));
    let out = marina(&["check"]);
    assert_eq!(out.status.code(), Some(2), "a URL is required");
    let out = marina(&["check", "--username", "u", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("go together"));
}

#[test]
fn cli_help_explains_every_option_with_an_example() {
    let out = marina(&["check", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:"));
    for opt in [
        "--repo-prefix",
        "--username",
        "--password ",
        "--ca-file",
        "--section",
        "--only",
        "--cases",
        "--seed",
        "--junit",
        "--json",
        "--html",
        "--image",
        "--timeout",
        "--referrers",
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(opt))
            .unwrap_or_else(|| panic!("{opt} is documented"));
        assert!(line.contains("e.g."), "{opt} has an example: {line}");
    }
}

/// A report path that cannot be written stops `marina check` and `marina bench`
/// before any request, not after the run.
#[tokio::test]
async fn unwritable_report_paths_are_refused_before_the_run() {
    let server = crate::support::TestServer::start().await;
    for args in [
        vec![
            "check",
            &server.url,
            "--html",
            "/nonexistent/dir/report.html",
        ],
        vec![
            "bench",
            &server.url,
            "--json",
            "/nonexistent/dir/bench.json",
            "--workloads",
            "manifests",
        ],
    ] {
        let (code, stdout, stderr) = crate::support::run_marina(&args).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write /nonexistent/dir/"),
            "{args:?}: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?} ran before refusing: {stdout}");
    }
}

/// Property checks draw a fresh seed per run (printed in the report), and
/// `--seed` replays one.
#[tokio::test]
async fn each_check_run_draws_a_fresh_seed_and_seed_replays_one() {
    let server = crate::support::TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();
    for (i, seed) in [None, None, Some("42")].into_iter().enumerate() {
        let json = dir.path().join(format!("r{i}.json"));
        let mut args: Vec<String> = ["check", &server.url, "--only", "pull.blob-get", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(json.display().to_string());
        if let Some(s) = seed {
            args.extend(["--seed".to_string(), s.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = crate::support::run_marina(&args).await;
        assert_eq!(code, 0, "{stderr}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let seed = report["seed"].as_u64().unwrap();
        assert!(stdout.contains(&format!("seed {seed}")));
        seeds.push(seed);
    }
    assert_ne!(seeds[0], seeds[1], "two runs drew the same seed");
    assert_eq!(seeds[2], 42);
}

/// Every tool takes the registry as `host:port` or `http(s)://host:port`
/// (issue 18 item 10: `check` refused `host:port` that `list` took), and a path
/// it would drop (`http://host/docs`) is refused instead of ignored. (`list`
/// reads a path as the namespace to list, so it honours it.)
#[tokio::test]
async fn every_tool_takes_host_port_and_refuses_a_path_it_would_drop() {
    let server = crate::support::TestServer::start().await;
    let authority = server.url.trim_start_matches("http://").to_string();
    let (code, stdout, stderr) =
        crate::support::run_marina(&["check", &authority, "--only", "pull.blob-get"]).await;
    assert_eq!(code, 0, "check {authority}: {stderr}");
    assert!(
        stdout.contains("1 checks") && stdout.contains("passed"),
        "{stdout}"
    );
    let docs = format!("{}/docs", server.url);
    for args in [
        vec!["check", docs.as_str()],
        vec!["bench", docs.as_str(), "--workloads", "manifests"],
    ] {
        let (code, _, stderr) = crate::support::run_marina(&args).await;
        assert_ne!(code, 0, "{args:?} was accepted");
        assert!(
            stderr.contains("\"/docs\" would be ignored"),
            "{args:?}: {stderr}"
        );
    }
    let (code, _, stderr) =
        crate::support::run_marina(&["conformance", "--suite", "current", "--registry", &docs])
            .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("would be ignored"), "{stderr}");
}
