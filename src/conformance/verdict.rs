//! The run's verdict and exit code, from the outcome, `--strict` and
//! `--expect`.
//!
//! Exit codes: 0 when nothing failed; 1 when a row failed that was not expected
//! to (with `--strict`, a Skip or Disabled row counts as failed), or when no row
//! passed at all; 2 when the run cannot be judged (no usable reports, a timeout,
//! or reports that contradict the suite's exit code).

use super::expect::Expectation;
use super::outcome::{Outcome, Row, Status};

/// The three possible judgements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Nothing failed that was not expected to.
    Pass,
    /// Something failed.
    Fail,
    /// The reports cannot be trusted or do not exist.
    NotJudged,
}

/// The verdict with everything the summary needs to explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The judgement.
    pub judgement: Judgement,
    /// Rows that failed (or, with `--strict`, were skipped) and were not expected to.
    pub new_failures: Vec<Row>,
    /// Rows that failed as the expectations file said they would.
    pub expected_failures: Vec<Row>,
    /// Expectations whose rows did not fail, with their best status.
    pub unexpected_passes: Vec<(Expectation, Status)>,
    /// Expectations that name no row (probably typos).
    pub unmatched: Vec<Expectation>,
    /// Why the run cannot be judged, when it cannot.
    pub problems: Vec<String>,
    /// True when no row passed.
    pub nothing_passed: bool,
}

impl Verdict {
    /// The process exit code for this verdict.
    pub fn exit_code(&self) -> u8 {
        match self.judgement {
            Judgement::Pass => 0,
            Judgement::Fail => 1,
            Judgement::NotJudged => 2,
        }
    }

    /// The verdict of a run that produced no usable outcome.
    pub fn not_judged(problem: String) -> Verdict {
        Verdict {
            judgement: Judgement::NotJudged,
            new_failures: Vec::new(),
            expected_failures: Vec::new(),
            unexpected_passes: Vec::new(),
            unmatched: Vec::new(),
            problems: vec![problem],
            nothing_passed: false,
        }
    }
}

/// True when a row fails the run (before expectations are applied).
pub fn offends(row: &Row, strict: bool) -> bool {
    row.status.is_failure() || (strict && row.status.is_gap())
}

/// Decides the verdict of an outcome.
pub fn decide(outcome: &Outcome, expectations: &[Expectation], strict: bool) -> Verdict {
    let mut new_failures = Vec::new();
    let mut expected_failures = Vec::new();
    for row in outcome.rows.iter().filter(|r| offends(r, strict)) {
        if expectations.iter().any(|e| e.matches(row)) {
            expected_failures.push(row.clone());
        } else {
            new_failures.push(row.clone());
        }
    }
    let mut unexpected_passes = Vec::new();
    let mut unmatched = Vec::new();
    for e in expectations {
        let matched: Vec<&Row> = outcome.rows.iter().filter(|r| e.matches(r)).collect();
        if matched.is_empty() {
            unmatched.push(e.clone());
        } else if !matched.iter().any(|r| offends(r, strict)) {
            let best = matched
                .iter()
                .map(|r| r.status)
                .max()
                .unwrap_or(Status::Pass);
            unexpected_passes.push((e.clone(), best));
        }
    }
    let mut problems = outcome.problems.clone();
    if outcome.rows.is_empty() {
        problems.push("the reports list no test at all".to_string());
    }
    let nothing_passed = !outcome.rows.iter().any(|r| r.status == Status::Pass);
    let judgement = if !problems.is_empty() {
        Judgement::NotJudged
    } else if !new_failures.is_empty() || nothing_passed {
        Judgement::Fail
    } else {
        Judgement::Pass
    };
    Verdict {
        judgement,
        new_failures,
        expected_failures,
        unexpected_passes,
        unmatched,
        problems,
        nothing_passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::expect;
    use crate::conformance::kind::SuiteKind;

    fn outcome(rows: &[(&str, &str, Status)]) -> Outcome {
        Outcome {
            kind: SuiteKind::Current,
            suite_version: None,
            rows: rows
                .iter()
                .map(|(s, n, st)| Row {
                    section: s.to_string(),
                    name: n.to_string(),
                    status: *st,
                    note: None,
                })
                .collect(),
            tests: Vec::new(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn all_pass_is_exit_0_and_any_failure_is_exit_1() {
        let o = outcome(&[
            ("API", "Ping", Status::Pass),
            ("Data", "Image", Status::Skip),
        ]);
        assert_eq!(decide(&o, &[], false).exit_code(), 0);
        let o = outcome(&[
            ("API", "Ping", Status::Pass),
            ("API", "Referrers", Status::Error),
        ]);
        let v = decide(&o, &[], false);
        assert_eq!(v.exit_code(), 1);
        assert_eq!(v.new_failures[0].name, "Referrers");
    }

    #[test]
    fn strict_fails_on_skip_and_disabled_but_not_na() {
        let o = outcome(&[
            ("API", "Ping", Status::Pass),
            ("Data", "Image", Status::Skip),
            ("Data", "Sparse", Status::Disabled),
            ("Push", "alt", Status::NotApplicable),
        ]);
        let v = decide(&o, &[], true);
        assert_eq!(v.exit_code(), 1);
        let names: Vec<&str> = v.new_failures.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["Image", "Sparse"]);
    }

    #[test]
    fn expectations_cover_known_failures_and_report_fixed_ones() {
        let o = outcome(&[
            ("API", "Ping", Status::Pass),
            ("API", "Blob chunked", Status::Fail),
            ("API", "Referrers", Status::Pass),
        ]);
        let e = expect::parse("API: Blob chunked\napi: Referrers\nAPI: Nope\n").unwrap();
        let v = decide(&o, &e, false);
        assert_eq!(v.exit_code(), 0);
        assert_eq!(v.expected_failures.len(), 1);
        assert_eq!(v.unexpected_passes.len(), 1);
        assert_eq!(v.unexpected_passes[0].0.name, "Referrers");
        assert_eq!(v.unmatched[0].name, "Nope");

        let o = outcome(&[
            ("API", "Ping", Status::Pass),
            ("API", "Tag listing", Status::Fail),
        ]);
        assert_eq!(
            decide(&o, &e, false).exit_code(),
            1,
            "a new failure still fails"
        );
    }

    #[test]
    fn nothing_passed_fails_and_problems_are_not_judged() {
        let o = outcome(&[("API", "Ping", Status::Skip)]);
        let v = decide(&o, &[], false);
        assert!(v.nothing_passed);
        assert_eq!(v.exit_code(), 1);
        let mut o = outcome(&[("API", "Ping", Status::Pass)]);
        o.problems.push("exit code mismatch".into());
        assert_eq!(decide(&o, &[], false).exit_code(), 2);
        assert_eq!(decide(&outcome(&[]), &[], false).exit_code(), 2);
    }
}
