//! Knowledge of the v1.1.x ginkgo suite's spec names: which workflow a spec
//! belongs to, and which skips are by design.
//!
//! The v1.1.x suite is a frozen release, so its structure can be written down.
//! Some of its specs are alternatives of which at most one can run: one branch
//! for a registry that mounts a blob (201) and one for a registry that does not
//! (202), or setups that only apply to read-only runs the runner never asks for.
//! Counting the branch not taken as a skip would make `--strict` impossible to
//! pass for any registry, so such a skip becomes `n/a` with the reason, but only
//! when its alternative actually ran.

use crate::conformance::outcome::{Row, Status};

/// The ginkgo suite's top-level description, the prefix of every spec name.
pub const DESCRIPTION: &str = "OCI Distribution Conformance Tests";
/// The four workflows, each run when its `OCI_TEST_*` variable is truthy.
pub const WORKFLOWS: [&str; 4] = ["Content Discovery", "Content Management", "Pull", "Push"];
/// The section of junit entries outside the workflows (ginkgo reporter nodes).
pub const SECTION_SUITE: &str = "Suite";

/// Splits a junit test name into (section, rest).
pub fn split_name(full: &str) -> (String, String) {
    if let Some(rest) = full.strip_prefix(DESCRIPTION).map(str::trim_start) {
        for workflow in WORKFLOWS {
            if let Some(spec) = rest
                .strip_prefix(workflow)
                .and_then(|r| r.strip_prefix(' '))
            {
                return (workflow.to_string(), spec.to_string());
            }
        }
        return (SECTION_SUITE.to_string(), rest.to_string());
    }
    (SECTION_SUITE.to_string(), full.to_string())
}

/// A spec that may be skipped by design when another one ran.
struct Alternative {
    section: &'static str,
    skipped: &'static str,
    ran: &'static str,
    reason: &'static str,
}

const ALTERNATIVES: &[Alternative] = &[
    Alternative {
        section: "Pull",
        skipped: "Setup Get tag name from environment",
        ran: "Setup Populate registry with test manifest",
        reason: "only for read-only runs on preloaded content (OCI_TAG_NAME); the runner pushes its own",
    },
    Alternative {
        section: "Content Discovery",
        skipped: "Setup Populate registry with test tags (no push)",
        ran: "Setup Populate registry with test tags",
        reason: "only for read-only runs on preloaded tags (OCI_TAG_LIST); the runner pushes its own",
    },
    Alternative {
        section: "Push",
        skipped: "Cross-Repository Blob Mount Cross-mounting of nonexistent blob should yield session id",
        ran: "Cross-Repository Blob Mount GET request to test digest within cross-mount namespace should return 200",
        reason: "the branch for registries that answer a mount with 202; this one mounted (201)",
    },
    Alternative {
        section: "Push",
        skipped: "Cross-Repository Blob Mount GET request to test digest within cross-mount namespace should return 200",
        ran: "Cross-Repository Blob Mount Cross-mounting of nonexistent blob should yield session id",
        reason: "the branch for registries that answer a mount with 201; this one answered 202",
    },
    Alternative {
        section: "Push",
        skipped: "Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery disabled should return a 202",
        ran: "Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery enabled should return a 201",
        reason: "the branch for OCI_AUTOMATIC_CROSSMOUNT=0; the runner expects automatic mounts",
    },
];

/// The skip message of specs switched off through `OCI_TEST_*`.
const DISABLED_MARKER: &str = "check your environment variable settings";

/// The status of a skipped spec from its skip message: switched off by the
/// environment (Disabled) or skipped at run time (Skip).
pub fn skip_status(message: &str) -> Status {
    if message.contains(DISABLED_MARKER) {
        Status::Disabled
    } else {
        Status::Skip
    }
}

/// Marks by-design skips as n/a, when their alternative ran (passed or failed).
pub fn mark_alternatives(rows: &mut [Row]) {
    let ran = |rows: &[Row], section: &str, name: &str| {
        rows.iter().any(|r| {
            r.section == section
                && r.name == name
                && !matches!(
                    r.status,
                    Status::Skip | Status::Disabled | Status::NotApplicable
                )
        })
    };
    let marks: Vec<(usize, &'static str)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == Status::Skip)
        .filter_map(|(i, r)| {
            ALTERNATIVES
                .iter()
                .find(|a| {
                    a.section == r.section && a.skipped == r.name && ran(rows, a.section, a.ran)
                })
                .map(|a| (i, a.reason))
        })
        .collect();
    for (i, reason) in marks {
        rows[i].status = Status::NotApplicable;
        rows[i].note = Some(reason.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(section: &str, name: &str, status: Status) -> Row {
        Row {
            section: section.into(),
            name: name.into(),
            status,
            note: None,
        }
    }

    #[test]
    fn splits_names_into_workflow_and_spec() {
        assert_eq!(
            split_name(
                "OCI Distribution Conformance Tests Content Discovery Setup References setup"
            ),
            ("Content Discovery".into(), "Setup References setup".into())
        );
        assert_eq!(
            split_name("OCI Distribution Conformance Tests Pull Pull blobs HEAD x"),
            ("Pull".into(), "Pull blobs HEAD x".into())
        );
        assert_eq!(
            split_name("OCI Distribution Conformance Tests Push Teardown y"),
            ("Push".into(), "Teardown y".into())
        );
        assert_eq!(
            split_name("html custom reporter"),
            ("Suite".into(), "html custom reporter".into())
        );
    }

    #[test]
    fn skip_messages_tell_disabled_from_skipped() {
        assert_eq!(
            skip_status("skipped - you have skipped this test; if this is an error, check your environment variable settings:\n\tOCI_TEST_PULL="),
            Status::Disabled
        );
        assert_eq!(
            skip_status("skipped - you have skipped this test."),
            Status::Skip
        );
    }

    #[test]
    fn a_skip_is_na_only_when_its_alternative_ran() {
        let mount_202 = "Cross-Repository Blob Mount Cross-mounting of nonexistent blob should yield session id";
        let mount_201 = "Cross-Repository Blob Mount GET request to test digest within cross-mount namespace should return 200";
        let mut rows = vec![
            row("Push", mount_201, Status::Pass),
            row("Push", mount_202, Status::Skip),
            row("Pull", "Setup Get tag name from environment", Status::Skip),
        ];
        mark_alternatives(&mut rows);
        assert_eq!(rows[1].status, Status::NotApplicable);
        assert!(rows[1].note.as_deref().unwrap().contains("201"));
        // The pull setup did not run, so its alternative's skip stays a skip.
        assert_eq!(rows[2].status, Status::Skip);

        let mut both_skipped = vec![
            row("Push", mount_201, Status::Skip),
            row("Push", mount_202, Status::Skip),
        ];
        mark_alternatives(&mut both_skipped);
        assert!(both_skipped.iter().all(|r| r.status == Status::Skip));
    }
}
