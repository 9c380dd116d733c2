//! Error bodies: every 4xx answer seen during the run whose body is JSON must use
//! the spec's envelope with codes from its table.

use super::CheckDef;
use crate::client::transcript::render_all;
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::{Failure, Verdict};
use crate::harness_check;
use crate::oci::ErrorCode;

/// The error checks.
pub fn checks() -> Vec<CheckDef> {
    vec![harness_check!(
        "errors.envelope",
        Errors,
        "every JSON 4xx body seen in the run is {errors:[{code,message,detail}]} with codes from the spec's table",
        ["R145", "R146", "R147", "R148"],
        envelope
    )]
}

/// Legacy codes the spec says clients may still meet (schema1 era).
const LEGACY: [&str; 2] = ["TAG_INVALID", "MANIFEST_UNVERIFIED"];
/// Codes of the spec's extension documents: `extensions/README.md` (line 91)
/// lets a registry answer a request for an extension it does not know with
/// `EXTENSION_UNKNOWN`.
const EXTENSION_CODES: [&str; 1] = ["EXTENSION_UNKNOWN"];

/// Judges one 4xx body; `Err` names the requirement broken and why.
pub fn judge_body(body: &[u8], content_type: Option<&str>) -> Result<(), (&'static str, String)> {
    let looks_json = content_type.is_some_and(|c| c.contains("json"))
        || body.trim_ascii_start().starts_with(b"{");
    if body.trim_ascii().is_empty() || !looks_json {
        return Ok(());
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(("R145", "a JSON error body parses as JSON".into()));
    };
    let Some(errors) = v.get("errors").and_then(|e| e.as_array()) else {
        return Err((
            "R145",
            "a JSON error body is an object with an errors array".into(),
        ));
    };
    for e in errors {
        let Some(code) = e.get("code").and_then(|c| c.as_str()) else {
            return Err((
                "R145",
                format!("every error entry has a string code; got {e}"),
            ));
        };
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            return Err((
                "R146",
                format!("codes are uppercase letters and underscores; got {code:?}"),
            ));
        }
        if ErrorCode::parse(code).is_none()
            && !LEGACY.contains(&code)
            && !EXTENSION_CODES.contains(&code)
        {
            return Err((
                "R148",
                format!("codes come from the spec's table; got {code:?}"),
            ));
        }
        if let Some(m) = e.get("message") {
            if !m.is_string() {
                return Err(("R147", format!("message is a string; got {m}")));
            }
        }
    }
    Ok(())
}

async fn envelope(cx: &Ctx) -> Step<Verdict> {
    let seen = cx.client().with_seen(|s| s.client_errors.clone());
    if seen.is_empty() {
        return Ok(Verdict::skipped("no 4xx answer was seen during the run"));
    }
    for (ex, body, ct) in &seen {
        if let Err((req, why)) = judge_body(body, ct.as_deref()) {
            return Err(Verdict::Fail(Failure {
                requirement: req.into(),
                expected: why,
                transcript: render_all(std::slice::from_ref(ex), 1),
            }));
        }
    }
    Ok(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::judge_body;

    #[test]
    fn bodies() {
        let ok = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown","detail":{"digest":"x"}}]}"#;
        assert!(judge_body(ok, Some("application/json")).is_ok());
        assert!(judge_body(br#"{"errors":[{"code":"TAG_INVALID"}]}"#, None).is_ok());
        assert!(judge_body(br#"{"errors":[{"code":"EXTENSION_UNKNOWN"}]}"#, None).is_ok());
        assert!(judge_body(b"not found", Some("text/plain")).is_ok());
        assert!(judge_body(b"", Some("application/json")).is_ok());
        assert_eq!(judge_body(br#"{"error":"x"}"#, None).unwrap_err().0, "R145");
        assert_eq!(
            judge_body(br#"{"errors":[{"code":"blob_unknown"}]}"#, None)
                .unwrap_err()
                .0,
            "R146"
        );
        assert_eq!(
            judge_body(br#"{"errors":[{"code":"RANGE_INVALID"}]}"#, None)
                .unwrap_err()
                .0,
            "R148"
        );
        assert_eq!(
            judge_body(br#"{"errors":[{"code":"DENIED","message":3}]}"#, None)
                .unwrap_err()
                .0,
            "R147"
        );
        assert_eq!(
            judge_body(b"{oops", Some("application/json"))
                .unwrap_err()
                .0,
            "R145"
        );
    }
}
