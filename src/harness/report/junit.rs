//! JUnit XML: one `<testsuite>` per section, one `<testcase>` per check, with real
//! `<failure>` and `<skipped>` elements so CI systems count them. Written with
//! quick-xml, which escapes every attribute and text.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::Report;
use crate::harness::verdict::Verdict;

/// Renders the report as JUnit XML.
pub fn render_junit(r: &Report) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_report(&mut w, r).expect("writing XML into memory cannot fail");
    let mut out = String::from_utf8(w.into_inner()).expect("the writer writes UTF-8");
    out.push('\n');
    out
}

/// `s` with the characters XML 1.0 cannot hold at all, escaped or not (control
/// characters other than tab and line ends, which a registry's answer may
/// carry), replaced by U+FFFD, so the file stays well-formed.
fn xml_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn seconds(millis: u64) -> String {
    format!("{:.3}", millis as f64 / 1000.0)
}

fn write_report(w: &mut Writer<Vec<u8>>, r: &Report) -> std::io::Result<()> {
    let t = r.totals();
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let name = format!("marina check {}", r.target);
    w.write_event(Event::Start(BytesStart::new("testsuites").with_attributes(
        [
            ("name", name.as_str()),
            ("tests", &r.outcomes.len().to_string()),
            ("failures", &t.failed.to_string()),
            (
                "skipped",
                &(t.unsupported + t.skipped + t.not_permitted).to_string(),
            ),
            ("time", &seconds(r.millis)),
        ],
    )))?;
    for (section, c) in r.sections() {
        let outcomes: Vec<_> = r.outcomes.iter().filter(|o| o.section == section).collect();
        let time: u64 = outcomes.iter().map(|o| o.millis).sum();
        let section = section.to_string();
        w.write_event(Event::Start(BytesStart::new("testsuite").with_attributes(
            [
                ("name", section.as_str()),
                ("tests", &outcomes.len().to_string()),
                ("failures", &c.failed.to_string()),
                (
                    "skipped",
                    &(c.unsupported + c.skipped + c.not_permitted).to_string(),
                ),
                ("time", &seconds(time)),
            ],
        )))?;
        for o in outcomes {
            let class = format!("marina.check.{section}");
            let case = BytesStart::new("testcase").with_attributes([
                ("classname", class.as_str()),
                ("name", &o.id),
                ("time", &seconds(o.millis)),
            ]);
            let skipped = |why: &str, reason: &str| {
                let message = xml_safe(&format!("{why}: {reason}"));
                BytesStart::new("skipped").with_attributes([("message", message.as_str())])
            };
            let inner = match &o.verdict {
                Verdict::Pass => {
                    w.write_event(Event::Empty(case))?;
                    continue;
                }
                Verdict::Fail(f) => {
                    let level = o.level.as_deref().unwrap_or("?");
                    let message = xml_safe(&format!(
                        "{} {level}: {}",
                        f.requirement,
                        f.expected.lines().next().unwrap_or("")
                    ));
                    let failure = BytesStart::new("failure")
                        .with_attributes([("message", message.as_str()), ("type", level)]);
                    let text = xml_safe(&format!("{}\n\n{}", f.expected, f.transcript));
                    w.write_event(Event::Start(case))?;
                    w.write_event(Event::Start(failure))?;
                    w.write_event(Event::Text(BytesText::new(&text)))?;
                    w.write_event(Event::End(BytesEnd::new("failure")))?;
                    w.write_event(Event::End(BytesEnd::new("testcase")))?;
                    continue;
                }
                Verdict::Unsupported { reason } => skipped("unsupported", reason),
                Verdict::Skipped { reason } => skipped("skipped", reason),
                Verdict::NotPermitted { reason } => skipped("not permitted", reason),
            };
            w.write_event(Event::Start(case))?;
            w.write_event(Event::Empty(inner))?;
            w.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::verdict::{Failure, Outcome, Section};

    #[test]
    fn markup_and_control_characters_in_a_transcript_stay_well_formed() {
        let r = Report {
            target: "http://127.0.0.1:1".into(),
            version: "0".into(),
            seed: 1,
            cases: 1,
            millis: 1,
            outcomes: vec![Outcome {
                id: "push.a\"b".into(),
                section: Section::Push,
                title: "t".into(),
                covers: vec![],
                verdict: Verdict::Fail(Failure {
                    requirement: "R001".into(),
                    expected: "expected <202> & 'more'".into(),
                    transcript: "< 200\n]]>\u{1}\u{1b}[0m".into(),
                }),
                level: Some("MUST".into()),
                millis: 1,
            }],
            cleanup: String::new(),
        };
        let xml = render_junit(&r);
        // It parses to the end; markup is escaped and control characters replaced.
        let mut reader = quick_xml::Reader::from_str(&xml);
        while reader.read_event().expect("well-formed XML") != Event::Eof {}
        assert!(xml.contains("expected &lt;202&gt; &amp;"), "{xml}");
        assert!(xml.contains("]]&gt;\u{FFFD}\u{FFFD}[0m"), "{xml}");
        assert!(!xml.contains('\u{1}'), "{xml}");
        assert!(xml.contains("name=\"push.a&quot;b\""), "{xml}");
    }
}
