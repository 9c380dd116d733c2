//! The spec harness: validates any registry over HTTP, requirement by requirement.
//!
//! Contract: the harness depends on `crate::oci` and `crate::client` only and
//! talks HTTP to whatever URL it is given; it never reaches into Marina's server. `check` runs every
//! selected check (grouped by section in `checks`, property-based ones in
//! `props`), each returning Pass, Fail (with the requirement, what was expected
//! and a redacted transcript), Unsupported (an allowed answer for an optional
//! feature) or Skipped; `report` renders the result for terminals, JUnit, JSON
//! and HTML. The requirement catalog (`spec/requirements.toml`) is in `catalog`.

pub(crate) mod catalog;
pub(crate) mod checks;
pub(crate) mod content;
pub(crate) mod context;
pub(crate) mod discover;
pub(crate) mod options;
pub(crate) mod props;
pub mod report;
pub(crate) mod runner;
pub(crate) mod verdict;

pub use crate::client::Credentials;
pub use options::Options;
pub use report::Report;
pub use runner::HarnessError;
pub use verdict::{Failure, Outcome, Section, Verdict};

/// Runs the harness against the registry at `url` (such as `http://127.0.0.1:5000`)
/// and returns the verdict of every selected check.
pub async fn check(url: &str, options: Options) -> Result<Report, HarnessError> {
    runner::run(url, options).await
}
