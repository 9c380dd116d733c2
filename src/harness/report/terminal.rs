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
    let t = r.totals();
    // The column appears only when access control refused something, so the
    // usual table stays as it was.
    let denied = t.not_permitted > 0;
    let row = |out: &mut String, name: &str, c: &super::Counts| {
        let _ = write!(
            out,
            "{:<12} {:>7} {:>7} {:>12} {:>8}",
            name, c.passed, c.failed, c.unsupported, c.skipped
        );
        if denied {
            let _ = write!(out, " {:>14}", c.not_permitted);
        }
        out.push('\n');
    };
    let _ = write!(
        out,
        "{:<12} {:>7} {:>7} {:>12} {:>8}",
        "section", "passed", "failed", "unsupported", "skipped"
    );
    if denied {
        let _ = write!(out, " {:>14}", "not permitted");
    }
    out.push('\n');
    for (s, c) in r.sections() {
        row(&mut out, s.as_str(), &c);
    }
    row(&mut out, "total", &t);
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
    let refused: Vec<_> = r
        .outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Verdict::NotPermitted { reason } => Some((o, reason)),
            _ => None,
        })
        .collect();
    if !refused.is_empty() {
        let _ = writeln!(
            out,
            "\nNot permitted (401 or 403 for these credentials; not counted as failures):"
        );
        for (o, reason) in refused {
            let _ = writeln!(out, "  {:<34} {reason}", o.id);
        }
        let _ = writeln!(
            out,
            "  Hint: --repo-prefix NAMESPACE to work where these credentials may push, \
             --no-push to only read, --no-delete to leave what the run creates."
        );
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
