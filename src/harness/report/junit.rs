//! JUnit XML: one `<testsuite>` per section, one `<testcase>` per check, with real
//! `<failure>` and `<skipped>` elements so CI systems count them.

use std::fmt::Write as _;

use super::{escape, Report};
use crate::harness::verdict::Verdict;

/// Renders the report as JUnit XML.
pub fn render_junit(r: &Report) -> String {
    let t = r.totals();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"marina check {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        escape(&r.target),
        r.outcomes.len(),
        t.failed,
        t.unsupported + t.skipped + t.not_permitted,
        r.millis as f64 / 1000.0
    );
    for (section, c) in r.sections() {
        let outcomes: Vec<_> = r.outcomes.iter().filter(|o| o.section == section).collect();
        let time: u64 = outcomes.iter().map(|o| o.millis).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            section,
            outcomes.len(),
            c.failed,
            c.unsupported + c.skipped + c.not_permitted,
            time as f64 / 1000.0
        );
        for o in outcomes {
            let _ = write!(
                out,
                "    <testcase classname=\"marina.check.{}\" name=\"{}\" time=\"{:.3}\"",
                section,
                escape(&o.id),
                o.millis as f64 / 1000.0
            );
            match &o.verdict {
                Verdict::Pass => out.push_str("/>\n"),
                Verdict::Fail(f) => {
                    let level = o.level.as_deref().unwrap_or("?");
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{} {level}: {}\" type=\"{level}\">{}\n\n{}</failure>\n    </testcase>",
                        f.requirement,
                        escape(f.expected.lines().next().unwrap_or("")),
                        escape(&f.expected),
                        escape(&f.transcript)
                    );
                }
                Verdict::Unsupported { reason } => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"unsupported: {}\"/>\n    </testcase>",
                        escape(reason)
                    );
                }
                Verdict::Skipped { reason } => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"skipped: {}\"/>\n    </testcase>",
                        escape(reason)
                    );
                }
                Verdict::NotPermitted { reason } => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"not permitted: {}\"/>\n    </testcase>",
                        escape(reason)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
