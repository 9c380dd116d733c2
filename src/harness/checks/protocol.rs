//! Protocol checks: the `/v2/` endpoint, the `ns` parameter, and the run-wide
//! observations of `Warning` headers and `429` answers.

use super::CheckDef;
use crate::client::headers as parse;
use crate::client::transcript::render_all;
use crate::client::Request;
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::{Failure, Verdict};
use crate::harness_check;

/// Checks that run first.
pub fn early() -> Vec<CheckDef> {
    vec![
        harness_check!(
            "protocol.ping",
            Protocol,
            "GET /v2/ answers 200, or 401 with a WWW-Authenticate challenge",
            ["R143"],
            ping
        ),
        harness_check!(
            "protocol.namespace",
            Protocol,
            "a registry that scopes by ?ns= echoes it in OCI-Namespace",
            ["R130"],
            namespace
        ),
    ]
}

/// Checks that run last, over everything the run saw.
pub fn late() -> Vec<CheckDef> {
    vec![
        harness_check!("protocol.warnings", Protocol, "every Warning header is `299 - \"text\"` without a date, at most 4096 bytes per answer", ["R150", "R151"], warnings),
        harness_check!("protocol.retry-after", Protocol, "every 429 answer carries Retry-After", ["R149"], retry_after),
    ]
}

async fn ping(cx: &Ctx) -> Step<Verdict> {
    let r = cx.send(Request::get("/v2/")).await?;
    match r.status {
        200 => Ok(Verdict::Pass),
        401 => {
            // RFC 9110 §11.6.1: at least one challenge; a Bearer challenge
            // names the realm to get a token from.
            let value = r.header("www-authenticate");
            let challenges = value.map(parse::parse_www_authenticate).unwrap_or_default();
            cx.ensure(
                !challenges.is_empty()
                    && challenges
                        .iter()
                        .all(|c| c.scheme != "bearer" || c.param("realm").is_some()),
                "R143",
                || {
                    format!(
                        "a 401 from /v2/ carries a WWW-Authenticate challenge (a Bearer one with realm); got {value:?}"
                    )
                },
            )?;
            Ok(Verdict::Pass)
        }
        s => Err(cx.fail(
            "R143",
            format!("GET /v2/ answers 200 (or 401 with a challenge); got {s}"),
        )),
    }
}

async fn namespace(cx: &Ctx) -> Step<Verdict> {
    let image = cx.image().await?;
    let ns = "registry.example.org";
    let r = cx
        .send(
            Request::get(format!(
                "/v2/{}/manifests/{}?ns={ns}",
                image.repo, image.tag
            ))
            .header("accept", crate::harness::content::manifest_accept()),
        )
        .await?;
    match r.header("oci-namespace") {
        None => Ok(Verdict::unsupported(format!(
            "no OCI-Namespace on a pull with ?ns= (answered {}); the registry ignores ns",
            r.status
        ))),
        Some(v) => {
            cx.ensure(v == ns, "R130", || {
                format!("OCI-Namespace echoes the ns parameter {ns:?}; got {v:?}")
            })?;
            Ok(Verdict::Pass)
        }
    }
}

async fn warnings(cx: &Ctx) -> Step<Verdict> {
    let seen = cx.client().with_seen(|s| s.warnings.clone());
    if seen.is_empty() {
        return Ok(Verdict::unsupported(
            "the registry sent no Warning header during the run",
        ));
    }
    for (values, ex) in &seen {
        let mut total = 0;
        for v in values {
            match parse::parse_warning(v) {
                Ok(text) => total += text.len(),
                Err(why) => {
                    return Err(Verdict::Fail(Failure {
                        requirement: "R150".into(),
                        expected: format!("Warning: 299 - \"<text>\" with no warn-date; {why}"),
                        transcript: render_all(std::slice::from_ref(ex), 1),
                    }))
                }
            }
        }
        if total > 4096 {
            return Err(Verdict::Fail(Failure {
                requirement: "R151".into(),
                expected: format!("at most 4096 bytes of warning text per answer; got {total}"),
                transcript: render_all(std::slice::from_ref(ex), 1),
            }));
        }
    }
    Ok(Verdict::Pass)
}

async fn retry_after(cx: &Ctx) -> Step<Verdict> {
    let seen = cx.client().with_seen(|s| s.throttled.clone());
    if seen.is_empty() {
        return Ok(Verdict::unsupported(
            "the registry sent no 429 during the run",
        ));
    }
    for ex in &seen {
        if !ex
            .response_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        {
            return Err(Verdict::Fail(Failure {
                requirement: "R149".into(),
                expected: "a 429 answer carries Retry-After".into(),
                transcript: render_all(std::slice::from_ref(ex), 1),
            }));
        }
    }
    Ok(Verdict::Pass)
}
