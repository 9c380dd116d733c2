//! The layer rules, checked: each top-level module may name only the modules
//! below it (see the table in `lib.rs`). A test reads every `crate::<module>`
//! path in non-test code and compares it with [`ALLOWED`].

/// Which modules each module may use. `cli` (and `main`) may use everything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("oci", &[]),
    ("timefmt", &[]),
    ("markup", &[]),
    ("logsink", &[]),
    ("metrics", &[]),
    ("tls", &[]),
    ("auth", &["oci"]),
    ("store", &["oci"]),
    // The settings the registry reads (limits, policies) live in `config`.
    ("config", &["auth", "tls", "oci"]),
    // The pull-through cache's client of other registries (HTTP, like `client`,
    // whose header parsers it shares).
    ("upstream", &["client", "oci", "config"]),
    (
        "registry",
        &["store", "oci", "metrics", "config", "upstream"],
    ),
    (
        "api",
        &[
            "registry", "auth", "oci", "metrics", "config", "timefmt", "logsink",
        ],
    ),
    (
        "server",
        &["api", "registry", "auth", "tls", "config", "metrics"],
    ),
    ("embed", &["api", "registry", "store", "config"]),
    ("testing", &["embed", "server", "registry", "store", "oci"]),
    // The tools talk HTTP only, through `client`.
    ("client", &["oci"]),
    ("harness", &["client", "oci", "markup", "timefmt"]),
    ("listing_client", &["client", "oci"]),
    ("bench", &["client", "oci", "markup", "timefmt"]),
    // The runner starts the in-process reference server when no registry is
    // given (and talks to it over HTTP only, like to any other).
    ("conformance", &["server", "config", "timefmt", "client"]),
];

mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::ALLOWED;

    /// `(from, to, place)` for every `crate::<to>` in the non-test code of `from`.
    fn edges(dir: &Path, root: &Path, out: &mut BTreeSet<(String, String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                edges(&path, root, out);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if !rel.ends_with(".rs") || rel.ends_with("tests.rs") || rel.ends_with("_tests.rs") {
                continue;
            }
            let from = rel.split(['/', '.']).next().unwrap().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (n, line) in code.lines().enumerate() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                let mut rest = line;
                while let Some(i) = rest.find("crate::") {
                    rest = &rest[i + "crate::".len()..];
                    let mut names: Vec<&str> = Vec::new();
                    if let Some(group) = rest.strip_prefix('{') {
                        // `use crate::{a::x, b::{y, z}}`: the first segment of each path.
                        let group = group.split('}').next().unwrap_or("");
                        names.extend(group.split(',').filter_map(|p| p.trim().split("::").next()));
                    } else {
                        names.push(
                            rest.split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                                .next()
                                .unwrap(),
                        );
                    }
                    for to in names {
                        if !to.is_empty()
                            && to != from
                            && to.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        {
                            out.insert((
                                from.clone(),
                                to.to_string(),
                                format!("src/{rel}:{}", n + 1),
                            ));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_module_uses_only_the_layers_below_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = BTreeSet::new();
        edges(&root, &root, &mut found);
        // Only modules count (not macros exported at the crate root).
        let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
        let modules: Vec<String> = lib
            .lines()
            .filter_map(|l| l.trim().trim_start_matches("pub ").strip_prefix("mod "))
            .map(|m| m.trim_end_matches(';').to_string())
            .collect();
        found.retain(|(_, to, _)| modules.contains(to));
        assert!(found.len() > 30, "the scan found too few paths: {found:?}");
        let mut broken = Vec::new();
        for (from, to, place) in &found {
            if matches!(from.as_str(), "cli" | "main" | "lib" | "layers") {
                continue;
            }
            let allowed = ALLOWED
                .iter()
                .find(|(m, _)| m == from)
                .unwrap_or_else(|| panic!("module {from} is missing from ALLOWED"));
            if !allowed.1.contains(&to.as_str()) {
                broken.push(format!("{place}: {from} -> {to}"));
            }
        }
        assert!(
            broken.is_empty(),
            "layer rules broken:\n{}",
            broken.join("\n")
        );
    }
}
