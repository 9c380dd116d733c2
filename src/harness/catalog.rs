//! The requirement catalog: `spec/requirements.toml`, compiled into the binary.
//!
//! Every normative sentence of the spec has an entry with its level, whom it binds
//! and the checks covering it. Tests keep the catalog and the checks' own
//! declarations in agreement.

use serde::{Deserialize, Serialize};

/// The catalog's source text.
pub const REQUIREMENTS_TOML: &str = include_str!("../../spec/requirements.toml");

/// One normative sentence of the spec, paraphrased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// `R001` … `R154`.
    pub id: String,
    /// Line of the sentence in the spec at the pinned commit.
    pub line: u32,
    /// Spec heading.
    pub section: String,
    /// `MUST`, `MUST NOT`, `SHOULD` or `SHOULD NOT`.
    pub level: String,
    /// `registry`, `client`, `data` or `registry+client`.
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

    #[test]
    fn ids_are_unique_and_in_spec_order() {
        let reqs = requirements();
        assert_eq!(reqs.len(), 154, "the spec has 154 normative sentences");
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(
                r.id,
                format!("R{:03}", i + 1),
                "ids run R001..R154 without gaps or duplicates"
            );
            assert!(
                ["MUST", "MUST NOT", "SHOULD", "SHOULD NOT"].contains(&r.level.as_str()),
                "{}: level {}",
                r.id,
                r.level
            );
            assert!(
                ["registry", "client", "data", "registry+client"].contains(&r.binds.as_str()),
                "{}: binds {}",
                r.id,
                r.binds
            );
            assert!(!r.text.is_empty() && !r.section.is_empty(), "{}", r.id);
        }
        let lines: Vec<u32> = reqs.iter().map(|r| r.line).collect();
        assert!(
            lines.windows(2).all(|w| w[0] < w[1]),
            "lines increase with ids"
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
