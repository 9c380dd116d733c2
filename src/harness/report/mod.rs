//! The result of a run and its renderings: terminal summary, JUnit XML, JSON and a
//! self-contained HTML page.

use std::fmt::Write as _;

use serde::Serialize;

use super::verdict::{Outcome, Section, Verdict};

mod html;
mod junit;
mod terminal;

pub use html::render_html;
pub use junit::render_junit;
pub use terminal::render_terminal;

/// Everything a run concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The registry URL.
    pub target: String,
    /// Marina's version.
    pub version: String,
    /// Seed of the property checks.
    pub seed: u64,
    /// Cases per property check.
    pub cases: u32,
    /// Duration of the run in milliseconds.
    pub millis: u64,
    /// One outcome per check, in run order.
    pub outcomes: Vec<Outcome>,
    /// What cleanup did.
    pub cleanup: String,
}

/// Verdict counts of a section (or of the whole run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Unsupported.
    pub unsupported: usize,
    /// Skipped.
    pub skipped: usize,
    /// Refused by the registry's access control (see [`Verdict::NotPermitted`]).
    pub not_permitted: usize,
}

impl Counts {
    fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::Unsupported { .. } => self.unsupported += 1,
            Verdict::Skipped { .. } => self.skipped += 1,
            Verdict::NotPermitted { .. } => self.not_permitted += 1,
        }
    }
}

impl Report {
    /// Counts per section that has checks, in section order.
    pub fn sections(&self) -> Vec<(Section, Counts)> {
        Section::ALL
            .into_iter()
            .filter_map(|s| {
                let mut c = Counts::default();
                let mut any = false;
                for o in self.outcomes.iter().filter(|o| o.section == s) {
                    c.add(&o.verdict);
                    any = true;
                }
                any.then_some((s, c))
            })
            .collect()
    }

    /// Counts over all checks.
    pub fn totals(&self) -> Counts {
        let mut c = Counts::default();
        for o in &self.outcomes {
            c.add(&o.verdict);
        }
        c
    }

    /// Outcomes that failed a MUST or MUST NOT.
    pub fn must_failures(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.is_must_failure())
            .collect()
    }

    /// The process exit code: 0 when every MUST passed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.must_failures().is_empty())
    }

    /// A stable table of check ids, verdicts and failed requirements (no timings,
    /// no transcripts): what the snapshot tests pin.
    pub fn verdict_table(&self) -> String {
        let mut out = String::new();
        for o in &self.outcomes {
            let detail = match &o.verdict {
                Verdict::Fail(f) => {
                    format!("{} {}", f.requirement, o.level.as_deref().unwrap_or("?"))
                }
                _ => String::new(),
            };
            let _ = writeln!(out, "{:<34} {:<12} {}", o.id, o.verdict.kind(), detail).map(|_| ());
        }
        out.lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }
}

pub(crate) use crate::markup::escape;
