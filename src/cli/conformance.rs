//! `marina conformance`: run the official OCI conformance suite (a binary the
//! user built from opencontainers/distribution-spec) against the in-process
//! reference server or a registry, print a summary, and exit 0 (pass), 1 (fail)
//! or 2 (the run could not be judged).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::conformance::env::MARINA_CONFORMANCE_PASSWORD;
use crate::conformance::kind::SuiteKind;
use crate::conformance::switches::{Profile, Switch};
use crate::conformance::target::{Credentials, Endpoint};
use crate::conformance::{self, Options};

/// Arguments of `marina conformance`.
#[derive(Debug, Args)]
#[command(
    about = "Run the official OCI conformance suite and summarise its results",
    long_about = "Run the official OCI conformance suite (built from opencontainers/distribution-spec, \
                  either the current `conformance/` program or the v1.1.x ginkgo test binary) against \
                  the in-process reference server, or against --registry. Exit status: 0 nothing failed, \
                  1 something failed (with --strict, also a Skip or Disabled), 2 the run could not be judged."
)]
pub struct ConformanceArgs {
    /// The suite binary: the current suite (`go build` in distribution-spec
    /// `conformance/`) or a v1.1.x ginkgo test binary (`go test -c`).
    #[arg(long, value_name = "PATH")]
    pub suite: PathBuf,

    /// Which suite the binary is; `auto` asks the binary.
    #[arg(long, value_enum, default_value_t = KindArg::Auto)]
    pub suite_kind: KindArg,

    /// Registry to test, `http(s)://host[:port]`. Without it, the reference
    /// server is started in-process on an ephemeral loopback port.
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,

    /// User name for the registry.
    #[arg(long, requires = "password")]
    pub username: Option<String>,

    /// Password for the registry.
    #[arg(long, requires = "username", env = MARINA_CONFORMANCE_PASSWORD, hide_env_values = true)]
    pub password: Option<String>,

    /// The current suite's version profile: `dev` adds upload cancel, digest
    /// headers and tag parameters to `stable`.
    #[arg(long, value_enum, default_value_t = ProfileArg::Dev)]
    pub profile: ProfileArg,

    /// Switch a suite option off, by YAML path or variable name, e.g.
    /// `apis.referrer` or `OCI_DATA_SHA512` (repeatable).
    #[arg(long = "off", value_name = "OPTION")]
    pub off: Vec<String>,

    /// Switch a suite option on, e.g. `data.sparse` for a registry that
    /// accepts sparse manifests (repeatable).
    #[arg(long = "on", value_name = "OPTION")]
    pub on: Vec<String>,

    /// First repository the suite pushes to.
    #[arg(long, default_value = "conformance/repo1")]
    pub repo1: String,

    /// Second repository (mount source and cross-mount target).
    #[arg(long, default_value = "conformance/repo2")]
    pub repo2: String,

    /// Directory for the copied reports (default: ./conformance-results/ followed by the UTC time).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// File of known failures, one `Section: name` per line as the summary
    /// prints them (`API: Blob chunked`); `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,

    /// Also fail when a test is skipped or disabled.
    #[arg(long)]
    pub strict: bool,

    /// Kill the suite after this long: `90s`, `10m`, `1h` or plain seconds.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Never draw the progress indicator.
    #[arg(long)]
    pub no_progress: bool,
}

/// `--suite-kind` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Ask the binary.
    Auto,
    /// The current suite.
    Current,
    /// The v1.1.x ginkgo suite.
    V111,
}

/// `--profile` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// The released spec's defaults.
    Stable,
    /// The development spec's defaults.
    Dev,
}

/// Parses `90s`, `10m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    if secs == 0 {
        return Err("the timeout must be positive".to_string());
    }
    Ok(Duration::from_secs(secs))
}

impl ConformanceArgs {
    /// Turns the arguments into runner options.
    pub fn into_options(self) -> Result<Options, String> {
        let mut options = Options::new(self.suite);
        options.kind = match self.suite_kind {
            KindArg::Auto => None,
            KindArg::Current => Some(SuiteKind::Current),
            KindArg::V111 => Some(SuiteKind::V111),
        };
        options.registry = self
            .registry
            .as_deref()
            .map(Endpoint::parse)
            .transpose()
            .map_err(|e| format!("{e:#}"))?;
        options.credentials = match (self.username, self.password) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            _ => None,
        };
        options.profile = match self.profile {
            ProfileArg::Stable => Profile::Stable,
            ProfileArg::Dev => Profile::Dev,
        };
        for name in &self.off {
            options.switches.push(Switch::parse(name, false)?);
        }
        for name in &self.on {
            options.switches.push(Switch::parse(name, true)?);
        }
        options.repo1 = self.repo1;
        options.repo2 = self.repo2;
        options.out = self.out;
        options.expect = self.expect;
        options.strict = self.strict;
        options.timeout = self.timeout;
        options.progress = !self.no_progress;
        Ok(options)
    }
}

/// Runs `marina conformance` and returns its exit code.
pub fn run(args: ConformanceArgs) -> ExitCode {
    let options = match args.into_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(conformance::run(options));
    print!("{}", report.summary);
    ExitCode::from(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
