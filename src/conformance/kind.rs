//! Which official suite a binary is, told apart by one harmless probe run.
//!
//! The v1.1.x suite is a `go test` binary: asked `-test.list .*` it prints its
//! test function names (`TestConformance`) and exits 0. The current suite is a
//! plain program that ignores its arguments and reads `OCI_VERSION` first; given
//! an invalid version it prints `unsupported config version <value>` and exits
//! before any network traffic. The probe sends both signals at once, points both
//! suites at a closed loopback port in case either ignores them, and classifies
//! the answer. A binary that answers neither way is rejected with its output so
//! the user can pass `--suite-kind`.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::env;

/// The two suite generations the runner drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuiteKind {
    /// The current suite (distribution-spec main `conformance/`, a plain Go
    /// program configured by YAML, writing results.yaml and junit.xml).
    Current,
    /// The v1.1.x ginkgo suite (a `go test -c` binary configured by `OCI_*`
    /// variables, writing junit.xml).
    V111,
}

impl fmt::Display for SuiteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SuiteKind::Current => "current",
            SuiteKind::V111 => "v1.1.x",
        })
    }
}

/// The invalid version the probe sends; the current suite echoes it back.
pub const PROBE_VERSION: &str = "marina-kind-probe";
/// Arguments of the probe: ask a Go test binary to list its tests.
pub const PROBE_ARGS: [&str; 2] = ["-test.list", ".*"];
/// How long the probe may take before the binary is declared unusable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the probe saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// Whether the process exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Classifies a probe answer; `None` when it matches neither suite.
pub fn classify(answer: &ProbeAnswer) -> Option<SuiteKind> {
    let listed_tests = answer
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>();
    let is_test_list = !listed_tests.is_empty()
        && listed_tests
            .iter()
            .all(|l| l.starts_with("Test") && l.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if answer.success && is_test_list {
        return Some(SuiteKind::V111);
    }
    let echoed = format!("unsupported config version {PROBE_VERSION}");
    if answer.stdout.contains(&echoed) || answer.stderr.contains(&echoed) {
        return Some(SuiteKind::Current);
    }
    None
}

/// The environment of the probe: the scrubbed inheritance plus the signals
/// both suites understand, all pointing at a closed loopback port.
pub fn probe_env(inherited: &[(OsString, OsString)], scratch: &Path) -> Vec<(OsString, OsString)> {
    let mut vars = env::scrub(inherited);
    let set = |k: &str, v: &OsString| (OsString::from(k), v.clone());
    let closed = OsString::from("127.0.0.1:1");
    vars.push(set(env::OCI_VERSION, &PROBE_VERSION.into()));
    vars.push(set(env::OCI_REGISTRY, &closed));
    vars.push(set(env::OCI_TLS, &"disabled".into()));
    vars.push(set(env::OCI_RESULTS_DIR, &scratch.as_os_str().to_owned()));
    vars.push(set(env::OCI_ROOT_URL, &"http://127.0.0.1:1".into()));
    vars.push(set(env::OCI_NAMESPACE, &"marina/probe".into()));
    vars.push(set(env::OCI_REPORT_DIR, &"none".into()));
    vars
}

/// Runs the probe against `suite` and classifies it.
pub async fn detect(suite: &Path, inherited: &[(OsString, OsString)]) -> anyhow::Result<SuiteKind> {
    let scratch = tempfile::Builder::new()
        .prefix("marina-probe-")
        .tempdir()
        .context("creating a scratch directory for the suite probe")?;
    let mut cmd = tokio::process::Command::new(suite);
    cmd.args(PROBE_ARGS)
        .env_clear()
        .envs(probe_env(inherited, scratch.path()))
        .current_dir(scratch.path())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PROBE_TIMEOUT, cmd.output())
        .await
        .with_context(|| {
            format!(
                "{} did not answer the kind probe within {}s",
                suite.display(),
                PROBE_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("running {}", suite.display()))?;
    let answer = ProbeAnswer {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    match classify(&answer) {
        Some(kind) => Ok(kind),
        None => bail!(
            "cannot tell which conformance suite {} is; pass --suite-kind current|v111.\n\
             It was run as `{} {}` with OCI_VERSION={PROBE_VERSION} and answered ({}):\n\
             stdout: {}\nstderr: {}",
            suite.display(),
            suite.display(),
            PROBE_ARGS.join(" "),
            output.status,
            answer.stdout.trim(),
            answer.stderr.trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(success: bool, stdout: &str, stderr: &str) -> ProbeAnswer {
        ProbeAnswer {
            success,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn a_go_test_binary_lists_its_tests() {
        let a = answer(true, "TestConformance\n", "");
        assert_eq!(classify(&a), Some(SuiteKind::V111));
    }

    #[test]
    fn the_current_suite_rejects_the_probe_version() {
        let a = answer(
            true,
            "",
            "failed to load config: unsupported config version marina-kind-probe\n",
        );
        assert_eq!(classify(&a), Some(SuiteKind::Current));
    }

    #[test]
    fn anything_else_is_unknown() {
        assert_eq!(classify(&answer(true, "", "")), None);
        assert_eq!(classify(&answer(false, "TestConformance\n", "")), None);
        assert_eq!(classify(&answer(true, "hello world\n", "")), None);
        assert_eq!(
            classify(&answer(
                true,
                "Test results\nOCI Conformance Test: FAIL\n",
                ""
            )),
            None
        );
    }
}
