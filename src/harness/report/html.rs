//! A self-contained HTML page: summary, one table per section, each failure's
//! transcript in a collapsible `<details>` block. No external assets.

use std::fmt::Write as _;

use super::{escape, Report};
use crate::harness::verdict::Verdict;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
.pass{color:#17702d}.fail{color:#b00020;font-weight:bold}.unsupported{color:#7a5c00}.skipped{color:#666}.not-permitted{color:#8a3ffc}\
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}summary{cursor:pointer}";

/// Renders the report as one HTML page.
pub fn render_html(r: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>marina check {}</title><style>{STYLE}</style></head><body>\n",
        escape(&r.target)
    );
    let musts = r.must_failures().len();
    let _ = writeln!(out, "<h1>marina check {}</h1>", escape(&r.target));
    let _ = writeln!(
        out,
        "<p>Marina {} &middot; {} checks in {:.1} s &middot; seed {} &middot; {} cases per property &middot; {}</p>",
        escape(&r.version),
        r.outcomes.len(),
        r.millis as f64 / 1000.0,
        r.seed,
        r.cases,
        if musts == 0 { "<span class=\"pass\">every MUST passed</span>".to_string() } else { format!("<span class=\"fail\">{musts} check(s) failed a MUST</span>") }
    );
    out.push_str("<h2>Summary</h2>\n<table><tr><th>section</th><th>passed</th><th>failed</th><th>unsupported</th><th>skipped</th><th>not permitted</th></tr>\n");
    for (s, c) in r.sections() {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#{s}\">{s}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.passed, c.failed, c.unsupported, c.skipped, c.not_permitted
        );
    }
    out.push_str("</table>\n");
    for (s, _) in r.sections() {
        let _ = writeln!(out, "<h2 id=\"{s}\">{s}</h2>\n<table><tr><th>check</th><th>verdict</th><th>covers</th><th>details</th></tr>");
        for o in r.outcomes.iter().filter(|o| o.section == s) {
            let kind = o.verdict.kind();
            let details = match &o.verdict {
                Verdict::Pass => escape(&o.title),
                Verdict::Fail(f) => format!(
                    "<b>{} {}</b>: {}<details><summary>transcript</summary><pre>{}</pre></details>",
                    escape(&f.requirement),
                    escape(o.level.as_deref().unwrap_or("?")),
                    escape(&f.expected).replace('\n', "<br>"),
                    escape(&f.transcript)
                ),
                Verdict::Unsupported { reason }
                | Verdict::Skipped { reason }
                | Verdict::NotPermitted { reason } => escape(reason),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"{kind}\">{kind}</td><td>{}</td><td>{details}</td></tr>",
                escape(&o.id),
                escape(&o.covers.join(" "))
            );
        }
        out.push_str("</table>\n");
    }
    let _ = writeln!(out, "<p>{}</p>\n</body></html>", escape(&r.cleanup));
    out
}
