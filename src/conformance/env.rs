//! Every environment variable name the conformance runner reads or sets, in one
//! place, and the scrubbing of inherited `OCI_*` variables.
//!
//! Both official suites read their configuration from `OCI_*` variables, and the
//! current suite lets a variable override its YAML file. A stray `OCI_VERSION` or
//! `OCI_API_PUSH=false` in the user's shell would silently change what is tested,
//! so the runner removes every inherited `OCI_*` variable before it sets its own.

use std::ffi::{OsStr, OsString};

/// The prefix shared by every variable the official suites read.
pub const OCI_PREFIX: &str = "OCI_";

/// Current suite: path of the YAML configuration file.
pub const OCI_CONFIGURATION: &str = "OCI_CONFIGURATION";
/// Current suite: directory where results.yaml, junit.xml and report.html go.
pub const OCI_RESULTS_DIR: &str = "OCI_RESULTS_DIR";
/// Current suite: `enabled` (https) or `disabled` (http).
pub const OCI_TLS: &str = "OCI_TLS";
/// Current suite: version profile (`1.1`, `dev`, ...). Set only by the kind probe.
pub const OCI_VERSION: &str = "OCI_VERSION";
/// Current suite: `host[:port]` of the registry. Set only by the kind probe.
pub const OCI_REGISTRY: &str = "OCI_REGISTRY";

/// v1.1.x suite: scheme and host of the registry.
pub const OCI_ROOT_URL: &str = "OCI_ROOT_URL";
/// v1.1.x suite: the repository pushed to and pulled from.
pub const OCI_NAMESPACE: &str = "OCI_NAMESPACE";
/// v1.1.x suite: the repository blobs are mounted into.
pub const OCI_CROSSMOUNT_NAMESPACE: &str = "OCI_CROSSMOUNT_NAMESPACE";
/// v1.1.x suite: user name for basic or token authentication.
pub const OCI_USERNAME: &str = "OCI_USERNAME";
/// v1.1.x suite: password for basic or token authentication.
pub const OCI_PASSWORD: &str = "OCI_PASSWORD";
/// v1.1.x suite: run the pull workflow when truthy.
pub const OCI_TEST_PULL: &str = "OCI_TEST_PULL";
/// v1.1.x suite: run the push workflow when truthy.
pub const OCI_TEST_PUSH: &str = "OCI_TEST_PUSH";
/// v1.1.x suite: run the content discovery workflow when truthy.
pub const OCI_TEST_CONTENT_DISCOVERY: &str = "OCI_TEST_CONTENT_DISCOVERY";
/// v1.1.x suite: run the content management workflow when truthy.
pub const OCI_TEST_CONTENT_MANAGEMENT: &str = "OCI_TEST_CONTENT_MANAGEMENT";
/// v1.1.x suite: unset skips the test; `1` expects a mount without `from` to
/// give 201, `0` expects 202.
pub const OCI_AUTOMATIC_CROSSMOUNT: &str = "OCI_AUTOMATIC_CROSSMOUNT";
/// v1.1.x suite: directory for junit.xml and report.html (`none` disables them).
pub const OCI_REPORT_DIR: &str = "OCI_REPORT_DIR";

pub use crate::config::env::CONFORMANCE_PASSWORD as MARINA_CONFORMANCE_PASSWORD;

/// True when a variable name belongs to the suites' namespace.
pub fn is_suite_variable(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(OCI_PREFIX))
}

/// The inherited environment with every `OCI_*` variable removed.
pub fn scrub(inherited: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    inherited
        .iter()
        .filter(|(k, _)| !is_suite_variable(k))
        .cloned()
        .collect()
}

/// The names of the `OCI_*` variables that [`scrub`] removes, for the summary.
pub fn removed_names(inherited: &[(OsString, OsString)]) -> Vec<String> {
    let mut names: Vec<String> = inherited
        .iter()
        .filter(|(k, _)| is_suite_variable(k))
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (OsString, OsString) {
        (k.into(), v.into())
    }

    #[test]
    fn scrub_removes_only_oci_variables() {
        let env = vec![
            pair("PATH", "/bin"),
            pair("OCI_VERSION", "1.0"),
            pair("OCI_API_PUSH", "false"),
            pair("MY_OCI_THING", "kept"),
        ];
        let kept = scrub(&env);
        assert_eq!(
            kept,
            vec![pair("PATH", "/bin"), pair("MY_OCI_THING", "kept")]
        );
        assert_eq!(removed_names(&env), vec!["OCI_API_PUSH", "OCI_VERSION"]);
    }
}
