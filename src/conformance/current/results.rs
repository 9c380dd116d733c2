//! The current suite's `results.yaml`: the status of every API and data set.
//!
//! This file is the only trustworthy verdict of the current suite: the process
//! exits 0 when its configuration is invalid or when it fails to write its
//! reports, so a run without a `results.yaml` that parses is never a pass.

use anyhow::{bail, Context};
use serde_norway::Value;

use crate::conformance::outcome::Status;

/// What `results.yaml` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultsFile {
    /// `config.version`, e.g. `1.1+dev`.
    pub version: Option<String>,
    /// `config.commit`: the distribution-spec commit the suite was built from.
    pub commit: Option<String>,
    /// `apis`: every API name with its status, in file order.
    pub apis: Vec<(String, Status)>,
    /// `data`: every data set name with its status, in file order.
    pub data: Vec<(String, Status)>,
}

/// Parses the text of `results.yaml`. Fails on anything that is not a complete
/// results document: no `apis` map, an empty one, or an unknown status word.
pub fn parse(text: &str) -> anyhow::Result<ResultsFile> {
    let doc: Value = serde_norway::from_str(text).context("results.yaml is not valid YAML")?;
    if !doc.is_mapping() {
        bail!("results.yaml is not a mapping");
    }
    let config_field = |name: &str| {
        doc.get("config")
            .and_then(|c| c.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let apis = statuses(&doc, "apis")?;
    if apis.is_empty() {
        bail!("results.yaml lists no API results");
    }
    let data = statuses(&doc, "data")?;
    Ok(ResultsFile {
        version: config_field("version"),
        commit: config_field("commit"),
        apis,
        data,
    })
}

fn statuses(doc: &Value, field: &str) -> anyhow::Result<Vec<(String, Status)>> {
    let map = match doc.get(field) {
        Some(Value::Mapping(m)) => m,
        Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => bail!("results.yaml: `{field}` is not a mapping"),
        None => bail!("results.yaml has no `{field}` section"),
    };
    map.iter()
        .map(|(k, v)| {
            let name = k
                .as_str()
                .with_context(|| format!("results.yaml: a key of `{field}` is not a string"))?;
            let word = v
                .as_str()
                .with_context(|| format!("results.yaml: {field}.{name} is not a status word"))?;
            let status = Status::from_results_word(word).with_context(|| {
                format!("results.yaml: {field}.{name} has unknown status {word:?}")
            })?;
            Ok((name.to_string(), status))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_apis_and_data_in_file_order() {
        let r = parse(
            "config:\n  version: 1.1+dev\n  commit: abc\napis:\n  Ping: Pass\n  Blob chunked: FAIL\n\
             data:\n  Image: Pass\n  Sparse Manifests: Disabled\n",
        )
        .unwrap();
        assert_eq!(r.version.as_deref(), Some("1.1+dev"));
        assert_eq!(r.commit.as_deref(), Some("abc"));
        assert_eq!(
            r.apis,
            vec![
                ("Ping".into(), Status::Pass),
                ("Blob chunked".into(), Status::Fail)
            ]
        );
        assert_eq!(r.data[1], ("Sparse Manifests".into(), Status::Disabled));
    }

    #[test]
    fn incomplete_documents_are_errors() {
        for bad in [
            "",
            "config: {}\n",
            "apis: {}\ndata: {}\n",
            "apis:\n  Ping: Unknown\ndata: {}\n",
            "apis:\n  Ping: [Pass]\ndata: {}\n",
            "apis:\n  Ping: Pass\n",
            "apis:\n  Ping: Pass\ndata:\n  Image: Pa",
            "- a list\n",
        ] {
            assert!(parse(bad).is_err(), "should reject {bad:?}");
        }
    }
}
