//! The suite-independent result of one run: every row of the summary table and
//! every leaf test, with one status vocabulary for both suite kinds.
//!
//! Both parsers (`current`, `v111`) produce an [`Outcome`]; the verdict, the
//! `--expect` comparison and the printed table only ever look at this model, so
//! they are written and tested once.

use std::fmt;

use super::kind::SuiteKind;

/// A test's result, ordered like the current suite orders its statuses
/// (`Disabled < Skip < Pass < FAIL < Error`), so the worst status of a group is
/// its maximum. [`Status::NotApplicable`] sits below everything: it marks a v1.1.x
/// spec that is skipped by design (an alternative branch that only runs for a
/// different registry behaviour or configuration) and never fails a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Skipped by design: the spec is an alternative that did not apply.
    NotApplicable,
    /// Turned off by configuration (an option switched off, or not supported).
    Disabled,
    /// Skipped at run time: a prerequisite failed or the registry answered with a
    /// valid "unsupported" response.
    Skip,
    /// Passed.
    Pass,
    /// An assertion failed.
    Fail,
    /// The suite itself hit an error while running the test.
    Error,
}

impl Status {
    /// Every status, in display order for totals.
    pub const ALL: [Status; 6] = [
        Status::Pass,
        Status::Fail,
        Status::Error,
        Status::Skip,
        Status::Disabled,
        Status::NotApplicable,
    ];

    /// True for FAIL and Error: the statuses that fail a run.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Error)
    }

    /// True for Skip and Disabled: the statuses that fail a run only with `--strict`.
    pub fn is_gap(self) -> bool {
        matches!(self, Status::Skip | Status::Disabled)
    }

    /// Parses the status words of the current suite's `results.yaml`
    /// (`Pass|Skip|Disabled|FAIL|Error`, accepted in any case).
    pub fn from_results_word(word: &str) -> Option<Status> {
        match word.trim().to_ascii_lowercase().as_str() {
            "pass" => Some(Status::Pass),
            "skip" => Some(Status::Skip),
            "disabled" => Some(Status::Disabled),
            "fail" => Some(Status::Fail),
            "error" => Some(Status::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::NotApplicable => "n/a",
            Status::Disabled => "Disabled",
            Status::Skip => "Skip",
            Status::Pass => "Pass",
            Status::Fail => "FAIL",
            Status::Error => "Error",
        })
    }
}

/// One row of the summary table and one unit of the verdict: an API or a data
/// set of the current suite (from `results.yaml`), or one spec of the v1.1.x
/// suite (from `junit.xml`). `--expect` files name rows as `Section: name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The group the row is printed under: `API`, `Data`, or a v1.1.x workflow.
    pub section: String,
    /// The row's name within its section, exactly as the suite spells it.
    pub name: String,
    /// The row's status.
    pub status: Status,
    /// Why the row has this status when that is not obvious (n/a reasons).
    pub note: Option<String>,
}

impl Row {
    /// The row's key as written in `--expect` files: `Section: name`.
    pub fn key(&self) -> String {
        format!("{}: {}", self.section, self.name)
    }
}

/// One leaf test as reported in `junit.xml`, with the lines that explain a
/// non-passing status (the suite's error text, one entry per line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    /// The test's full name or path as the suite reports it.
    pub name: String,
    /// The test's status.
    pub status: Status,
    /// The error or skip message, split into lines.
    pub message: Vec<String>,
}

/// Everything the runner learned from one suite run's reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Which suite produced the reports.
    pub kind: SuiteKind,
    /// The suite's own version information when it reports one (the current
    /// suite's `config.version` and `config.commit`).
    pub suite_version: Option<String>,
    /// The verdict units, in the order they are printed.
    pub rows: Vec<Row>,
    /// Every leaf test found in `junit.xml`.
    pub tests: Vec<TestCase>,
    /// Reasons the run cannot be trusted even though reports were read (an exit
    /// code that contradicts the reports, a missing junit.xml, ...). Any problem
    /// makes the run "not judged" (exit 2).
    pub problems: Vec<String>,
}

impl Outcome {
    /// The number of rows with each status, in [`Status::ALL`] order.
    pub fn row_totals(&self) -> Vec<(Status, usize)> {
        totals(self.rows.iter().map(|r| r.status))
    }

    /// The number of leaf tests with each status, in [`Status::ALL`] order.
    pub fn test_totals(&self) -> Vec<(Status, usize)> {
        totals(self.tests.iter().map(|t| t.status))
    }

    /// The distinct sections, in order of first appearance.
    pub fn sections(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !seen.contains(&row.section.as_str()) {
                seen.push(&row.section);
            }
        }
        seen
    }
}

/// Counts statuses, keeping [`Status::ALL`] order and dropping zero counts for
/// the rarely used n/a status only.
pub fn totals(statuses: impl Iterator<Item = Status>) -> Vec<(Status, usize)> {
    let all: Vec<Status> = statuses.collect();
    Status::ALL
        .iter()
        .map(|s| (*s, all.iter().filter(|x| *x == s).count()))
        .filter(|(s, n)| *s != Status::NotApplicable || *n > 0)
        .collect()
}

/// Splits a suite message into trimmed, non-empty lines.
pub fn message_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_order_like_the_suite() {
        assert!(Status::Disabled < Status::Skip);
        assert!(Status::Skip < Status::Pass);
        assert!(Status::Pass < Status::Fail);
        assert!(Status::Fail < Status::Error);
        assert!(Status::NotApplicable < Status::Disabled);
    }

    #[test]
    fn results_words_parse_in_any_case() {
        assert_eq!(Status::from_results_word("FAIL"), Some(Status::Fail));
        assert_eq!(Status::from_results_word("fail"), Some(Status::Fail));
        assert_eq!(Status::from_results_word("Pass"), Some(Status::Pass));
        assert_eq!(
            Status::from_results_word("Disabled"),
            Some(Status::Disabled)
        );
        assert_eq!(Status::from_results_word("Unknown"), None);
    }

    #[test]
    fn totals_keep_zero_counts_except_na() {
        let t = totals([Status::Pass, Status::Pass, Status::Fail].into_iter());
        assert_eq!(
            t,
            vec![
                (Status::Pass, 2),
                (Status::Fail, 1),
                (Status::Error, 0),
                (Status::Skip, 0),
                (Status::Disabled, 0)
            ]
        );
    }
}
