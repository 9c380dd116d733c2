//! The requirement catalog: `spec/requirements.toml`, compiled into the binary.
//!
//! Every normative sentence has an entry with its level, whom it binds and the
//! checks covering it. Sentences come from three kinds of documents, told apart by
//! `source` and by the id's letter: the spec itself (`spec.md`, `R001`…), the
//! spec's extension rules (`extensions/README.md` and `extensions/_oci.md`,
//! `X001`…), and Marina's own extension definition (`spec/extensions/_marina.md`,
//! `M001`…). Tests keep the catalog and the checks' own declarations in agreement.

use serde::{Deserialize, Serialize};

/// The catalog's source text.
pub const REQUIREMENTS_TOML: &str = include_str!("../../spec/requirements.toml");

/// The document of the spec proper.
pub const SPEC: &str = "spec.md";
/// The spec's rules for extensions.
pub const EXTENSIONS_README: &str = "extensions/README.md";
/// The spec's base extension, `_oci` (discovery).
pub const EXTENSIONS_OCI: &str = "extensions/_oci.md";
/// Marina's listing extension, defined in this repository.
pub const MARINA_EXTENSION: &str = "spec/extensions/_marina.md";

#[cfg(test)]
/// Every source, in catalog order, with the letter of its ids.
pub const SOURCES: [(&str, char); 4] = [
    (SPEC, 'R'),
    (EXTENSIONS_README, 'X'),
    (EXTENSIONS_OCI, 'X'),
    (MARINA_EXTENSION, 'M'),
];

#[cfg(test)]
/// The text of `spec/extensions/_marina.md`, which the `M` lines point into.
pub const MARINA_EXTENSION_MD: &str = include_str!("../../spec/extensions/_marina.md");

fn default_source() -> String {
    SPEC.to_string()
}

/// One normative sentence, paraphrased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// `R001`… (spec.md), `X001`… (the extension rules) or `M001`… (`_marina`).
    pub id: String,
    /// The document the sentence is in (default `spec.md`); see [`SOURCES`].
    #[serde(default = "default_source")]
    pub source: String,
    /// Line of the sentence in its document (for the spec's documents, at the
    /// commit named in the catalog's header).
    pub line: u32,
    /// Heading the sentence sits under.
    pub section: String,
    /// `MUST`, `MUST NOT`, `SHOULD` or `SHOULD NOT`.
    pub level: String,
    /// `registry`, `client`, `data`, `registry+client`, or `definition` (the
    /// authors of an extension's definition document).
    pub binds: String,
    /// The paraphrase.
    pub text: String,
    /// Checks that cover it.
    #[serde(default)]
    pub checks: Vec<String>,
}

impl Requirement {
    /// A MUST or MUST NOT.
    pub fn is_must(&self) -> bool {
        self.level.starts_with("MUST")
    }

    /// Observable by talking HTTP to a registry.
    pub fn is_registry_observable(&self) -> bool {
        self.binds.starts_with("registry")
    }

    #[cfg(test)]
    /// From one of the spec's extension documents or an extension's definition
    /// (not from `spec.md`).
    pub fn is_extension(&self) -> bool {
        self.source != SPEC
    }
}

#[derive(Deserialize)]
struct File {
    requirement: Vec<Requirement>,
}

/// Parses a catalog text.
pub fn parse(text: &str) -> Result<Vec<Requirement>, toml::de::Error> {
    Ok(toml::from_str::<File>(text)?.requirement)
}

/// The built-in catalog.
pub fn requirements() -> &'static [Requirement] {
    static CELL: std::sync::OnceLock<Vec<Requirement>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| parse(REQUIREMENTS_TOML).expect("spec/requirements.toml parses"))
}

/// Looks a requirement up by id.
pub fn find(id: &str) -> Option<&'static Requirement> {
    requirements().iter().find(|r| r.id == id)
}

#[cfg(test)]
/// For every requirement id, the checks that declare they cover it (from code).
pub fn coverage_from_checks() -> std::collections::BTreeMap<String, Vec<String>> {
    let mut map: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for c in super::checks::all() {
        for r in c.covers {
            map.entry(r.to_string()).or_default().push(c.id.to_string());
        }
    }
    for ids in map.values_mut() {
        ids.sort();
    }
    map
}

#[cfg(test)]
/// Rewrites the `checks = [...]` lines of a catalog text from `coverage`.
pub fn rewrite_checks(
    text: &str,
    coverage: &std::collections::BTreeMap<String, Vec<String>>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(id) = line
            .strip_prefix("id = \"")
            .and_then(|r| r.strip_suffix('"'))
        {
            current = Some(id.to_string());
        }
        if line.starts_with("checks = ") {
            let ids = current
                .as_ref()
                .and_then(|id| coverage.get(id))
                .cloned()
                .unwrap_or_default();
            let quoted: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
            out.push_str(&format!("checks = [{}]\n", quoted.join(", ")));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [&str; 4] = ["MUST", "MUST NOT", "SHOULD", "SHOULD NOT"];
    const BINDS: [&str; 5] = [
        "registry",
        "client",
        "data",
        "registry+client",
        "definition",
    ];

    #[test]
    fn ids_are_unique_and_in_document_order() {
        let reqs = requirements();
        let spec: Vec<&Requirement> = reqs.iter().filter(|r| r.source == SPEC).collect();
        assert_eq!(spec.len(), 154, "spec.md has 154 normative sentences");
        // Per letter, ids run 001.. without gaps, in catalog order; the letter
        // follows from the source.
        for letter in ['R', 'X', 'M'] {
            let ids: Vec<&str> = reqs
                .iter()
                .filter(|r| r.id.starts_with(letter))
                .map(|r| r.id.as_str())
                .collect();
            assert!(!ids.is_empty(), "no {letter} requirement");
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(*id, format!("{letter}{:03}", i + 1), "ids run without gaps");
            }
        }
        let mut last_source = 0;
        for r in reqs {
            let (at, (_, letter)) = SOURCES
                .iter()
                .enumerate()
                .find(|(_, (s, _))| *s == r.source)
                .unwrap_or_else(|| panic!("{}: unknown source {:?}", r.id, r.source));
            assert!(
                r.id.starts_with(*letter),
                "{} comes from {}",
                r.id,
                r.source
            );
            assert!(
                at >= last_source,
                "{}: sources appear in SOURCES order",
                r.id
            );
            last_source = at;
            assert!(
                LEVELS.contains(&r.level.as_str()),
                "{}: level {}",
                r.id,
                r.level
            );
            assert!(
                BINDS.contains(&r.binds.as_str()),
                "{}: binds {}",
                r.id,
                r.binds
            );
            assert!(!r.text.is_empty() && !r.section.is_empty(), "{}", r.id);
            assert!(
                r.binds != "definition" || r.is_extension(),
                "{}: only extension documents bind a definition",
                r.id
            );
        }
        for (source, _) in SOURCES {
            let lines: Vec<u32> = reqs
                .iter()
                .filter(|r| r.source == source)
                .map(|r| r.line)
                .collect();
            assert!(!lines.is_empty(), "nothing from {source}");
            assert!(
                lines.windows(2).all(|w| w[0] < w[1]),
                "lines of {source} increase with ids"
            );
        }
    }

    /// Each `M` requirement points at a line of `_marina.md` that carries its
    /// keyword, so editing the definition without the catalog (or the reverse)
    /// fails here; and every keyword line of the definition is in the catalog.
    #[test]
    fn marina_requirements_point_at_their_sentences() {
        let lines: Vec<&str> = MARINA_EXTENSION_MD.lines().collect();
        let marina: Vec<&Requirement> = requirements()
            .iter()
            .filter(|r| r.source == MARINA_EXTENSION)
            .collect();
        for r in &marina {
            let line = lines
                .get(r.line as usize - 1)
                .unwrap_or_else(|| panic!("{}: line {} is past the end", r.id, r.line));
            let keyword = r.level.split(' ').next().expect("a level");
            assert!(
                line.contains(keyword),
                "{}: line {} of _marina.md has no {keyword}: {line}",
                r.id,
                r.line
            );
        }
        let normative: Vec<u32> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("MUST") || l.contains("SHOULD"))
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let cataloged: Vec<u32> = marina.iter().map(|r| r.line).collect();
        assert_eq!(
            normative, cataloged,
            "every normative line of _marina.md has one M id"
        );
    }

    #[test]
    fn checks_name_known_requirements_and_have_unique_ids() {
        let mut ids = std::collections::BTreeSet::new();
        for c in crate::harness::checks::all() {
            assert!(ids.insert(c.id), "duplicate check id {}", c.id);
            assert!(
                c.id.starts_with(&format!("{}.", c.section)),
                "{} is in section {}",
                c.id,
                c.section
            );
            assert!(!c.covers.is_empty(), "{} covers no requirement", c.id);
            for r in c.covers {
                assert!(find(r).is_some(), "{} names unknown requirement {r}", c.id);
            }
        }
    }

    #[test]
    fn every_registry_must_is_checked() {
        let coverage = coverage_from_checks();
        let uncovered: Vec<&str> = requirements()
            .iter()
            .filter(|r| r.is_must() && r.is_registry_observable() && !coverage.contains_key(&r.id))
            .map(|r| r.id.as_str())
            .collect();
        assert!(
            uncovered.is_empty(),
            "registry-observable MUSTs without a check: {uncovered:?}"
        );
    }

    /// The toml's `checks` lists equal what the checks declare.
    /// `MARINA_BLESS_REQUIREMENTS=1 cargo test` rewrites them from the code.
    #[test]
    fn toml_lists_agree_with_code() {
        let coverage = coverage_from_checks();
        let expected = rewrite_checks(REQUIREMENTS_TOML, &coverage);
        if std::env::var_os("MARINA_BLESS_REQUIREMENTS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/requirements.toml");
            std::fs::write(path, &expected).expect("write spec/requirements.toml");
            return;
        }
        let diffs: Vec<String> = requirements()
            .iter()
            .filter(|r| coverage.get(&r.id).cloned().unwrap_or_default() != r.checks)
            .map(|r| {
                format!(
                    "{}: toml {:?}, code {:?}",
                    r.id,
                    r.checks,
                    coverage.get(&r.id)
                )
            })
            .collect();
        assert!(diffs.is_empty(), "spec/requirements.toml disagrees with the checks (MARINA_BLESS_REQUIREMENTS=1 rewrites it):\n{}", diffs.join("\n"));
    }

    #[test]
    fn rewrite_replaces_only_check_lists() {
        let text = "[[requirement]]\nid = \"R001\"\nchecks = [\"old\"]\n\n[[requirement]]\nid = \"R002\"\nchecks = []\n";
        let mut cov = std::collections::BTreeMap::new();
        cov.insert(
            "R002".to_string(),
            vec!["a.b".to_string(), "c.d".to_string()],
        );
        assert_eq!(
            rewrite_checks(text, &cov),
            "[[requirement]]\nid = \"R001\"\nchecks = []\n\n[[requirement]]\nid = \"R002\"\nchecks = [\"a.b\", \"c.d\"]\n"
        );
    }
}
