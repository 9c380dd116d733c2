//! The text printed after a run: what ran against what, a table of every row
//! with its status, the failing tests with their error lines, totals, where the
//! reports were copied, and the verdict.
//!
//! Rendering is a pure function of its inputs so the exact text is pinned by
//! snapshot tests.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::kind::SuiteKind;
use super::outcome::{totals, Outcome, Status, TestCase};
use super::process::Exit;
use super::verdict::{offends, Judgement, Verdict};

/// Error lines shown per failing test; the rest stays in junit.xml.
const MAX_MESSAGE_LINES: usize = 6;
/// Longest error line shown; longer ones are cut.
const MAX_LINE_CHARS: usize = 240;

/// Everything the summary reports besides the outcome and the verdict.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The suite binary.
    pub suite: PathBuf,
    /// Its kind, when known.
    pub kind: Option<SuiteKind>,
    /// The target, as a URL plus a remark (e.g. "in-process reference server").
    pub target: String,
    /// The two repositories used.
    pub repos: (String, String),
    /// The profile and the options that are off (current suite).
    pub configuration: Vec<String>,
    /// Remarks from preparing the suite.
    pub notes: Vec<String>,
    /// Inherited `OCI_*` variables that were removed.
    pub removed_env: Vec<String>,
    /// How the suite process ended and how long it ran.
    pub run: Option<(Exit, Duration)>,
    /// Where the reports were copied, and which files.
    pub reports: Option<(PathBuf, Vec<String>)>,
    /// The expectations file, when one was given.
    pub expect: Option<PathBuf>,
    /// Whether `--strict` was given.
    pub strict: bool,
}

/// Renders the whole summary.
pub fn render(ctx: &Context, outcome: Option<&Outcome>, verdict: &Verdict) -> String {
    let mut out = String::new();
    header(&mut out, ctx, outcome);
    if let Some(outcome) = outcome {
        table(&mut out, outcome, verdict, ctx.strict);
        failing_tests(&mut out, outcome, ctx.strict);
        totals_section(&mut out, outcome);
    }
    match &ctx.reports {
        Some((dir, files)) => {
            let _ = writeln!(
                out,
                "Reports copied to {}: {}",
                dir.display(),
                files.join(", ")
            );
        }
        None => out.push_str("Reports: none copied\n"),
    }
    out.push('\n');
    expectations(&mut out, ctx, verdict);
    result(&mut out, verdict);
    out
}

fn header(out: &mut String, ctx: &Context, outcome: Option<&Outcome>) {
    let kind = ctx
        .kind
        .map(|k| k.to_string())
        .unwrap_or_else(|| "unknown".into());
    let version = outcome
        .and_then(|o| o.suite_version.as_deref())
        .map(|v| format!(" ({v})"))
        .unwrap_or_default();
    let _ = writeln!(out, "Suite:    {kind}{version}, {}", ctx.suite.display());
    let _ = writeln!(
        out,
        "Target:   {} (repositories {}, {})",
        ctx.target, ctx.repos.0, ctx.repos.1
    );
    for line in &ctx.configuration {
        let _ = writeln!(out, "Config:   {line}");
    }
    for note in &ctx.notes {
        let _ = writeln!(out, "Note:     {note}");
    }
    if !ctx.removed_env.is_empty() {
        let _ = writeln!(
            out,
            "Ignored:  inherited {} (the runner sets the suite's whole configuration)",
            ctx.removed_env.join(", ")
        );
    }
    if let Some((exit, elapsed)) = &ctx.run {
        let _ = writeln!(out, "Run:      {exit} after {:.1}s", elapsed.as_secs_f64());
    }
    out.push('\n');
}

fn table(out: &mut String, outcome: &Outcome, verdict: &Verdict, strict: bool) {
    for section in outcome.sections() {
        let _ = writeln!(out, "{section}");
        for row in outcome.rows.iter().filter(|r| r.section == section) {
            let expected = offends(row, strict) && verdict.expected_failures.contains(row);
            let mut line = format!("  {:<9} {}", row.status.to_string(), row.name);
            if expected {
                line.push_str("  [expected]");
            }
            if let Some(note) = &row.note {
                let _ = write!(line, "  ({note})");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out.push('\n');
    }
}

/// Failing tests grouped by name (the current suite repeats names), in order.
type Group<'a> = (&'a str, Status, usize, Vec<String>);

fn grouped<'a>(tests: impl Iterator<Item = &'a TestCase>) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for t in tests {
        let idx = match groups.iter().position(|g| g.0 == t.name) {
            Some(i) => i,
            None => {
                groups.push((&t.name, t.status, 0, Vec::new()));
                groups.len() - 1
            }
        };
        let g = &mut groups[idx];
        g.1 = g.1.max(t.status);
        g.2 += 1;
        for line in &t.message {
            let shown = shorten_digests(line);
            if !g.3.iter().any(|l| same_but_digests(l, &shown)) {
                g.3.push(shown);
            }
        }
    }
    groups
}

/// Shortens every `algorithm:hex` digest to 12 hex digits: the suite's
/// messages repeat 64- and 128-digit digests that drown the actual error.
pub fn shorten_digests(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        let (before, from) = rest.split_at(pos);
        out.push_str(before);
        let run = from
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(from.len());
        let after_colon = out.ends_with("sha256:") || out.ends_with("sha512:");
        if after_colon && run > 16 {
            out.push_str(&from[..12]);
            out.push_str("...");
        } else {
            out.push_str(&from[..run]);
        }
        rest = &from[run..];
    }
    out.push_str(rest);
    out
}

/// True when two lines differ only in their (shortened) digests.
fn same_but_digests(a: &str, b: &str) -> bool {
    let mask = |s: &str| {
        let mut out = String::new();
        let mut skipping = false;
        for (i, c) in s.char_indices() {
            if skipping && (c.is_ascii_hexdigit() || c == '.') {
                continue;
            }
            skipping = s[..i].ends_with("sha256:") || s[..i].ends_with("sha512:");
            if !skipping {
                out.push(c);
            }
        }
        out
    };
    a == b || mask(a) == mask(b)
}

fn failing_tests(out: &mut String, outcome: &Outcome, strict: bool) {
    for (title, pick) in [
        (
            "Failing tests",
            (|s: Status| s.is_failure()) as fn(Status) -> bool,
        ),
        ("Skipped or disabled tests (--strict)", |s: Status| {
            s.is_gap()
        }),
    ] {
        if title.contains("--strict") && !strict {
            continue;
        }
        let selected: Vec<&TestCase> = outcome.tests.iter().filter(|t| pick(t.status)).collect();
        if selected.is_empty() {
            continue;
        }
        let groups = grouped(selected.iter().copied());
        let _ = writeln!(
            out,
            "{title} ({} in junit.xml, {} distinct)",
            selected.len(),
            groups.len()
        );
        for (name, status, count, lines) in groups {
            let times = if count > 1 {
                format!(" x{count}")
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {status}{times}  {name}");
            for line in lines.iter().take(MAX_MESSAGE_LINES) {
                let _ = writeln!(out, "      {}", cut(line));
            }
            if lines.len() > MAX_MESSAGE_LINES {
                let _ = writeln!(
                    out,
                    "      ... {} more lines in junit.xml",
                    lines.len() - MAX_MESSAGE_LINES
                );
            }
        }
        out.push('\n');
    }
}

fn cut(line: &str) -> String {
    let line = line.trim();
    if line.chars().count() <= MAX_LINE_CHARS {
        return line.to_string();
    }
    let kept: String = line.chars().take(MAX_LINE_CHARS).collect();
    format!("{kept}...")
}

fn counts(list: &[(Status, usize)]) -> String {
    list.iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn totals_section(out: &mut String, outcome: &Outcome) {
    out.push_str("Totals\n");
    let sections = outcome.sections();
    let width = sections.iter().map(|s| s.len()).max().unwrap_or(0).max(9);
    for section in sections {
        let rows: Vec<Status> = outcome
            .rows
            .iter()
            .filter(|r| r.section == section)
            .map(|r| r.status)
            .collect();
        let _ = writeln!(
            out,
            "  {section:<width$}  {:>4}: {}",
            rows.len(),
            counts(&totals(rows.into_iter()))
        );
    }
    if outcome.kind == SuiteKind::Current {
        let _ = writeln!(
            out,
            "  {:<width$}  {:>4}: {}",
            "junit.xml",
            outcome.tests.len(),
            counts(&outcome.test_totals())
        );
    }
    out.push('\n');
}

fn expectations(out: &mut String, ctx: &Context, verdict: &Verdict) {
    let file = ctx
        .expect
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if !verdict.expected_failures.is_empty() {
        let _ = writeln!(
            out,
            "{} expected failures (listed in {file}) did not fail the run.",
            verdict.expected_failures.len()
        );
    }
    if !verdict.unexpected_passes.is_empty() {
        let _ = writeln!(
            out,
            "Expected to fail but did not (remove them from {file}):"
        );
        for (e, status) in &verdict.unexpected_passes {
            let _ = writeln!(out, "  {} (now {status}, line {})", e.key(), e.line);
        }
    }
    if !verdict.unmatched.is_empty() {
        let _ = writeln!(out, "Expectations that name no test (typo?) in {file}:");
        for e in &verdict.unmatched {
            let _ = writeln!(out, "  line {}: {}", e.line, e.key());
        }
    }
    if !verdict.new_failures.is_empty() && ctx.expect.is_some() {
        let _ = writeln!(out, "New failures, not in {file}:");
        for row in &verdict.new_failures {
            let _ = writeln!(out, "  {}", row.key());
        }
    }
    if !verdict.problems.is_empty() {
        out.push_str("Problems:\n");
        for p in &verdict.problems {
            for (i, line) in p.lines().enumerate() {
                let _ = writeln!(out, "{}{line}", if i == 0 { "  - " } else { "    " });
            }
        }
    }
}

fn result(out: &mut String, verdict: &Verdict) {
    let code = verdict.exit_code();
    match verdict.judgement {
        Judgement::Pass => {
            let _ = writeln!(out, "Result: PASS (exit {code})");
        }
        Judgement::NotJudged => {
            let _ = writeln!(
                out,
                "Result: NOT JUDGED (exit {code}): see the problems above"
            );
        }
        Judgement::Fail => {
            let mut by_section: Vec<(String, usize)> = Vec::new();
            for row in &verdict.new_failures {
                match by_section.iter_mut().find(|(s, _)| *s == row.section) {
                    Some((_, n)) => *n += 1,
                    None => by_section.push((row.section.clone(), 1)),
                }
            }
            let mut what: Vec<String> =
                by_section.iter().map(|(s, n)| format!("{n} {s}")).collect();
            if verdict.nothing_passed {
                what.push("no test passed".to_string());
            }
            let _ = writeln!(
                out,
                "Result: FAIL (exit {code}): {} failed",
                what.join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_shortened_and_ignored_when_deduplicating() {
        let a = format!(
            "expected \"sha512:{}\", received \"sha256:{}\"",
            "a".repeat(128),
            "b".repeat(64)
        );
        let b = format!(
            "expected \"sha512:{}\", received \"sha256:{}\"",
            "c".repeat(128),
            "d".repeat(64)
        );
        let short = shorten_digests(&a);
        assert_eq!(
            short,
            "expected \"sha512:aaaaaaaaaaaa...\", received \"sha256:bbbbbbbbbbbb...\""
        );
        assert!(same_but_digests(&short, &shorten_digests(&b)));
        assert!(!same_but_digests(&short, "expected something else"));
        assert_eq!(
            shorten_digests("status 404 at 0xdeadbeef"),
            "status 404 at 0xdeadbeef"
        );
    }
}
