//! The current suite (distribution-spec main `conformance/`): how to configure
//! it and how to read what it wrote.
//!
//! Configuration goes through a YAML file named by `OCI_CONFIGURATION`, with
//! `OCI_RESULTS_DIR` and `OCI_TLS` also set in the environment (they win over
//! the file in the suite's precedence, and say the same thing). The verdict
//! comes from `results.yaml` (must exist and parse) and the `status` attributes
//! of `junit.xml` (the suite never writes `<failure>` elements); the exit code
//! is only cross-checked against them.

pub(crate) mod config;
pub(crate) mod results;

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context};

use super::env;
use super::junit;
use super::kind::SuiteKind;
use super::outcome::{message_lines, Outcome, Row, Status, TestCase};
use super::plan::{Invocation, Plan};
use super::process::Exit;

/// Name of the configuration file the runner writes (and copies, redacted).
pub const CONFIG_FILE: &str = "oci-conformance.yaml";
/// Name of the results file the suite writes.
pub const RESULTS_FILE: &str = "results.yaml";
/// Name of the JUnit file the suite writes.
pub const JUNIT_FILE: &str = "junit.xml";

/// Section name of API rows in the table and in `--expect` files.
pub const SECTION_API: &str = "API";
/// Section name of data-set rows in the table and in `--expect` files.
pub const SECTION_DATA: &str = "Data";

/// Writes the configuration into `workdir` and describes the process to run.
pub fn prepare(
    plan: &Plan,
    suite: &Path,
    workdir: &Path,
    inherited: &[(OsString, OsString)],
) -> anyhow::Result<Invocation> {
    let results_dir = workdir.join("results");
    fs::create_dir_all(&results_dir)
        .with_context(|| format!("creating {}", results_dir.display()))?;
    let config_path = workdir.join(CONFIG_FILE);
    write_private(&config_path, &config::render(plan, &results_dir, false))?;

    let mut vars = env::scrub(inherited);
    let tls = if plan.endpoint.tls {
        "enabled"
    } else {
        "disabled"
    };
    vars.push((env::OCI_CONFIGURATION.into(), config_path.into_os_string()));
    vars.push((
        env::OCI_RESULTS_DIR.into(),
        results_dir.clone().into_os_string(),
    ));
    vars.push((env::OCI_TLS.into(), tls.into()));

    Ok(Invocation {
        program: suite.to_path_buf(),
        args: Vec::new(),
        env: vars,
        cwd: workdir.to_path_buf(),
        results_dir: results_dir.clone(),
        settings_file: (
            CONFIG_FILE.to_string(),
            config::render(plan, &results_dir, true),
        ),
        notes: Vec::new(),
    })
}

/// Writes a file readable only by its owner: it may hold a password.
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads the suite's reports from `results_dir` and checks them against the
/// exit status. Fails when there is no `results.yaml` that parses.
pub fn judge(results_dir: &Path, exit: &Exit) -> anyhow::Result<Outcome> {
    let results_path = results_dir.join(RESULTS_FILE);
    if !results_path.is_file() {
        bail!(
            "the suite wrote no {RESULTS_FILE} ({exit}). The current suite exits 0 when it rejects \
             its configuration or cannot write its reports, so this run proves nothing; \
             its stderr says why"
        );
    }
    let text = fs::read_to_string(&results_path)
        .with_context(|| format!("reading {}", results_path.display()))?;
    let results = results::parse(&text)
        .with_context(|| format!("the suite's {RESULTS_FILE} cannot be used"))?;

    let mut rows: Vec<Row> = Vec::new();
    for (section, list) in [(SECTION_API, &results.apis), (SECTION_DATA, &results.data)] {
        rows.extend(list.iter().map(|(name, status)| Row {
            section: section.to_string(),
            name: name.clone(),
            status: *status,
            note: None,
        }));
    }

    let mut problems = Vec::new();
    let tests = match read_junit(&results_dir.join(JUNIT_FILE)) {
        Ok(tests) => tests,
        Err(e) => {
            problems.push(format!("{e:#}"));
            Vec::new()
        }
    };

    let row_failed = rows.iter().any(|r| r.status.is_failure());
    if !row_failed && tests.iter().any(|t| t.status.is_failure()) {
        problems.push(format!(
            "{JUNIT_FILE} reports failing tests but {RESULTS_FILE} does not"
        ));
    }
    let any_pass = rows.iter().any(|r| r.status == Status::Pass);
    let suite_says_fail = row_failed || !any_pass;
    match exit {
        Exit::Code(0) if suite_says_fail => problems.push(format!(
            "the suite exited 0 although {RESULTS_FILE} is not a pass \
             (it exits 0 when writing a report fails)"
        )),
        Exit::Code(1) if !suite_says_fail => problems.push(format!(
            "the suite exited 1 although {RESULTS_FILE} records no failure"
        )),
        Exit::Code(0) | Exit::Code(1) => {}
        other => problems.push(format!("the suite ended abnormally ({other})")),
    }

    let suite_version = match (&results.version, &results.commit) {
        (Some(v), Some(c)) => Some(format!("{v}, commit {c}")),
        (Some(v), None) => Some(v.clone()),
        (None, Some(c)) => Some(format!("commit {c}")),
        (None, None) => None,
    };
    Ok(Outcome {
        kind: SuiteKind::Current,
        suite_version,
        rows,
        tests,
        problems,
    })
}

/// Reads the leaf tests of the current suite's junit.xml from their `status`
/// attributes; the error text is in `<system-out>`.
fn read_junit(path: &Path) -> anyhow::Result<Vec<TestCase>> {
    if !path.is_file() {
        bail!("the suite wrote no {JUNIT_FILE}, so its failing tests cannot be listed");
    }
    let xml = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cases = junit::parse(&xml)?;
    cases
        .into_iter()
        .map(|c| {
            let status = match c.status.as_deref() {
                Some("passed") => Status::Pass,
                Some("failure") => Status::Fail,
                Some("error") => Status::Error,
                Some("skipped") => Status::Skip,
                Some("disabled") => Status::Disabled,
                Some(other) => bail!(
                    "{JUNIT_FILE}: test {:?} has unknown status {other:?}",
                    c.name
                ),
                // The suite always writes the attribute; fall back to child
                // elements only for documents from elsewhere.
                None if c.error.is_some() => Status::Error,
                None if c.failure.is_some() => Status::Fail,
                None if c.skipped.is_some() => Status::Skip,
                None => Status::Pass,
            };
            let text = c
                .system_out
                .or_else(|| c.failure.or(c.error).or(c.skipped).map(|r| r.message))
                .unwrap_or_default();
            Ok(TestCase {
                name: c.name,
                status,
                message: message_lines(&text),
            })
        })
        .collect()
}
