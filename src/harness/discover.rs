//! The spec's extension rules as pure functions: reading an `_oci/ext/discover`
//! answer (`extensions/_oci.md`) and judging the names and endpoints it lists
//! against `extensions/README.md`. Failures name the requirement broken (`X…`).

use serde::Deserialize;
use serde_json::Value;

/// One extension of a discover answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Extension {
    /// Its name with the leading `_`, as in URL paths.
    pub name: String,
    /// Where it is documented.
    pub url: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The endpoints this registry offers at the level asked about.
    pub endpoints: Vec<String>,
}

impl Extension {
    /// Whether `endpoint` (a path) is among the listed endpoints, ignoring any query.
    pub fn lists(&self, endpoint: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.split('?').next() == Some(endpoint))
    }
}

/// The level a discover request asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level<'a> {
    /// `GET /v2/_oci/ext/discover`.
    Registry,
    /// `GET /v2/<name>/_oci/ext/discover` for this repository.
    Repository(&'a str),
}

impl Level<'_> {
    /// The discover path of this level.
    pub fn path(&self) -> String {
        match self {
            Level::Registry => "/v2/_oci/ext/discover".into(),
            Level::Repository(repo) => format!("/v2/{repo}/_oci/ext/discover"),
        }
    }
}

/// A broken rule: the requirement id and what was expected instead.
pub type Broken = (&'static str, String);

/// Whether `s` is a name segment: `[a-z0-9]+([._-][a-z0-9]+)*`.
///
/// `extensions/README.md` prints the pattern without the final `*`, which taken
/// literally demands exactly one separator, so that neither `oci`, `ext` nor
/// `discover` of the spec's own `_oci/ext/discover` would match. The group is read
/// as repeatable, as in the spec's grammar for repository-name components.
pub fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.split(['.', '_', '-']).all(|run| {
            !run.is_empty()
                && run
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Whether `name` is `_` followed by a name segment.
pub fn is_extension_name(name: &str) -> bool {
    name.strip_prefix('_').is_some_and(is_segment)
}

/// Whether a `Content-Type` value is JSON (`application/json` or `…+json`).
pub fn is_json_type(content_type: Option<&str>) -> bool {
    let essence = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    req: &'static str,
    at: usize,
) -> Result<&'a Value, Broken> {
    obj.get(key).ok_or_else(|| {
        (
            req,
            format!("extensions[{at}] has the required member {key:?}"),
        )
    })
}

/// Reads a discover body (shape only: `X012`–`X015`).
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Vec<Extension>, Broken> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ("X012", format!("the discover answer is a JSON object: {e}")))?;
    if !is_json_type(content_type) {
        return Err((
            "X012",
            format!(
                "the discover answer is JSON and says so (Content-Type application/json); got {:?}",
                content_type.unwrap_or("no Content-Type")
            ),
        ));
    }
    let Some(list) = v.get("extensions").and_then(Value::as_array) else {
        return Err((
            "X012",
            format!("the discover answer has an `extensions` array; got {v}"),
        ));
    };
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let Some(obj) = e.as_object() else {
            return Err(("X012", format!("extensions[{i}] is an object; got {e}")));
        };
        let name = field(obj, "name", "X013", i)?;
        let name = name.as_str().ok_or_else(|| {
            (
                "X013",
                format!("extensions[{i}].name is a string; got {name}"),
            )
        })?;
        let url = field(obj, "url", "X014", i)?;
        let url = url
            .as_str()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                (
                    "X014",
                    format!("extensions[{i}].url is a non-empty string; got {url}"),
                )
            })?;
        let description = match obj.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(d) => {
                return Err((
                    "X012",
                    format!("extensions[{i}].description, when present, is a string; got {d}"),
                ))
            }
        };
        let endpoints = field(obj, "endpoints", "X015", i)?;
        let endpoints = endpoints
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>()
            })
            .ok_or_else(|| {
                (
                    "X015",
                    format!("extensions[{i}].endpoints is an array of strings; got {endpoints}"),
                )
            })?;
        out.push(Extension {
            name: name.to_string(),
            url: url.to_string(),
            description,
            endpoints,
        });
    }
    Ok(out)
}

/// Judges one endpoint of the extension `name` listed at `level`: a path under
/// `/v2/`, then (at repository level) the repository, then `<name>/<component>/<module>`.
pub fn judge_endpoint(name: &str, endpoint: &str, level: Level<'_>) -> Result<(), Broken> {
    let path = endpoint.split('?').next().unwrap_or("");
    let bad = |why: &str| ("X004", format!("endpoint {endpoint:?} of {name} is {why}"));
    let rest = path
        .strip_prefix("/v2/")
        .ok_or_else(|| bad("a path under /v2/"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    let at = segments
        .iter()
        .position(|s| *s == name)
        .ok_or_else(|| bad("a path holding the extension's own name as a segment"))?;
    let prefix = segments[..at].join("/");
    if let Level::Repository(repo) = level {
        if !prefix.is_empty() && prefix != repo {
            return Err(bad(&format!(
                "registry-level (/v2/{name}/…) or scoped under the repository asked about, {repo}"
            )));
        }
    }
    match segments.get(at + 1..at + 3) {
        Some([component, module]) if is_segment(component) && is_segment(module) => Ok(()),
        _ => Err(bad(
            "followed by /<component>/<module>, each of lowercase alphanumerics joined by single '.', '_' or '-'",
        )),
    }
}

/// Judges the names and endpoints of a parsed discover answer (`X002`, `X004`, `X005`).
pub fn judge(list: &[Extension], level: Level<'_>) -> Result<(), Broken> {
    let mut seen = std::collections::BTreeSet::new();
    for e in list {
        if !is_extension_name(&e.name) {
            return Err((
                "X004",
                format!(
                    "extension names are '_' and lowercase alphanumerics joined by single '.', '_' or '-'; got {:?}",
                    e.name
                ),
            ));
        }
        if !seen.insert(e.name.as_str()) {
            return Err((
                "X002",
                format!("each extension is listed once; {:?} appears twice", e.name),
            ));
        }
        if e.name == "_catalog" {
            return Err((
                "X005",
                "`_catalog` is a reserved name, not an extension a registry may advertise".into(),
            ));
        }
        for endpoint in &e.endpoints {
            judge_endpoint(&e.name, endpoint, level)?;
        }
    }
    Ok(())
}

/// What a discover request told about a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with a well-formed list.
    Listed(Vec<Extension>),
    /// The registry does not offer discovery (404, or an `UNSUPPORTED` error).
    Absent(String),
    /// 200 with a body that breaks the extension rules.
    Malformed(Broken),
}

/// The error codes of a JSON error envelope, if the body is one.
pub fn error_codes(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.get("code").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Classifies a discover answer. Every status other than 200 means the registry
/// offers no discovery at this level: `extensions/_oci.md` lets a registry support
/// no extension and answer `UNSUPPORTED`, and registries that never heard of it
/// answer 404.
pub fn classify(status: u16, content_type: Option<&str>, body: &[u8], level: Level<'_>) -> Answer {
    if status != 200 {
        let codes = error_codes(body);
        let what = if codes.is_empty() {
            String::new()
        } else {
            format!(" {}", codes.join(","))
        };
        return Answer::Absent(format!("{} answered {status}{what}", level.path()));
    }
    match parse(body, content_type).and_then(|l| judge(&l, level).map(|()| l)) {
        Ok(l) => Answer::Listed(l),
        Err(b) => Answer::Malformed(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_the_pattern_read_as_repeatable() {
        for ok in [
            "oci", "ext", "discover", "a1", "list", "a.b", "a_b-c.d", "0",
        ] {
            assert!(is_segment(ok), "{ok}");
        }
        for bad in ["", "A", "a..b", "a_", "-a", "a/b", "a b", "é", "a__b"] {
            assert!(!is_segment(bad), "{bad}");
        }
        assert!(is_extension_name("_oci") && is_extension_name("_marina"));
        for bad in ["oci", "_", "__oci", "_Oci", "_o/ci"] {
            assert!(!is_extension_name(bad), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_type(Some("application/json")));
        assert!(is_json_type(Some("application/json; charset=utf-8")));
        assert!(is_json_type(Some("application/vnd.x+json")));
        assert!(!is_json_type(Some("text/plain")));
        assert!(!is_json_type(None));
    }

    const MARINA: &str = r#"{"extensions":[{"name":"_marina","url":"/docs","description":"d","endpoints":["/v2/_marina/list/repositories"]}]}"#;

    fn judged(body: &str, level: Level<'_>) -> Result<Vec<Extension>, &'static str> {
        parse(body.as_bytes(), Some("application/json"))
            .and_then(|l| judge(&l, level).map(|()| l))
            .map_err(|(r, _)| r)
    }

    #[test]
    fn answers_that_follow_the_rules() {
        let l = judged(MARINA, Level::Registry).unwrap();
        assert_eq!(l[0].name, "_marina");
        assert!(l[0].lists("/v2/_marina/list/repositories"));
        assert!(!l[0].lists("/v2/_marina/list/tags"));
        let repo = r#"{"extensions":[{"name":"_marina","url":"https://x/_marina.md","endpoints":["/v2/a/b/_marina/list/tags","/v2/_marina/list/repositories?n=1"]},{"name":"_oci","url":"u","endpoints":["/v2/a/b/_oci/ext/discover"]}],"other":1}"#;
        assert_eq!(judged(repo, Level::Repository("a/b")).unwrap().len(), 2);
        assert!(judged(r#"{"extensions":[]}"#, Level::Registry)
            .unwrap()
            .is_empty());
        // More segments after the module are the extension's business.
        assert!(judged(
            r#"{"extensions":[{"name":"_x","url":"u","endpoints":["/v2/_x/c/m/more"]}]}"#,
            Level::Registry
        )
        .is_ok());
    }

    #[test]
    fn answers_that_break_them_name_the_requirement() {
        let table = [
            ("[]", "X012"),
            (r#"{"extension":[]}"#, "X012"),
            (r#"{"extensions":[1]}"#, "X012"),
            (r#"{"extensions":[{"url":"u","endpoints":[]}]}"#, "X013"),
            (
                r#"{"extensions":[{"name":3,"url":"u","endpoints":[]}]}"#,
                "X013",
            ),
            (r#"{"extensions":[{"name":"_a","endpoints":[]}]}"#, "X014"),
            (
                r#"{"extensions":[{"name":"_a","url":"","endpoints":[]}]}"#,
                "X014",
            ),
            (r#"{"extensions":[{"name":"_a","url":"u"}]}"#, "X015"),
            (
                r#"{"extensions":[{"name":"_a","url":"u","endpoints":[1]}]}"#,
                "X015",
            ),
            (
                r#"{"extensions":[{"name":"_a","url":"u","description":1,"endpoints":[]}]}"#,
                "X012",
            ),
            (
                r#"{"extensions":[{"name":"_Bad","url":"u","endpoints":[]}]}"#,
                "X004",
            ),
            (
                r#"{"extensions":[{"name":"marina","url":"u","endpoints":[]}]}"#,
                "X004",
            ),
            (
                r#"{"extensions":[{"name":"_a","url":"u","endpoints":[]},{"name":"_a","url":"v","endpoints":[]}]}"#,
                "X002",
            ),
            (
                r#"{"extensions":[{"name":"_catalog","url":"u","endpoints":[]}]}"#,
                "X005",
            ),
            (
                r#"{"extensions":[{"name":"_a","url":"u","endpoints":["/v1/_a/c/m"]}]}"#,
                "X004",
            ),
            (
                r#"{"extensions":[{"name":"_a","url":"u","endpoints":["/v2/_b/c/m"]}]}"#,
                "X004",
            ),
            (
                r#"{"extensions":[{"name":"_a","url":"u","endpoints":["/v2/_a/c"]}]}"#,
                "X004",
            ),
            (
                r#"{"extensions":[{"name":"_a","url":"u","endpoints":["/v2/_a/Comp/m"]}]}"#,
                "X004",
            ),
        ];
        for (body, req) in table {
            assert_eq!(judged(body, Level::Registry).unwrap_err(), req, "{body}");
        }
        let other_repo = r#"{"extensions":[{"name":"_a","url":"u","endpoints":["/v2/x/_a/c/m"]}]}"#;
        assert!(judged(other_repo, Level::Registry).is_ok());
        assert_eq!(
            judged(other_repo, Level::Repository("y")).unwrap_err(),
            "X004"
        );
        assert_eq!(
            parse(MARINA.as_bytes(), Some("text/plain")).unwrap_err().0,
            "X012"
        );
    }

    #[test]
    fn classification() {
        let ct = Some("application/json");
        assert!(matches!(
            classify(200, ct, MARINA.as_bytes(), Level::Registry),
            Answer::Listed(l) if l.len() == 1
        ));
        assert_eq!(
            classify(
                404,
                Some("text/plain"),
                b"404 page not found",
                Level::Registry
            ),
            Answer::Absent("/v2/_oci/ext/discover answered 404".into())
        );
        assert_eq!(
            classify(
                400,
                ct,
                br#"{"errors":[{"code":"UNSUPPORTED"}]}"#,
                Level::Repository("a")
            ),
            Answer::Absent("/v2/a/_oci/ext/discover answered 400 UNSUPPORTED".into())
        );
        assert!(matches!(
            classify(
                200,
                ct,
                br#"{"extensions":[{"name":"bad"}]}"#,
                Level::Registry
            ),
            Answer::Malformed(("X013", _)) | Answer::Malformed(("X014", _))
        ));
    }
}
