//! The v1.1.x ginkgo suite (distribution-spec tag v1.1.1, `go test -c`): how to
//! configure it and how to read what it wrote.
//!
//! It is configured only by environment variables: the registry's base URL,
//! two repositories, credentials, one `OCI_TEST_*` switch per workflow,
//! `OCI_AUTOMATIC_CROSSMOUNT` and `OCI_REPORT_DIR`. Its `junit.xml` carries real
//! `<failure>`/`<skipped>` elements, which are the verdict; the exit code is only
//! cross-checked against them. It has no version profile and no data-set
//! options: those are reported as not applicable to this suite.

pub(crate) mod specs;

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
use super::switches::Switch;

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
    /// Whether the automatic cross-mount specs run (`OCI_AUTOMATIC_CROSSMOUNT`).
    pub automatic_mount: AutoMount,
}

/// What the v1.1.x suite is told about mounts without `from`.
///
/// A registry MAY mount a blob found elsewhere when `from` is missing (201) or
/// answer 202. With `OCI_AUTOMATIC_CROSSMOUNT=1` the suite requires 201, which
/// would turn an optional behaviour into a failure for a conformant registry,
/// so it is required only of a target known to do it (the reference server) or
/// when the user asks with `--on apis.blobs.mountAnonymous`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoMount {
    /// Set `OCI_AUTOMATIC_CROSSMOUNT=1`: the registry must mount (201).
    Required,
    /// Leave it unset: the optional behaviour is not asserted (specs are n/a).
    Untested,
    /// Leave it unset because `apis.blobs.mountAnonymous` is off (Disabled).
    Off,
}

impl AutoMount {
    /// Decides from the option, the target and the user's switches.
    pub fn decide(option_on: bool, reference_target: bool, switches: &[Switch]) -> AutoMount {
        let asked = switches
            .iter()
            .any(|s| s.on && s.option.path == "apis.blobs.mountAnonymous");
        match (option_on, reference_target || asked) {
            (false, _) => AutoMount::Off,
            (true, true) => AutoMount::Required,
            (true, false) => AutoMount::Untested,
        }
    }
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
            automatic_mount: plan.automatic_mount,
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
    if w.automatic_mount == AutoMount::Required {
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
    let mut notes = vec![
        "the v1.1.x suite has no version profile and no data-set options: \
         --profile and data.* switches do not apply"
            .to_string(),
    ];
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
/// `automatic_mount` says whether the automatic cross-mount specs were asked
/// for; when not, their skips are reported as Disabled or n/a.
pub fn judge(
    results_dir: &Path,
    exit: &Exit,
    automatic_mount: AutoMount,
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
    let (status, note) = match automatic_mount {
        AutoMount::Required => (Status::Skip, ""),
        AutoMount::Off => (Status::Disabled, "apis.blobs.mountAnonymous is off"),
        AutoMount::Untested => (
            Status::NotApplicable,
            "optional behaviour, required only of the reference server or with --on apis.blobs.mountAnonymous",
        ),
    };
    if automatic_mount != AutoMount::Required {
        for row in rows.iter_mut().filter(|r| {
            r.status == Status::Skip
                && r.name
                    .contains("Cross-mounting without from, and automatic")
        }) {
            row.status = status;
            row.note = Some(note.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_mounts_are_required_only_of_known_or_willing_targets() {
        let on = Switch::parse("apis.blobs.mountAnonymous", true).unwrap();
        let off = Switch::parse("apis.blobs.mountAnonymous", false).unwrap();
        assert_eq!(AutoMount::decide(true, true, &[]), AutoMount::Required);
        assert_eq!(AutoMount::decide(true, false, &[]), AutoMount::Untested);
        assert_eq!(AutoMount::decide(true, false, &[on]), AutoMount::Required);
        assert_eq!(AutoMount::decide(false, true, &[off]), AutoMount::Off);
    }
}
