//! The YAML configuration file of the current suite, written in full.
//!
//! Every field the suite knows is written explicitly, so the suite's own
//! defaults never decide what runs and the copied file shows exactly what was
//! asked. The suite reads the file named by `OCI_CONFIGURATION`; environment
//! variables would override it, which is why inherited `OCI_*` variables are
//! removed before the suite starts.

use std::path::Path;

use serde_norway::{Mapping, Value};

use crate::conformance::plan::{Plan, REDACTED};
use crate::conformance::switches::CATALOGUE;

/// Builds the suite's configuration document. With `redact`, the password is
/// replaced so the document can be copied next to the reports.
pub fn document(plan: &Plan, results_dir: &Path, redact: bool) -> Value {
    let mut root = Mapping::new();
    let s = |v: &str| Value::String(v.to_string());
    root.insert(s("registry"), s(&plan.endpoint.authority));
    root.insert(
        s("tls"),
        s(if plan.endpoint.tls {
            "enabled"
        } else {
            "disabled"
        }),
    );
    root.insert(s("repo1"), s(&plan.repo1));
    root.insert(s("repo2"), s(&plan.repo2));
    let (user, pass) = match &plan.credentials {
        Some(c) if redact => (c.username.as_str(), REDACTED),
        Some(c) => (c.username.as_str(), c.password.as_str()),
        None => ("", ""),
    };
    root.insert(s("username"), s(user));
    root.insert(s("password"), s(pass));
    root.insert(s("cacheAuth"), Value::Bool(true));
    root.insert(s("logging"), s("warn"));
    for option in CATALOGUE {
        insert_path(
            &mut root,
            option.path,
            Value::Bool(plan.options.get(option.path)),
        );
    }
    root.insert(s("resultsDir"), s(&results_dir.to_string_lossy()));
    root.insert(s("version"), s(plan.profile.suite_version()));
    Value::Mapping(root)
}

/// Renders [`document`] as YAML text.
pub fn render(plan: &Plan, results_dir: &Path, redact: bool) -> String {
    serde_norway::to_string(&document(plan, results_dir, redact))
        .expect("a mapping of strings and booleans always serialises")
}

/// Inserts `value` at a dotted path, creating the intermediate mappings.
fn insert_path(root: &mut Mapping, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut node = root;
    while let Some(part) = parts.next() {
        let key = Value::String(part.to_string());
        if parts.peek().is_none() {
            node.insert(key, value);
            return;
        }
        let child = node
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        node = match child {
            Value::Mapping(m) => m,
            other => {
                *other = Value::Mapping(Mapping::new());
                match other {
                    Value::Mapping(m) => m,
                    _ => unreachable!("just replaced by a mapping"),
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::switches::{OptionSet, Profile, Switch};
    use crate::conformance::target::{Credentials, Endpoint};

    fn plan() -> Plan {
        Plan {
            endpoint: Endpoint::parse("http://127.0.0.1:5001").unwrap(),
            credentials: Some(Credentials {
                username: "alice".into(),
                password: "s3cret: yes".into(),
            }),
            repo1: "conformance/repo1".into(),
            repo2: "conformance/repo2".into(),
            profile: Profile::Dev,
            options: OptionSet::resolve(
                Profile::Dev,
                true,
                &[Switch::parse("apis.referrer", false).unwrap()],
            ),
            automatic_mount: crate::conformance::v111::AutoMount::Required,
        }
    }

    #[test]
    fn writes_every_option_explicitly() {
        let doc = document(&plan(), Path::new("/r"), false);
        assert_eq!(doc["registry"], Value::from("127.0.0.1:5001"));
        assert_eq!(doc["tls"], Value::from("disabled"));
        assert_eq!(doc["version"], Value::from("dev"));
        assert_eq!(doc["resultsDir"], Value::from("/r"));
        assert_eq!(doc["apis"]["blobs"]["uploadCancel"], Value::Bool(true));
        assert_eq!(doc["apis"]["referrer"], Value::Bool(false));
        assert_eq!(doc["data"]["sparse"], Value::Bool(true));
        assert_eq!(doc["password"], Value::from("s3cret: yes"));
        let text = render(&plan(), Path::new("/r"), false);
        let back: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(back, doc, "the YAML must round-trip:\n{text}");
    }

    #[test]
    fn redaction_hides_only_the_password() {
        let text = render(&plan(), Path::new("/r"), true);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("alice"), "{text}");
    }
}
