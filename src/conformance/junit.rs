//! A tolerant reader for the JUnit XML both suites write: every `<testcase>`
//! with its `status` attribute, its `<failure>`/`<error>`/`<skipped>` children and
//! its `<system-out>`.
//!
//! The two suites disagree on where a test's result lives: the current suite
//! only sets `status="passed|skipped|failure|error"` and never emits child
//! elements, while ginkgo (v1.1.x) emits real `<failure>`/`<skipped>` elements.
//! This module keeps both raw; each suite's module decides which one to trust.

use anyhow::Context;
use serde::Deserialize;

/// One `<testcase>` as written, before any interpretation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct JunitCase {
    /// The `name` attribute.
    #[serde(rename = "@name", default)]
    pub name: String,
    /// The `status` attribute, when present.
    #[serde(rename = "@status", default)]
    pub status: Option<String>,
    /// The `<failure>` child, when present.
    #[serde(default)]
    pub failure: Option<JunitResult>,
    /// The `<error>` child, when present.
    #[serde(default)]
    pub error: Option<JunitResult>,
    /// The `<skipped>` child, when present.
    #[serde(default)]
    pub skipped: Option<JunitResult>,
    /// The `<system-out>` text, when present.
    #[serde(rename = "system-out", default)]
    pub system_out: Option<String>,
}

/// The body of a `<failure>`, `<error>` or `<skipped>` element.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct JunitResult {
    /// The `message` attribute.
    #[serde(rename = "@message", default)]
    pub message: String,
    /// The element's text.
    #[serde(rename = "$text", default)]
    pub text: String,
}

#[derive(Deserialize)]
struct Suite {
    #[serde(rename = "testcase", default)]
    cases: Vec<JunitCase>,
}

/// The document root: `<testsuites>` holding suites, or a bare `<testsuite>`
/// holding test cases. The root element's name is not checked.
#[derive(Deserialize)]
struct Root {
    #[serde(rename = "testsuite", default)]
    suites: Vec<Suite>,
    #[serde(rename = "testcase", default)]
    cases: Vec<JunitCase>,
}

/// Parses a JUnit document into its test cases, in document order.
pub fn parse(xml: &str) -> anyhow::Result<Vec<JunitCase>> {
    let root: Root = quick_xml::de::from_str(xml).context("junit.xml is not valid JUnit XML")?;
    let mut cases: Vec<JunitCase> = root.suites.into_iter().flat_map(|s| s.cases).collect();
    cases.extend(root.cases);
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_attributes_and_system_out() {
        let xml = r#"<testsuites tests="2"><testsuite name="OCI Conformance Test">
            <properties><property name="Config" value="x"></property></properties>
            <testcase name="a/b" classname="" time="0.1" status="failure">
              <system-out>line one&#xA;line &#34;two&#34;</system-out>
              <system-err>transcript</system-err>
            </testcase>
            <testcase name="a/c" classname="" status="passed"></testcase>
        </testsuite></testsuites>"#;
        let cases = parse(xml).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].name, "a/b");
        assert_eq!(cases[0].status.as_deref(), Some("failure"));
        assert_eq!(
            cases[0].system_out.as_deref(),
            Some("line one\nline \"two\"")
        );
        assert!(cases[0].failure.is_none());
        assert_eq!(cases[1].status.as_deref(), Some("passed"));
    }

    #[test]
    fn reads_child_elements() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
        <testsuites><testsuite name="conformance tests">
          <testcase name="x" status="failed"><failure message="Expected&#xA;1" type="failed">[FAILED] Expected&#xA;1</failure></testcase>
          <testcase name="y" status="skipped"><skipped message="skipped - you have skipped this test."></skipped></testcase>
        </testsuite></testsuites>"#;
        let cases = parse(xml).unwrap();
        assert_eq!(cases[0].failure.as_ref().unwrap().message, "Expected\n1");
        assert_eq!(
            cases[0].failure.as_ref().unwrap().text,
            "[FAILED] Expected\n1"
        );
        assert_eq!(
            cases[1].skipped.as_ref().unwrap().message,
            "skipped - you have skipped this test."
        );
    }

    #[test]
    fn accepts_a_bare_testsuite_root() {
        let xml = r#"<testsuite name="s"><testcase name="only" status="passed"/></testsuite>"#;
        assert_eq!(parse(xml).unwrap()[0].name, "only");
    }

    #[test]
    fn rejects_truncated_documents() {
        assert!(parse(r#"<testsuites><testsuite><testcase name="a""#).is_err());
        assert!(parse("").is_err());
    }
}
