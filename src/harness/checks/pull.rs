//! Pull checks: manifests and blobs by GET and HEAD, unknown content, ranges.

use super::CheckDef;
use crate::client::headers as parse;
use crate::client::{Request, Response};
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::{Algorithm, Digest};

/// The pull checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("pull.manifest-by-tag", Pull, "GET of a manifest by tag answers 200 with the exact bytes and Docker-Content-Digest", ["R003", "R015", "R016"], manifest_by_tag),
        harness_check!("pull.manifest-by-digest", Pull, "GET of a manifest by digest answers 200 with the exact bytes and Docker-Content-Digest", ["R003", "R015", "R016"], manifest_by_digest),
        harness_check!("pull.manifest-head", Pull, "HEAD of a manifest by tag and digest answers 200 with Docker-Content-Digest and Content-Length", ["R003", "R027", "R028", "R029"], manifest_head),
        harness_check!("pull.manifest-unknown", Pull, "GET and HEAD of an unknown tag or digest answer 404", ["R019", "R030"], manifest_unknown),
        harness_check!("pull.blob-get", Pull, "GET of a blob answers 200 with its bytes and a Docker-Content-Digest matching them", ["R003", "R020", "R021", "R022"], blob_get),
        harness_check!("pull.blob-head", Pull, "HEAD of a blob answers 200 with Docker-Content-Digest and Content-Length", ["R003", "R027", "R028", "R029"], blob_head),
        harness_check!("pull.blob-unknown", Pull, "GET and HEAD of an unknown blob answer 404", ["R025", "R030"], blob_unknown),
        harness_check!("pull.blob-range", Pull, "Range reads of a blob answer 206 with Content-Range, and 416 when unsatisfiable", ["R026"], blob_range),
        harness_check!("pull.repo-unknown", Pull, "pulls from a repository that does not exist answer 404", ["R080"], repo_unknown),
    ]
}

/// Fails `req` unless Docker-Content-Digest names `want`.
pub(crate) fn expect_digest_header(
    cx: &Ctx,
    r: &Response,
    want: &Digest,
    req: &str,
    what: &str,
) -> Step<()> {
    let got = r.header("docker-content-digest");
    cx.ensure(got == Some(want.to_string().as_str()), req, || {
        format!(
            "{what}: Docker-Content-Digest: {want}; got {}",
            got.unwrap_or("no header")
        )
    })
}

async fn manifest_get(cx: &Ctx, reference: &str) -> Step<Verdict> {
    let image = cx.image().await?;
    let r = cx.get_manifest(&image.repo, reference).await?;
    cx.expect_status(&r, &[200], "R015", "GET of an existing manifest")?;
    cx.ensure(r.body == image.manifest, "R015", || {
        "the manifest body is the exact bytes pushed".into()
    })?;
    expect_digest_header(cx, &r, &image.desc.digest, "R016", "manifest GET")?;
    Ok(Verdict::Pass)
}

async fn manifest_by_tag(cx: &Ctx) -> Step<Verdict> {
    let tag = cx.image().await?.tag;
    manifest_get(cx, &tag).await
}

async fn manifest_by_digest(cx: &Ctx) -> Step<Verdict> {
    let digest = cx.image().await?.desc.digest.to_string();
    manifest_get(cx, &digest).await
}

/// HEAD `path`, expecting 200 with the digest header and the size.
async fn head_ok(cx: &Ctx, path: String, accept: bool, digest: &Digest, size: u64) -> Step<()> {
    let mut req = Request::head(path);
    if accept {
        req = req.header("accept", crate::harness::content::manifest_accept());
    }
    let r = cx.send(req).await?;
    cx.expect_status(&r, &[200], "R027", "HEAD of existing content")?;
    expect_digest_header(cx, &r, digest, "R028", "HEAD")?;
    let len = r.header("content-length");
    cx.ensure(len == Some(size.to_string().as_str()), "R029", || {
        format!(
            "HEAD carries Content-Length: {size}; got {}",
            len.unwrap_or("no header")
        )
    })
}

async fn manifest_head(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    for reference in [i.tag.clone(), i.desc.digest.to_string()] {
        head_ok(
            cx,
            format!("/v2/{}/manifests/{reference}", i.repo),
            true,
            &i.desc.digest,
            i.desc.size,
        )
        .await?;
    }
    Ok(Verdict::Pass)
}

/// A digest of content nobody pushed.
pub(crate) fn absent_digest(cx: &Ctx) -> Digest {
    Algorithm::Sha256.digest_of(cx.label("absent").as_bytes())
}

async fn manifest_unknown(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    let absent = absent_digest(cx).to_string();
    for reference in ["no-such-tag", absent.as_str()] {
        let path = format!("/v2/{}/manifests/{reference}", i.repo);
        let r = cx.get_manifest(&i.repo, reference).await?;
        cx.expect_status(&r, &[404], "R019", "GET of an unknown manifest")?;
        let r = cx
            .send(Request::head(path).header("accept", crate::harness::content::manifest_accept()))
            .await?;
        cx.expect_status(&r, &[404], "R030", "HEAD of an unknown manifest")?;
    }
    Ok(Verdict::Pass)
}

async fn blob_get(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    let (bytes, desc) = &i.layer;
    let r = cx
        .send(Request::get(format!(
            "/v2/{}/blobs/{}",
            i.repo, desc.digest
        )))
        .await?;
    cx.expect_status(&r, &[200], "R020", "GET of an existing blob")?;
    cx.ensure(r.body == bytes, "R020", || {
        "the blob body is the exact bytes pushed".into()
    })?;
    cx.ensure(r.header("docker-content-digest").is_some(), "R021", || {
        "blob GET carries Docker-Content-Digest".into()
    })?;
    let body_digest = Algorithm::Sha256.digest_of(&r.body);
    expect_digest_header(
        cx,
        &r,
        &body_digest,
        "R022",
        "the digest header matches the body",
    )?;
    Ok(Verdict::Pass)
}

async fn blob_head(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    let (_, desc) = &i.layer;
    head_ok(
        cx,
        format!("/v2/{}/blobs/{}", i.repo, desc.digest),
        false,
        &desc.digest,
        desc.size,
    )
    .await?;
    Ok(Verdict::Pass)
}

async fn blob_unknown(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    let path = format!("/v2/{}/blobs/{}", i.repo, absent_digest(cx));
    let r = cx.send(Request::get(path.clone())).await?;
    cx.expect_status(&r, &[404], "R025", "GET of an unknown blob")?;
    let r = cx.send(Request::head(path)).await?;
    cx.expect_status(&r, &[404], "R030", "HEAD of an unknown blob")?;
    Ok(Verdict::Pass)
}

/// Reads `range` of the fixture layer; `Ok(None)` when the registry ignored Range.
pub(crate) async fn range_read(
    cx: &Ctx,
    repo: &str,
    digest: &Digest,
    blob: &[u8],
    range: (u64, u64),
) -> Step<Option<()>> {
    let (first, last) = range;
    let r = cx
        .client()
        .send(
            Request::get(format!("/v2/{repo}/blobs/{digest}"))
                .header("range", format!("bytes={first}-{last}")),
        )
        .await
        .map_err(|e| {
            cx.fail(
                "R026",
                format!("a well-formed answer to Range: bytes={first}-{last}; {e}"),
            )
        })?;
    if r.status == 200 {
        cx.ensure(r.body == blob, "R020", || {
            "a 200 answer to a Range request carries the whole blob".into()
        })?;
        return Ok(None);
    }
    cx.expect_status(&r, &[206], "R026", "a satisfiable Range request")?;
    let len = blob.len() as u64;
    let end = last.min(len - 1);
    let cr = r
        .header("content-range")
        .and_then(parse::parse_content_range);
    cx.ensure(
        cr.is_some_and(|c| {
            c.first == first && c.last == end && c.complete.is_none_or(|c| c == len)
        }),
        "R026",
        || {
            format!(
                "Content-Range: bytes {first}-{end}/{len}; got {:?}",
                r.header("content-range")
            )
        },
    )?;
    cx.ensure(
        r.body[..] == blob[first as usize..=end as usize],
        "R026",
        || format!("the body is bytes {first}-{end} of the blob"),
    )?;
    Ok(Some(()))
}

async fn blob_range(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    let (bytes, desc) = &i.layer;
    let len = bytes.len() as u64;
    for range in [(0, 0), (1, 99), (len - 10, len - 1), (len - 5, len + 100)] {
        if range_read(cx, &i.repo, &desc.digest, bytes, range)
            .await?
            .is_none()
        {
            return Ok(Verdict::unsupported(
                "the registry answers Range requests with the whole blob (200)",
            ));
        }
    }
    let r = cx
        .client()
        .send(
            Request::get(format!("/v2/{}/blobs/{}", i.repo, desc.digest))
                .header("range", format!("bytes={}-{}", len + 10, len + 20)),
        )
        .await
        .map_err(|e| {
            cx.fail(
                "R026",
                format!("a well-formed 416 answer to a Range past the end of the blob; {e}"),
            )
        })?;
    cx.expect_status(
        &r,
        &[416],
        "R026",
        "a Range starting past the end of the blob",
    )?;
    Ok(Verdict::Pass)
}

async fn repo_unknown(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("never-created");
    let digest = absent_digest(cx);
    let r = cx.get_manifest(&repo, "latest").await?;
    cx.expect_status(
        &r,
        &[404],
        "R080",
        "GET of a manifest in a repository that does not exist",
    )?;
    let r = cx
        .send(Request::get(format!("/v2/{repo}/blobs/{digest}")))
        .await?;
    cx.expect_status(
        &r,
        &[404],
        "R080",
        "GET of a blob in a repository that does not exist",
    )?;
    Ok(Verdict::Pass)
}
