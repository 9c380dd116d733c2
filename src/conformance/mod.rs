//! The conformance runner: drives the official OCI distribution-spec
//! conformance suites (the current `conformance/` program and the v1.1.x
//! ginkgo test binary) against the reference server or any registry, and
//! judges the run from the reports the suite wrote.
//!
//! Contract: this module never builds, ships or links the suites. It runs a
//! binary the user built, configures it only through files and variables it
//! writes itself (inherited `OCI_*` variables are removed), bounds its run
//! time, and judges only from its reports (`results.yaml` plus junit `status`
//! attributes for the current suite, junit `<failure>`/`<skipped>` elements for
//! v1.1.x), never from the exit code alone, because the current suite exits 0
//! when its configuration is rejected. Its only contact with the server is
//! `reference_server`.

pub(crate) mod current;
pub(crate) mod env;
pub(crate) mod expect;
pub(crate) mod junit;
pub(crate) mod kind;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod process;
pub(crate) mod progress;
pub(crate) mod reference_server;
pub(crate) mod reports;
pub(crate) mod runner;
pub(crate) mod summary;
pub(crate) mod switches;
pub(crate) mod target;
pub(crate) mod v111;
pub(crate) mod verdict;

pub use kind::SuiteKind;
pub use outcome::{Outcome, Row, Status};
pub use runner::{run, Options, ReferenceRun, RunReport};
pub use switches::{Profile, Switch};
pub use target::{Credentials, Endpoint};
pub use verdict::Verdict;

#[cfg(test)]
mod tests;
