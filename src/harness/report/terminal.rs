//! The terminal summary: a table per section, then failed requirements (MUST first),
//! then what the registry does not support.

use std::fmt::Write as _;

use super::Report;
use crate::harness::verdict::Verdict;

/// Renders the summary; `verbose` adds each failure's transcript.
pub fn render_terminal(r: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "marina check {}: {} checks in {:.1} s (seed {}, {} cases per property)\n",
        r.target,
        r.outcomes.len(),
        r.millis as f64 / 1000.0,
        r.seed,
        r.cases
    );
    let _ = writeln!(
        out,
        "{:<12} {:>7} {:>7} {:>12} {:>8}",
        "section", "passed", "failed", "unsupported", "skipped"
    );
    for (s, c) in r.sections() {
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:>7} {:>12} {:>8}",
            s.as_str(),
            c.passed,
            c.failed,
            c.unsupported,
            c.skipped
        );
    }
    let t = r.totals();
    let _ = writeln!(
        out,
        "{:<12} {:>7} {:>7} {:>12} {:>8}",
        "total", t.passed, t.failed, t.unsupported, t.skipped
    );
    let mut failures: Vec<_> = r
        .outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Fail(_)))
        .collect();
    failures.sort_by_key(|o| !o.is_must_failure());
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailed requirements:");
        for o in failures {
            if let Verdict::Fail(f) = &o.verdict {
                let level = o.level.as_deref().unwrap_or("?");
                let _ = writeln!(out, "  {} {:<10} {}", f.requirement, level, o.id);
                for line in f.expected.lines() {
                    let _ = writeln!(out, "      {line}");
                }
                if verbose {
                    for line in f.transcript.lines() {
                        let _ = writeln!(out, "        {line}");
                    }
                }
            }
        }
    }
    let unsupported: Vec<_> = r
        .outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Verdict::Unsupported { reason } => Some((o, reason)),
            _ => None,
        })
        .collect();
    if !unsupported.is_empty() {
        let _ = writeln!(out, "\nNot supported (answers the spec allows):");
        for (o, reason) in unsupported {
            let _ = writeln!(out, "  {:<34} {reason}", o.id);
        }
    }
    let _ = writeln!(out, "\n{}", r.cleanup);
    let musts = r.must_failures().len();
    let _ = if musts == 0 {
        writeln!(out, "Result: every MUST checked passed")
    } else {
        writeln!(out, "Result: {musts} check(s) failed a MUST requirement")
    };
    out
}
