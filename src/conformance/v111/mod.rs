//! The v1.1.x ginkgo suite (distribution-spec tag v1.1.1, `go test -c`): how to
//! configure it and how to read what it wrote.
//!
//! It is configured only by environment variables: the registry's base URL,
//! two repositories, credentials, one `OCI_TEST_*` switch per workflow,
//! `OCI_AUTOMATIC_CROSSMOUNT` and `OCI_REPORT_DIR`. Its `junit.xml` carries real
//! `<failure>`/`<skipped>` elements, which are the verdict; the exit code is only
//! cross-checked against them. It has no version profile and no data-set
//! options: those are reported as not applicable to this suite.

pub mod specs;

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context};

use super::env;
use super::junit;
use super::kind::SuiteKind;
use super::outcome::{message_lines, Outcome, Row, Status, TestCase};
use super::plan::{Invocation, Plan, REDACTED};
use super::process::Exit;

/// Name of the JUnit file the suite writes.
pub const JUNIT_FILE: &str = "junit.xml";
/// Name of the settings record copied next to the reports.
pub const SETTINGS_FILE: &str = "suite-env.txt";
/// Arguments for every run: no ANSI colours in the captured output.
pub const ARGS: [&str; 1] = ["-ginkgo.no-color"];

/// Which workflows run, derived from the current suite's option names so one
/// set of `--on`/`--off` switches drives both suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workflows {
    /// `OCI_TEST_PULL` (apis.pull).
    pub pull: bool,
    /// `OCI_TEST_PUSH` (apis.push).
    pub push: bool,
    /// `OCI_TEST_CONTENT_DISCOVERY` (apis.tags.list and apis.referrer).
    pub discovery: bool,
    /// `OCI_TEST_CONTENT_MANAGEMENT` (apis.tags/manifests/blobs.delete).
    pub management: bool,
    /// `OCI_AUTOMATIC_CROSSMOUNT=1` (apis.blobs.mountAnonymous).
    pub automatic_crossmount: bool,
}

impl Workflows {
    /// Maps the plan's options onto the four workflows.
    pub fn of(plan: &Plan) -> Workflows {
        let o = &plan.options;
        Workflows {
            pull: o.get("apis.pull"),
            push: o.get("apis.push"),
            discovery: o.get("apis.tags.list") && o.get("apis.referrer"),
            management: o.get("apis.tags.delete")
                && o.get("apis.manifests.delete")
                && o.get("apis.blobs.delete"),
            automatic_crossmount: o.get("apis.blobs.mountAnonymous"),
        }
    }
}

/// The variables that configure the suite, secrets included unless `redact`.
pub fn variables(plan: &Plan, report_dir: &Path, redact: bool) -> Vec<(String, String)> {
    let w = Workflows::of(plan);
    let mut vars = vec![
        (env::OCI_ROOT_URL.to_string(), plan.endpoint.url()),
        (env::OCI_NAMESPACE.to_string(), plan.repo1.clone()),
        (
            env::OCI_CROSSMOUNT_NAMESPACE.to_string(),
            plan.repo2.clone(),
        ),
    ];
    if let Some(c) = &plan.credentials {
        vars.push((env::OCI_USERNAME.to_string(), c.username.clone()));
        let password = if redact {
            REDACTED.to_string()
        } else {
            c.password.clone()
        };
        vars.push((env::OCI_PASSWORD.to_string(), password));
    }
    for (name, on) in [
        (env::OCI_TEST_PULL, w.pull),
        (env::OCI_TEST_PUSH, w.push),
        (env::OCI_TEST_CONTENT_DISCOVERY, w.discovery),
        (env::OCI_TEST_CONTENT_MANAGEMENT, w.management),
    ] {
        if on {
            vars.push((name.to_string(), "1".to_string()));
        }
    }
    if w.automatic_crossmount {
        vars.push((env::OCI_AUTOMATIC_CROSSMOUNT.to_string(), "1".to_string()));
    }
    vars.push((
        env::OCI_REPORT_DIR.to_string(),
        report_dir.to_string_lossy().into_owned(),
    ));
    vars
}

/// Describes the process to run; the suite writes into `workdir/results`.
pub fn prepare(
    plan: &Plan,
    suite: &Path,
    workdir: &Path,
    inherited: &[(OsString, OsString)],
) -> anyhow::Result<Invocation> {
    let results_dir = workdir.join("results");
    fs::create_dir_all(&results_dir)
        .with_context(|| format!("creating {}", results_dir.display()))?;
    let mut vars = env::scrub(inherited);
    vars.extend(
        variables(plan, &results_dir, false)
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    let record: String = variables(plan, &results_dir, true)
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let mut notes = vec![format!(
        "the v1.1.x suite has no version profile and no data-set options; \
         --profile and data.* options do not apply (profile {} ignored)",
        plan.profile
    )];
    let w = Workflows::of(plan);
    let off: Vec<&str> = [
        ("pull", w.pull),
        ("push", w.push),
        ("content discovery", w.discovery),
        ("content management", w.management),
    ]
    .iter()
    .filter(|(_, on)| !on)
    .map(|(n, _)| *n)
    .collect();
    if !off.is_empty() {
        notes.push(format!("workflows switched off: {}", off.join(", ")));
    }
    Ok(Invocation {
        program: suite.to_path_buf(),
        args: ARGS.iter().map(OsString::from).collect(),
        env: vars,
        cwd: workdir.to_path_buf(),
        results_dir,
        settings_file: (SETTINGS_FILE.to_string(), record),
        notes,
    })
}

/// Reads `junit.xml` from `results_dir` and checks it against the exit status.
/// `automatic_crossmount` says whether the automatic cross-mount specs were
/// asked for; when not, their skips are reported as Disabled.
pub fn judge(
    results_dir: &Path,
    exit: &Exit,
    automatic_crossmount: bool,
) -> anyhow::Result<Outcome> {
    let path = results_dir.join(JUNIT_FILE);
    if !path.is_file() {
        bail!("the suite wrote no {JUNIT_FILE} ({exit}); its output says why");
    }
    let xml = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let cases =
        junit::parse(&xml).with_context(|| format!("the suite's {JUNIT_FILE} cannot be used"))?;
    if cases.is_empty() {
        bail!("the suite's {JUNIT_FILE} lists no test");
    }

    let mut tests = Vec::new();
    let mut rows = Vec::new();
    for case in cases {
        let (status, text) = if let Some(e) = &case.error {
            (Status::Error, pick(&e.text, &e.message))
        } else if let Some(f) = &case.failure {
            (Status::Fail, pick(&f.text, &f.message))
        } else if let Some(s) = &case.skipped {
            (specs::skip_status(&s.message), s.message.clone())
        } else {
            match case.status.as_deref() {
                None | Some("passed") => (Status::Pass, String::new()),
                // ginkgo always pairs a non-passing status with an element;
                // a bare one means something went wrong in between.
                Some(other) => (Status::Error, format!("status {other:?} without details")),
            }
        };
        let (section, name) = specs::split_name(&case.name);
        rows.push(Row {
            section,
            name,
            status,
            note: None,
        });
        tests.push(TestCase {
            name: case.name,
            status,
            message: message_lines(&text),
        });
    }
    specs::mark_alternatives(&mut rows);
    if !automatic_crossmount {
        for row in rows.iter_mut().filter(|r| {
            r.status == Status::Skip
                && r.name
                    .contains("Cross-mounting without from, and automatic")
        }) {
            row.status = Status::Disabled;
            row.note = Some("apis.blobs.mountAnonymous is off".to_string());
        }
    }
    for (test, row) in tests.iter_mut().zip(&rows) {
        test.status = row.status;
    }

    let mut problems = Vec::new();
    let failed = rows.iter().any(|r| r.status.is_failure());
    match exit {
        Exit::Code(0) if failed => problems.push(format!(
            "the suite exited 0 although {JUNIT_FILE} records failures"
        )),
        Exit::Code(code) if *code != 0 && !failed => problems.push(format!(
            "the suite exited {code} although {JUNIT_FILE} records no failure (a panic or a failure outside the specs?)"
        )),
        Exit::Code(_) => {}
        other => problems.push(format!("the suite ended abnormally ({other})")),
    }
    Ok(Outcome {
        kind: SuiteKind::V111,
        suite_version: None,
        rows,
        tests,
        problems,
    })
}

/// The element text when it has any, else the message attribute.
fn pick(text: &str, message: &str) -> String {
    if text.trim().is_empty() {
        message.to_string()
    } else {
        text.to_string()
    }
}
