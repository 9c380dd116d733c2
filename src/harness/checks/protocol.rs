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
        harness_check!(
            "protocol.proxy",
            Protocol,
            "a pull-through cache serves an upstream's image with ?ns=: exact manifest and blobs, OCI-Namespace on every answer",
            ["R130", "R016", "R022"],
            proxy
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
    let accept = crate::harness::content::manifest_accept();
    let manifest = format!("/v2/{}/manifests/{}?ns={ns}", image.repo, image.tag);
    let mut answers = Vec::new();
    for (what, req) in [
        (
            "a manifest GET",
            Request::get(manifest.clone()).header("accept", &accept),
        ),
        (
            "a manifest HEAD",
            Request::head(manifest).header("accept", &accept),
        ),
        (
            "a blob GET",
            Request::get(format!(
                "/v2/{}/blobs/{}?ns={ns}",
                image.repo, image.layer.1.digest
            )),
        ),
    ] {
        let r = cx.send(req).await?;
        answers.push((what, r.status, r.header("oci-namespace").map(String::from)));
    }
    // Honoured or ignored, but the same way for every request of the name.
    let echoed = answers.iter().filter(|(_, _, h)| h.is_some()).count();
    if echoed == 0 {
        let status = answers[0].1;
        return Ok(Verdict::unsupported(if status == 200 {
            format!(
                "no OCI-Namespace on pulls with ?ns= (answered {status}); the registry ignores ns"
            )
        } else {
            format!("pulls with ?ns={ns} answered {status} without OCI-Namespace; the registry refuses an ns it does not proxy")
        }));
    }
    for (what, status, got) in &answers {
        cx.ensure(got.as_deref() == Some(ns), "R130", || {
            format!("{what} with ?ns={ns} answers OCI-Namespace: {ns} like the others that echo it; got {got:?} (status {status})")
        })?;
    }
    Ok(Verdict::Pass)
}

/// Pulls `--ns-image` through the namespace `--ns` names: by tag, by digest,
/// with HEAD, and the blobs of an image manifest, each answer echoing the
/// namespace and each body matching its digest.
async fn proxy(cx: &Ctx) -> Step<Verdict> {
    let (Some(ns), Some(image)) = (cx.options().ns.clone(), cx.options().ns_image.clone()) else {
        return Ok(Verdict::skipped(
            "point this check at a pull-through cache with --ns HOST --ns-image REPO:TAG",
        ));
    };
    let Some((repo, tag)) = image.rsplit_once(':') else {
        return Ok(Verdict::skipped(format!(
            "--ns-image {image:?} is not repository:tag"
        )));
    };
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("ns", &ns)
        .finish();
    let accept = crate::harness::content::manifest_accept();
    let echoed = |r: &crate::client::Response, what: &str| {
        let got = r.header("oci-namespace").map(String::from);
        cx.ensure(got.as_deref() == Some(ns.as_str()), "R130", || {
            format!("{what} with ?ns={ns} answers OCI-Namespace: {ns}; got {got:?}")
        })
    };
    let by_tag = cx
        .send(Request::get(format!("/v2/{repo}/manifests/{tag}?{q}")).header("accept", &accept))
        .await?;
    cx.ensure(by_tag.status == 200, "R130", || {
        format!(
            "a pull of {image} through ns {ns} answers 200; got {}",
            by_tag.status
        )
    })?;
    echoed(&by_tag, "a manifest GET by tag")?;
    let digest = crate::oci::Algorithm::Sha256
        .digest_of(&by_tag.body)
        .to_string();
    let sent = by_tag.header("docker-content-digest").map(String::from);
    cx.ensure(
        sent.is_none() || sent.as_deref() == Some(digest.as_str()),
        "R016",
        || {
            format!(
                "Docker-Content-Digest is the digest of the manifest sent ({digest}); got {sent:?}"
            )
        },
    )?;
    let by_digest = cx
        .send(Request::get(format!("/v2/{repo}/manifests/{digest}?{q}")).header("accept", &accept))
        .await?;
    cx.ensure(
        by_digest.status == 200 && by_digest.body == by_tag.body,
        "R130",
        || {
            format!(
                "the manifest by digest through ns {ns} is the one by tag; got {} with {} bytes",
                by_digest.status,
                by_digest.body.len()
            )
        },
    )?;
    echoed(&by_digest, "a manifest GET by digest")?;
    let head = cx
        .send(Request::head(format!("/v2/{repo}/manifests/{tag}?{q}")).header("accept", &accept))
        .await?;
    echoed(&head, "a manifest HEAD")?;
    let media_type = by_tag.header("content-type").map(String::from);
    let view = crate::oci::ManifestView::parse(&by_tag.body, media_type.as_deref())
        .map_err(|e| cx.fail("R130", format!("the manifest through ns {ns} parses: {e}")))?;
    for d in view.config.iter().chain(view.layers.iter().take(1)) {
        let b = cx
            .send(Request::get(format!("/v2/{repo}/blobs/{}?{q}", d.digest)))
            .await?;
        cx.ensure(b.status == 200, "R130", || {
            format!(
                "blob {} through ns {ns} answers 200; got {}",
                d.digest, b.status
            )
        })?;
        echoed(&b, "a blob GET")?;
        let actual = d.digest.algorithm().digest_of(&b.body);
        cx.ensure(actual == d.digest, "R022", || {
            format!(
                "blob {} through ns {ns} has that digest; its bytes hash to {actual}",
                d.digest
            )
        })?;
    }
    Ok(Verdict::Pass)
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
