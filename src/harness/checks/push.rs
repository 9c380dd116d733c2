//! Monolithic blob uploads (POST then PUT, single POST), digests and algorithms,
//! cancel, and cross-repository mounts.

use bytes::Bytes;
use reqwest::Url;

use super::CheckDef;
use crate::client::{Request, Response};
use crate::harness::context::{Created, Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::{Algorithm, Digest};

/// The monolithic push checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("push.post-put", Push, "POST opens a session (202, Location, one per session); PUT closes it (201, pullable Location)", ["R005", "R034", "R035", "R038"], post_put),
        harness_check!("push.single-post", Push, "POST ?digest= with the body answers 201 with a pullable Location, or 202 to fall back to PUT", ["R041", "R042"], single_post),
        harness_check!("push.sha512", Push, "a blob pushed with ?digest=sha512: is pullable under that digest, or refused with 400", ["R033", "R038"], sha512),
        harness_check!("push.digest-algorithm", Push, "POST ?digest-algorithm=sha512 then chunks and PUT give a blob pullable under its sha512 digest", ["R038", "R056"], digest_algorithm),
        harness_check!("push.bad-digest", Push, "a PUT whose digest is wrong, malformed or of an unknown algorithm is answered 400", ["R033"], bad_digest),
        harness_check!("push.cancel", Push, "DELETE of an upload location answers 204 and ends the session", ["R060"], cancel),
        harness_check!("push.mount", Push, "POST ?mount=&from= answers 201 with a pullable Location, or 202 to fall back to an upload", ["R064", "R066"], mount),
        harness_check!("push.mount-missing", Push, "mounting a blob the source does not hold never answers 201", ["R064", "R066"], mount_missing),
        harness_check!("push.mount-anonymous", Push, "POST ?mount= without from answers 201 with a pullable Location, or 202", ["R064", "R066"], mount_anonymous),
    ]
}

/// Opens an upload session; returns the resolved Location.
pub(crate) async fn open_session(cx: &Ctx, repo: &str, query: &str) -> Step<(Response, String)> {
    let r = cx
        .send(
            Request::post(format!("/v2/{repo}/blobs/uploads/{query}"))
                .header("content-length", "0"),
        )
        .await?;
    cx.expect_status(&r, &[202], "R034", "POST opening an upload session")?;
    let loc = cx.location(&r, "R034", "the POST opening an upload session")?;
    Ok((r, loc))
}

/// Whether `s` holds a UUID: 8-4-4-4-12 hex digits, or 32 hex digits in a row.
pub fn contains_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let hex_run =
        |i: usize, n: usize| b.len() >= i + n && b[i..i + n].iter().all(u8::is_ascii_hexdigit);
    (0..b.len()).any(|i| {
        hex_run(i, 32)
            || [8usize, 4, 4, 4, 12]
                .iter()
                .try_fold(i, |at, &n| {
                    let dash = at > i;
                    let start = at + usize::from(dash);
                    (!dash || b.get(at) == Some(&b'-')).then_some(())?;
                    hex_run(start, n).then_some(start + n)
                })
                .is_some()
    })
}

/// `location` with `digest=` appended.
pub(crate) fn with_digest(location: &str, digest: &str) -> String {
    match Url::parse(location) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("digest", digest);
            u.to_string()
        }
        Err(_) => location.to_string(),
    }
}

/// GETs `location` (or the blob path) and checks the bytes.
pub(crate) async fn expect_pullable(
    cx: &Ctx,
    location: &str,
    bytes: &Bytes,
    req: &str,
) -> Step<()> {
    let r = cx.send(Request::get(location.to_string())).await?;
    cx.expect_status(&r, &[200], req, "GET of the Location of a pushed blob")?;
    cx.ensure(r.body == bytes, req, || {
        "the blob at Location holds the bytes pushed".into()
    })
}

async fn post_put(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("push");
    let bytes = cx.unique_bytes(4096);
    let digest = Algorithm::Sha256.digest_of(&bytes);
    let (_, loc) = open_session(cx, &repo, "").await?;
    let (_, other) = open_session(cx, &repo, "").await?;
    cx.ensure(loc != other, "R035", || {
        format!("two sessions get distinct locations; both got {loc}")
    })?;
    cx.ensure(contains_uuid(&loc), "R035", || {
        format!("the upload location carries a UUID (8-4-4-4-12 or 32 hex digits); got {loc}")
    })?;
    let _ = cx.send(Request::delete(other)).await?;
    let r = cx
        .send(
            Request::put(with_digest(&loc, &digest.to_string()))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    cx.expect_status(&r, &[201], "R038", "PUT closing a monolithic upload")?;
    cx.created(Created::Blob(repo.clone(), digest.clone()));
    let blob_loc = cx.location(&r, "R038", "the PUT closing an upload")?;
    expect_pullable(cx, &blob_loc, &bytes, "R038").await?;
    expect_pullable(cx, &format!("/v2/{repo}/blobs/{digest}"), &bytes, "R038").await?;
    Ok(Verdict::Pass)
}

async fn single_post(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("push");
    let bytes = cx.unique_bytes(2048);
    let digest = Algorithm::Sha256.digest_of(&bytes);
    let r = cx
        .send(
            Request::post(format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    match r.status {
        201 => {
            cx.created(Created::Blob(repo.clone(), digest));
            let loc = cx.location(&r, "R042", "a successful single POST")?;
            expect_pullable(cx, &loc, &bytes, "R042").await?;
            Ok(Verdict::Pass)
        }
        202 => {
            let loc = cx.location(&r, "R041", "a 202 to a single POST (fallback to PUT)")?;
            let put = cx
                .send(
                    Request::put(with_digest(&loc, &digest.to_string()))
                        .header("content-type", "application/octet-stream")
                        .body(bytes.clone()),
                )
                .await?;
            cx.expect_status(
                &put,
                &[201],
                "R038",
                "the PUT that follows a 202 to a single POST",
            )?;
            cx.created(Created::Blob(repo, digest));
            Ok(Verdict::unsupported(
                "single-POST uploads answered 202; the fallback PUT worked",
            ))
        }
        // Through expect_status so that a 401/403 reads as not permitted.
        s => Err(cx
            .expect_status(
                &r,
                &[201, 202],
                "R042",
                "a single POST (202 falls back to PUT)",
            )
            .err()
            .unwrap_or_else(|| cx.fail("R042", format!("a single POST answered {s}")))),
    }
}

/// Pushes `bytes` under `digest` with POST (plus `query`) then PUT; returns the PUT answer.
async fn post_then_put(
    cx: &Ctx,
    repo: &str,
    query: &str,
    bytes: &Bytes,
    digest: &str,
) -> Step<Option<Response>> {
    let r = cx
        .send(
            Request::post(format!("/v2/{repo}/blobs/uploads/{query}"))
                .header("content-length", "0"),
        )
        .await?;
    if r.status == 400 && !query.is_empty() {
        return Ok(None);
    }
    cx.expect_status(&r, &[202], "R034", "POST opening an upload session")?;
    let loc = cx.location(&r, "R034", "the POST opening an upload session")?;
    let put = cx
        .send(
            Request::put(with_digest(&loc, digest))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    Ok(Some(put))
}

/// After a 201 for `digest`, the blob must be pullable under that same digest,
/// with a Docker-Content-Digest that names it or (in another algorithm) the body.
async fn expect_stored_as(
    cx: &Ctx,
    repo: &str,
    put: &Response,
    digest: &Digest,
    bytes: &Bytes,
    req: &str,
) -> Step<()> {
    let r = cx
        .send(Request::get(format!("/v2/{repo}/blobs/{digest}")))
        .await?;
    cx.ensure(r.status == 200 && r.body == bytes, req, || {
        format!(
            "after 201 to a push of {digest}, the blob is pullable under that digest (a registry without {} should answer 400, R033); \
             the 201 named {} and GET answered {}",
            digest.algorithm(),
            put.header("docker-content-digest").unwrap_or("no digest"),
            r.status
        )
    })?;
    expect_body_digest(cx, &r, digest)
}

/// Docker-Content-Digest is present (R021) and is the requested digest or, when the
/// registry hashes with another algorithm (which the spec allows), that algorithm's
/// digest of the body (R022).
pub(crate) fn expect_body_digest(cx: &Ctx, r: &Response, requested: &Digest) -> Step<()> {
    let header = r.header("docker-content-digest");
    let parsed: Option<Digest> = header.and_then(|h| h.parse().ok());
    cx.ensure(header.is_some(), "R021", || {
        "a blob GET carries Docker-Content-Digest".into()
    })?;
    let ok = parsed.is_some_and(|d| {
        if d.algorithm() == requested.algorithm() {
            &d == requested
        } else {
            d.algorithm().digest_of(&r.body) == d
        }
    });
    cx.ensure(ok, "R022", || {
        format!("Docker-Content-Digest names the body ({requested} or another algorithm's digest of it); got {}", header.unwrap_or(""))
    })
}

async fn sha512(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("push");
    let bytes = cx.unique_bytes(3000);
    let digest = Algorithm::Sha512.digest_of(&bytes);
    let put = post_then_put(cx, &repo, "", &bytes, &digest.to_string())
        .await?
        .expect("no query");
    match put.status {
        400 => Ok(Verdict::unsupported("sha512 digests are refused with 400")),
        201 => {
            cx.created(Created::Blob(repo.clone(), digest.clone()));
            expect_stored_as(cx, &repo, &put, &digest, &bytes, "R038").await?;
            Ok(Verdict::Pass)
        }
        s => Err(cx.fail(
            "R033",
            format!("a sha512 push answers 201, or 400 when sha512 is not supported; got {s}"),
        )),
    }
}

async fn digest_algorithm(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("push");
    let bytes = cx.unique_bytes(5000);
    let digest = Algorithm::Sha512.digest_of(&bytes);
    let r = cx
        .send(
            Request::post(format!("/v2/{repo}/blobs/uploads/?digest-algorithm=sha512"))
                .header("content-length", "0"),
        )
        .await?;
    if r.status == 400 {
        return Ok(Verdict::unsupported(
            "digest-algorithm=sha512 is refused with 400",
        ));
    }
    cx.expect_status(&r, &[202], "R034", "POST ?digest-algorithm=sha512")?;
    let loc = cx.location(&r, "R034", "POST ?digest-algorithm=sha512")?;
    let patch = cx
        .send(
            Request::patch(loc)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("0-{}", bytes.len() - 1))
                .body(bytes.clone()),
        )
        .await?;
    cx.expect_status(&patch, &[202], "R050", "PATCH of a sha512 upload")?;
    let loc = cx.location(&patch, "R050", "PATCH of a sha512 upload")?;
    let put = cx
        .send(Request::put(with_digest(&loc, &digest.to_string())))
        .await?;
    match put.status {
        400 => Ok(Verdict::unsupported(
            "the closing PUT with a sha512 digest is refused with 400",
        )),
        201 => {
            cx.created(Created::Blob(repo.clone(), digest.clone()));
            expect_stored_as(cx, &repo, &put, &digest, &bytes, "R056").await?;
            Ok(Verdict::Pass)
        }
        s => Err(cx.fail(
            "R056",
            format!("the closing PUT answers 201 (or 400 for an unsupported algorithm); got {s}"),
        )),
    }
}

async fn bad_digest(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("push");
    let bytes = cx.unique_bytes(100);
    let wrong = Algorithm::Sha256.digest_of(b"other bytes").to_string();
    let cases = [
        (wrong.as_str(), "a digest of other bytes"),
        ("sha256:baddigeststring", "a malformed digest"),
        ("unknownalg:0123456789abcdef", "an unknown algorithm"),
    ];
    for (digest, what) in cases {
        let put = post_then_put(cx, &repo, "", &bytes, digest)
            .await?
            .expect("no query");
        cx.expect_status(&put, &[400], "R033", &format!("a PUT with {what}"))?;
    }
    Ok(Verdict::Pass)
}

async fn cancel(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("push");
    let (_, loc) = open_session(cx, &repo, "").await?;
    let patch = cx
        .send(
            Request::patch(loc)
                .header("content-type", "application/octet-stream")
                .header("content-range", "0-9")
                .body(cx.unique_bytes(10)),
        )
        .await?;
    cx.expect_status(&patch, &[202], "R050", "PATCH of a first chunk")?;
    let loc = cx.location(&patch, "R050", "PATCH of a first chunk")?;
    let r = cx
        .send(Request::delete(loc.clone()).header("content-length", "0"))
        .await?;
    if matches!(r.status, 404 | 405) {
        return Ok(Verdict::unsupported(format!(
            "cancelling an upload answered {}",
            r.status
        )));
    }
    cx.expect_status(&r, &[204], "R060", "DELETE of an active upload location")?;
    let r = cx.send(Request::get(loc)).await?;
    cx.expect_status(&r, &[404], "R060", "GET of a cancelled upload location")?;
    Ok(Verdict::Pass)
}

/// Mount outcome: 201 checked for a pullable Location; 202 cancelled and reported.
async fn try_mount(
    cx: &Ctx,
    repo: &str,
    query: String,
    bytes: &Bytes,
    digest: &Digest,
) -> Step<Verdict> {
    let r = cx
        .send(
            Request::post(format!("/v2/{repo}/blobs/uploads/?{query}"))
                .header("content-length", "0"),
        )
        .await?;
    match r.status {
        201 => {
            cx.created(Created::Blob(repo.to_string(), digest.clone()));
            let loc = cx.location(&r, "R064", "a successful mount")?;
            expect_pullable(cx, &loc, bytes, "R064").await?;
            Ok(Verdict::Pass)
        }
        202 => {
            let loc = cx.location(&r, "R066", "a 202 to a mount (an upload session)")?;
            let _ = cx.send(Request::delete(loc)).await?;
            Ok(Verdict::unsupported(
                "the mount answered 202 (an upload session) instead of mounting",
            ))
        }
        s => Err(cx.fail(
            "R066",
            format!("a mount answers 201, or 202 when the registry will not mount; got {s}"),
        )),
    }
}

async fn mount(cx: &Ctx) -> Step<Verdict> {
    let source = cx.repo("mount-src");
    let bytes = cx.unique_bytes(700);
    let digest = cx.push_blob(&source, &bytes).await?;
    let target = cx.repo("mount-dst");
    try_mount(
        cx,
        &target,
        format!("mount={digest}&from={source}"),
        &bytes,
        &digest,
    )
    .await
}

async fn mount_anonymous(cx: &Ctx) -> Step<Verdict> {
    let source = cx.repo("mount-src");
    let bytes = cx.unique_bytes(600);
    let digest = cx.push_blob(&source, &bytes).await?;
    let target = cx.repo("mount-anon");
    try_mount(cx, &target, format!("mount={digest}"), &bytes, &digest).await
}

async fn mount_missing(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let source = cx.repo("mount-src");
    let target = cx.repo("mount-dst");
    let digest = super::pull::absent_digest(cx);
    let r = cx
        .send(
            Request::post(format!(
                "/v2/{target}/blobs/uploads/?mount={digest}&from={source}"
            ))
            .header("content-length", "0"),
        )
        .await?;
    cx.ensure(r.status != 201, "R064", || {
        "mounting a blob that does not exist must not answer 201".into()
    })?;
    if r.status == 202 {
        if let Some(loc) = r.header("location").and_then(|l| r.resolve(l)) {
            let _ = cx.send(Request::delete(loc.to_string())).await?;
        }
        return Ok(Verdict::Pass);
    }
    cx.expect_status(
        &r,
        &[202, 404],
        "R066",
        "a mount the registry cannot perform",
    )?;
    Ok(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::contains_uuid;

    #[test]
    fn uuids_in_locations() {
        assert!(contains_uuid(
            "/v2/a/blobs/uploads/49d6b207-17fd-4f5d-ac2d-0ec50590d0ad?_state=x"
        ));
        assert!(contains_uuid(
            "http://h/v2/a/blobs/uploads/0123456789abcdef0123456789ABCDEF"
        ));
        assert!(!contains_uuid(
            "/v2/a/blobs/uploads/49d6b207-17fd-4f5d-ac2d"
        ));
        assert!(!contains_uuid("/v2/a/blobs/uploads/session-1"));
        assert!(!contains_uuid(
            "/v2/a/blobs/uploads/49d6b20717fd-4f5d-ac2d-0ec50590d0ad"
        ));
    }
}
