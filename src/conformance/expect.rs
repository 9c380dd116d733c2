//! `--expect FILE`: the known failures of a registry under development.
//!
//! The file is plain text, one table row per line, written exactly as the
//! summary prints it: `Section: name`, e.g. `API: Blob chunked`,
//! `Data: Blobs sha512` or `Push: Blob Upload Chunked Retry previous blob chunk
//! should return 416`. Blank lines and lines starting with `#` are ignored, and
//! the section is matched without regard to case. A listed row that fails (or,
//! with `--strict`, is skipped or disabled) does not fail the run; a listed row
//! that passes is reported so the file can shrink; a line that names no row is
//! reported as a likely typo.

use std::path::Path;

use anyhow::{bail, Context};

use super::outcome::Row;

/// One expected failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The section, as written.
    pub section: String,
    /// The row name, as written.
    pub name: String,
    /// The line it came from, for messages.
    pub line: usize,
}

impl Expectation {
    /// True when this expectation names `row`.
    pub fn matches(&self, row: &Row) -> bool {
        self.section.eq_ignore_ascii_case(&row.section) && self.name == row.name
    }

    /// The `Section: name` form.
    pub fn key(&self) -> String {
        format!("{}: {}", self.section, self.name)
    }
}

/// Parses the text of an expectations file.
pub fn parse(text: &str) -> anyhow::Result<Vec<Expectation>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((section, name)) = line.split_once(':') else {
            bail!(
                "line {}: {line:?} is not `Section: name` (e.g. `API: Blob chunked`)",
                i + 1
            );
        };
        let (section, name) = (section.trim(), name.trim());
        if section.is_empty() || name.is_empty() {
            bail!("line {}: {line:?} is not `Section: name`", i + 1);
        }
        out.push(Expectation {
            section: section.to_string(),
            name: name.to_string(),
            line: i + 1,
        });
    }
    Ok(out)
}

/// Reads and parses an expectations file.
pub fn load(path: &Path) -> anyhow::Result<Vec<Expectation>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the expectations file {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Renders rows as an expectations file, e.g. to start one from a run.
#[cfg(test)]
pub fn render(rows: &[&Row]) -> String {
    let mut out = String::from("# Known failures for `marina conformance --expect`.\n");
    for row in rows {
        out.push_str(&row.key());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::outcome::Status;

    #[test]
    fn parses_sections_names_and_comments() {
        let e =
            parse("# known\n\nAPI: Blob chunked\n  data:  Blobs sha512  \nPush: a: b\n").unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].key(), "API: Blob chunked");
        assert_eq!(e[1].section, "data");
        assert_eq!(e[1].name, "Blobs sha512");
        assert_eq!(e[1].line, 4);
        assert_eq!(e[2].name, "a: b", "only the first colon separates");
        let row = Row {
            section: "Data".into(),
            name: "Blobs sha512".into(),
            status: Status::Fail,
            note: None,
        };
        assert!(e[1].matches(&row));
        assert!(!e[0].matches(&row));
    }

    #[test]
    fn malformed_lines_are_errors_with_their_number() {
        let err = parse("API: ok\nBlob chunked\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse("API:\n").is_err());
        assert!(parse(": name\n").is_err());
    }

    #[test]
    fn render_round_trips() {
        let row = Row {
            section: "API".into(),
            name: "Referrers".into(),
            status: Status::Fail,
            note: None,
        };
        let back = parse(&render(&[&row])).unwrap();
        assert!(back[0].matches(&row));
    }
}
