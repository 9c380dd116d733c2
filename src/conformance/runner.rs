//! One conformance run from start to end: detect the suite, bring up the
//! target, configure and run the suite, read its reports, copy them, decide the
//! verdict, render the summary, and always tear the target down.
//!
//! Nothing here returns an error to the caller: every failure along the way
//! becomes a "not judged" verdict with its reason in the summary, so the
//! command always prints what happened and exits 0, 1 or 2.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::expect::{self, Expectation};
use super::kind::{self, SuiteKind};
use super::outcome::Outcome;
use super::plan::{Invocation, Plan};
use super::process::{self, Exit, Finished};
use super::progress::Progress;
use super::reference_server::ReferenceServer;
use super::summary::{self, Context};
use super::switches::{OptionSet, Profile, Switch};
use super::target::{Credentials, Endpoint};
use super::v111::AutoMount;
use super::verdict::{self, Verdict};
use super::{current, env, reports, v111};

/// Default bound on one suite run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Everything a run needs, as the CLI (or a test) provides it.
#[derive(Clone, Debug)]
pub struct Options {
    /// The suite binary.
    pub suite: PathBuf,
    /// The suite's kind; `None` detects it.
    pub kind: Option<SuiteKind>,
    /// The registry under test; `None` starts the in-process reference server.
    pub registry: Option<Endpoint>,
    /// Credentials passed to the suite.
    pub credentials: Option<Credentials>,
    /// The current suite's version profile.
    pub profile: Profile,
    /// Options forced on or off.
    pub switches: Vec<Switch>,
    /// First repository.
    pub repo1: String,
    /// Second repository.
    pub repo2: String,
    /// Where to copy the reports; `None` uses `./conformance-results/<stamp>`.
    pub out: Option<PathBuf>,
    /// Known failures.
    pub expect: Option<PathBuf>,
    /// Fail on Skip and Disabled too.
    pub strict: bool,
    /// Bound on the suite process.
    pub timeout: Duration,
    /// Draw a progress indicator (only ever on a terminal).
    pub progress: bool,
    /// The environment the runner was started with (scrubbed of `OCI_*`
    /// before the suite sees it).
    pub inherited_env: Vec<(OsString, OsString)>,
}

impl Options {
    /// Options with the documented defaults for everything but the suite.
    pub fn new(suite: impl Into<PathBuf>) -> Options {
        Options {
            suite: suite.into(),
            kind: None,
            registry: None,
            credentials: None,
            profile: Profile::Dev,
            switches: Vec::new(),
            repo1: "conformance/repo1".to_string(),
            repo2: "conformance/repo2".to_string(),
            out: None,
            expect: None,
            strict: false,
            timeout: DEFAULT_TIMEOUT,
            progress: true,
            inherited_env: std::env::vars_os().collect(),
        }
    }
}

/// What happened to the in-process reference server, for tests and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceRun {
    /// Its URL while it ran.
    pub url: String,
    /// Its temporary data directory (gone after a successful stop).
    pub data_dir: PathBuf,
    /// An error from stopping it or removing the directory, if any.
    pub stop_error: Option<String>,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The suite's kind, when it was known or detected.
    pub kind: Option<SuiteKind>,
    /// What the reports said, when they could be read.
    pub outcome: Option<Outcome>,
    /// The verdict.
    pub verdict: Verdict,
    /// The printed summary.
    pub summary: String,
    /// Where the reports were copied.
    pub out_dir: Option<PathBuf>,
    /// The reference server's lifecycle, when one was started.
    pub reference: Option<ReferenceRun>,
}

impl RunReport {
    /// The process exit code: 0 pass, 1 fail, 2 not judged.
    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }
}

/// Runs the suite as `options` say and reports the outcome.
pub async fn run(options: Options) -> RunReport {
    let mut ctx = Context {
        suite: options.suite.clone(),
        kind: options.kind,
        target: options
            .registry
            .as_ref()
            .map(|e| e.url())
            .unwrap_or_else(|| "the in-process reference server".to_string()),
        repos: (options.repo1.clone(), options.repo2.clone()),
        removed_env: env::removed_names(&options.inherited_env),
        expect: options.expect.clone(),
        strict: options.strict,
        ..Context::default()
    };
    let mut report = RunReport {
        kind: options.kind,
        outcome: None,
        verdict: Verdict::not_judged(String::new()),
        summary: String::new(),
        out_dir: None,
        reference: None,
    };
    let verdict = match run_inner(&options, &mut ctx, &mut report).await {
        Ok((outcome, expectations)) => {
            let v = verdict::decide(&outcome, &expectations, options.strict);
            report.outcome = Some(outcome);
            v
        }
        Err(e) => Verdict::not_judged(format!("{e:#}")),
    };
    report.summary = summary::render(&ctx, report.outcome.as_ref(), &verdict);
    report.verdict = verdict;
    if let Some(dir) = &report.out_dir {
        let _ = std::fs::write(dir.join("summary.txt"), &report.summary);
    }
    report
}

async fn run_inner(
    options: &Options,
    ctx: &mut Context,
    report: &mut RunReport,
) -> anyhow::Result<(Outcome, Vec<Expectation>)> {
    let expectations = match &options.expect {
        Some(path) => expect::load(path)?,
        None => Vec::new(),
    };
    if !options.suite.is_file() {
        anyhow::bail!(
            "the suite binary {} does not exist",
            options.suite.display()
        );
    }
    let kind = match options.kind {
        Some(k) => k,
        None => kind::detect(&options.suite, &options.inherited_env).await?,
    };
    ctx.kind = Some(kind);
    report.kind = Some(kind);
    let out_dir = reports::create_out_dir(options.out.as_deref(), SystemTime::now())?;
    report.out_dir = Some(out_dir.clone());

    let server = match &options.registry {
        Some(_) => None,
        None => Some(ReferenceServer::start().await?),
    };
    let endpoint = match (&options.registry, &server) {
        (Some(e), _) => e.clone(),
        (None, Some(s)) => {
            ctx.target = format!("{} (in-process reference server)", s.url());
            Endpoint::parse(&s.url())?
        }
        (None, None) => unreachable!("a server is started when no registry is given"),
    };
    let option_set = OptionSet::resolve(options.profile, server.is_some(), &options.switches);
    let plan = Plan {
        endpoint,
        credentials: options.credentials.clone(),
        repo1: options.repo1.clone(),
        repo2: options.repo2.clone(),
        profile: options.profile,
        automatic_mount: AutoMount::decide(
            option_set.get("apis.blobs.mountAnonymous"),
            server.is_some(),
            &options.switches,
        ),
        options: option_set,
    };
    if kind == SuiteKind::Current {
        let off = plan.options.off();
        ctx.configuration.push(format!(
            "profile {} (version {}); options off: {}",
            plan.profile,
            plan.profile.suite_version(),
            if off.is_empty() {
                "none".to_string()
            } else {
                off.join(", ")
            }
        ));
    }

    // Run, then stop the server whatever happened.
    let ran = execute(options, kind, &plan, &out_dir, ctx).await;
    if let Some(server) = server {
        let url = server.url();
        let data_dir = server.data_dir().to_path_buf();
        let stop_error = server.stop().await.err().map(|e| format!("{e:#}"));
        report.reference = Some(ReferenceRun {
            url,
            data_dir,
            stop_error,
        });
    }
    // `_workdir` holds the suite's private report directory: keep it until
    // the reports are judged, at the end of this function.
    let (finished, invocation, _workdir) = ran?;
    let reports_dir = invocation.results_dir.clone();

    // Copy whatever the suite wrote before judging, so it is there to read
    // even when the verdict is "not judged".
    std::fs::write(
        out_dir.join(&invocation.settings_file.0),
        &invocation.settings_file.1,
    )
    .with_context(|| format!("writing into {}", out_dir.display()))?;
    let mut files = reports::copy_all(&reports_dir, &out_dir)?;
    files.extend(["stdout.txt".to_string(), "stderr.txt".to_string()]);
    files.push(invocation.settings_file.0.clone());
    ctx.reports = Some((out_dir.clone(), files));

    if let Exit::TimedOut(_) | Exit::Interrupted = finished.exit {
        anyhow::bail!("the suite {}; its reports are incomplete", finished.exit);
    }
    let judged = match kind {
        SuiteKind::Current => current::judge(&reports_dir, &finished.exit),
        SuiteKind::V111 => v111::judge(&reports_dir, &finished.exit, plan.automatic_mount),
    };
    // The copies in out_dir are what the user reads; judge from the private
    // directory the suite wrote, which no earlier run can have touched.
    judged
        .map(|outcome| (outcome, expectations))
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", stderr_tail(&finished.stderr)))
}

/// Prepares and runs the suite; returns how it ended, what ran, and the
/// scratch directory (kept alive until the reports are copied).
async fn execute(
    options: &Options,
    kind: SuiteKind,
    plan: &Plan,
    out_dir: &Path,
    ctx: &mut Context,
) -> anyhow::Result<(Finished, Invocation, tempfile::TempDir)> {
    let workdir = tempfile::Builder::new()
        .prefix("marina-suite-")
        .tempdir()
        .context("creating the suite's scratch directory")?;
    let invocation = match kind {
        SuiteKind::Current => {
            current::prepare(plan, &options.suite, workdir.path(), &options.inherited_env)?
        }
        SuiteKind::V111 => {
            v111::prepare(plan, &options.suite, workdir.path(), &options.inherited_env)?
        }
    };
    ctx.notes.extend(invocation.notes.iter().cloned());
    let progress = Progress::start(kind, &plan.endpoint.url(), options.progress);
    let finished = process::run(&invocation, options.timeout, out_dir, progress.observer()).await;
    progress.finish();
    let finished = finished?;
    ctx.run = Some((finished.exit, finished.elapsed));
    Ok((finished, invocation, workdir))
}

/// The last lines of the suite's stderr, to explain a missing report.
fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "the suite printed nothing on stderr".to_string();
    }
    let start = lines.len().saturating_sub(10);
    format!(
        "the suite's stderr ends with:\n{}",
        lines[start..].join("\n")
    )
}
