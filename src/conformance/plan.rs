//! What one run asks of a suite ([`Plan`]) and the exact process that carries
//! it out ([`Invocation`]). Each suite module turns a plan into an invocation;
//! the process module runs it without knowing which suite it is.

use std::ffi::OsString;
use std::path::PathBuf;

use super::switches::{OptionSet, Profile};
use super::target::{Credentials, Endpoint};
use super::v111::AutoMount;

/// The suite-independent description of a run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The registry under test.
    pub endpoint: Endpoint,
    /// Credentials passed through to the suite.
    pub credentials: Option<Credentials>,
    /// The repository most tests push to.
    pub repo1: String,
    /// The second repository (mount source / cross-mount target).
    pub repo2: String,
    /// The current suite's version profile.
    pub profile: Profile,
    /// Every optional test, on or off.
    pub options: OptionSet,
    /// Whether the v1.1.x suite must see automatic cross-mounts.
    pub automatic_mount: AutoMount,
}

/// A fully prepared suite process: program, arguments, the complete
/// environment (inherited `OCI_*` variables already removed), working directory,
/// and where its reports will appear.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The suite binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Its whole environment; the process starts from an empty one.
    pub env: Vec<(OsString, OsString)>,
    /// Its working directory (a private scratch directory).
    pub cwd: PathBuf,
    /// The fresh, empty directory the suite writes its reports into.
    pub results_dir: PathBuf,
    /// A human-readable record of how the suite was configured, secrets
    /// redacted, copied next to the reports: (file name, content).
    pub settings_file: (String, String),
    /// Remarks for the summary, e.g. options a suite cannot honour.
    pub notes: Vec<String>,
}

/// What a secret is replaced with in anything the runner writes or prints.
pub const REDACTED: &str = "*****";
