//! Chunked uploads: PATCH ranges and their `Range` answers, the status GET, the
//! closing PUT with or without a final chunk, and the 416 rules.

use bytes::Bytes;

use super::push::{expect_pullable, open_session, with_digest};
use super::CheckDef;
use crate::client::headers as parse;
use crate::client::{Request, Response};
use crate::harness::context::{Created, Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::{Algorithm, Digest};

/// The chunked-upload checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("push.chunked", Push, "PATCH chunks each answer 202 with Location and Range: 0-<end>; the status GET answers 204; PUT answers 201", ["R005", "R050", "R056", "R058"], chunked),
        harness_check!("push.chunked-final-in-put", Push, "the last chunk may travel in the closing PUT, which answers 201", ["R050", "R056"], final_in_put),
        harness_check!("push.chunk-out-of-order", Push, "a PATCH leaving a gap after the bytes received answers 416", ["R053"], out_of_order),
        harness_check!("push.chunk-repeated", Push, "sending the same chunk twice answers 416 the second time", ["R053"], repeated),
        harness_check!("push.chunk-final-out-of-order", Push, "a closing PUT whose chunk leaves a gap answers 416", ["R057"], final_out_of_order),
        harness_check!("push.upload-unknown", Push, "GET, PATCH and PUT of an unknown upload location answer 404", ["R143"], upload_unknown),
    ]
}

/// The minimum chunk size announced on a POST answer, if any.
pub(crate) fn min_chunk(r: &Response) -> Option<usize> {
    r.header("oci-chunk-min-length")
        .and_then(|v| v.trim().parse().ok())
}

/// Sends one PATCH of `bytes[start..end)` to `loc`; checks 202, Location and Range.
pub(crate) async fn patch_chunk(cx: &Ctx, loc: &str, chunk: &[u8], start: usize) -> Step<String> {
    let end = start + chunk.len() - 1;
    let r = cx
        .send(
            Request::patch(loc.to_string())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{end}"))
                .body(Bytes::copy_from_slice(chunk)),
        )
        .await?;
    cx.expect_status(&r, &[202], "R050", "PATCH of an in-order chunk")?;
    let next = cx.location(&r, "R050", "a PATCH answer")?;
    let range = r.header("range");
    cx.ensure(
        range.and_then(parse::parse_upload_range) == Some(end as u64),
        "R050",
        || {
            format!(
                "the PATCH answer carries Range: 0-{end}; got {}",
                range.unwrap_or("no Range header")
            )
        },
    )?;
    Ok(next)
}

/// Uploads `bytes` in chunks of the given sizes (the last chunk in the PUT when
/// `last_in_put`), checking every answer; returns the digest.
pub(crate) async fn chunked_upload(
    cx: &Ctx,
    repo: &str,
    bytes: &Bytes,
    sizes: &[usize],
    last_in_put: bool,
) -> Step<Digest> {
    let digest = Algorithm::Sha256.digest_of(bytes);
    let (_, mut loc) = open_session(cx, repo, "").await?;
    let mut start = 0;
    let patched = if last_in_put {
        sizes.len().saturating_sub(1)
    } else {
        sizes.len()
    };
    for &size in &sizes[..patched] {
        loc = patch_chunk(cx, &loc, &bytes[start..start + size], start).await?;
        start += size;
    }
    let mut put = Request::put(with_digest(&loc, &digest.to_string()));
    if start < bytes.len() {
        put = put
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{start}-{}", bytes.len() - 1))
            .body(bytes.slice(start..));
    }
    let r = cx.send(put).await?;
    cx.expect_status(&r, &[201], "R056", "the PUT closing a chunked upload")?;
    cx.created(Created::Blob(repo.to_string(), digest.clone()));
    let blob_loc = cx.location(&r, "R056", "the PUT closing a chunked upload")?;
    expect_pullable(cx, &blob_loc, bytes, "R056").await?;
    Ok(digest)
}

/// Chunk size for the fixed checks: the announced minimum, or 1 KiB.
async fn chunk_size(cx: &Ctx, repo: &str) -> Step<usize> {
    let (r, loc) = open_session(cx, repo, "").await?;
    let _ = cx.send(Request::delete(loc)).await?;
    Ok(min_chunk(&r).unwrap_or(1024).max(1))
}

async fn chunked(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("chunks");
    let size = chunk_size(cx, &repo).await?;
    let bytes = cx.unique_bytes(size * 3 + 17);
    let digest = Algorithm::Sha256.digest_of(&bytes);
    let (_, loc) = open_session(cx, &repo, "").await?;
    let loc = patch_chunk(cx, &loc, &bytes[..size], 0).await?;
    let loc = patch_chunk(cx, &loc, &bytes[size..2 * size], size).await?;
    let status = cx.send(Request::get(loc)).await?;
    cx.expect_status(&status, &[204], "R058", "GET of an active upload location")?;
    let loc = cx.location(&status, "R058", "the upload status GET")?;
    let range = status.header("range");
    cx.ensure(
        range.and_then(parse::parse_upload_range) == Some(2 * size as u64 - 1),
        "R058",
        || {
            format!(
                "the status GET carries Range: 0-{}; got {}",
                2 * size - 1,
                range.unwrap_or("no Range header")
            )
        },
    )?;
    let loc = patch_chunk(cx, &loc, &bytes[2 * size..], 2 * size).await?;
    let r = cx
        .send(Request::put(with_digest(&loc, &digest.to_string())))
        .await?;
    cx.expect_status(&r, &[201], "R056", "the PUT closing a chunked upload")?;
    cx.created(Created::Blob(repo.clone(), digest));
    let blob_loc = cx.location(&r, "R056", "the PUT closing a chunked upload")?;
    expect_pullable(cx, &blob_loc, &bytes, "R056").await?;
    Ok(Verdict::Pass)
}

async fn final_in_put(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("chunks");
    let size = chunk_size(cx, &repo).await?;
    let bytes = cx.unique_bytes(size * 2 + 5);
    chunked_upload(cx, &repo, &bytes, &[size, size, 5], true).await?;
    Ok(Verdict::Pass)
}

/// Opens a session and sends one in-order chunk; returns (location, chunk, size).
async fn started(cx: &Ctx) -> Step<(String, Bytes, usize)> {
    cx.need_push()?;
    let repo = cx.repo("chunks");
    let size = chunk_size(cx, &repo).await?;
    let bytes = cx.unique_bytes(size);
    let (_, loc) = open_session(cx, &repo, "").await?;
    let loc = patch_chunk(cx, &loc, &bytes, 0).await?;
    Ok((loc, bytes, size))
}

async fn out_of_order(cx: &Ctx) -> Step<Verdict> {
    let (loc, bytes, size) = started(cx).await?;
    let r = cx
        .send(
            Request::patch(loc.clone())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{}-{}", size + 10, 2 * size + 9))
                .body(bytes),
        )
        .await?;
    cx.expect_status(
        &r,
        &[416],
        "R053",
        "a PATCH starting 10 bytes past the end of what was received",
    )?;
    let _ = cx.send(Request::delete(loc)).await?;
    Ok(Verdict::Pass)
}

async fn repeated(cx: &Ctx) -> Step<Verdict> {
    let (loc, bytes, size) = started(cx).await?;
    let r = cx
        .send(
            Request::patch(loc.clone())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("0-{}", size - 1))
                .body(bytes),
        )
        .await?;
    cx.expect_status(
        &r,
        &[416],
        "R053",
        "the first chunk sent again to the latest location",
    )?;
    let _ = cx.send(Request::delete(loc)).await?;
    Ok(Verdict::Pass)
}

async fn final_out_of_order(cx: &Ctx) -> Step<Verdict> {
    let (loc, bytes, size) = started(cx).await?;
    let mut whole = bytes.to_vec();
    whole.extend_from_slice(&bytes);
    let digest = Algorithm::Sha256.digest_of(&whole);
    let r = cx
        .send(
            Request::put(with_digest(&loc, &digest.to_string()))
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{}-{}", size + 10, 2 * size + 9))
                .body(bytes),
        )
        .await?;
    cx.expect_status(
        &r,
        &[416],
        "R057",
        "a closing PUT whose chunk starts 10 bytes past the end received",
    )?;
    let _ = cx.send(Request::delete(loc)).await?;
    Ok(Verdict::Pass)
}

async fn upload_unknown(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.image().await?.repo;
    let loc = format!("/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000");
    let r = cx.send(Request::get(loc.clone())).await?;
    cx.expect_status(&r, &[404], "R143", "GET of an unknown upload location")?;
    if cx.options().push {
        let r = cx
            .send(
                Request::patch(loc.clone())
                    .header("content-type", "application/octet-stream")
                    .header("content-range", "0-3")
                    .body(Bytes::from_static(b"abcd")),
            )
            .await?;
        cx.expect_status(&r, &[404], "R143", "PATCH of an unknown upload location")?;
        let digest = Algorithm::Sha256.digest_of(b"abcd");
        let r = cx
            .send(Request::put(format!("{loc}?digest={digest}")).body(Bytes::from_static(b"abcd")))
            .await?;
        cx.expect_status(&r, &[404], "R143", "PUT of an unknown upload location")?;
    }
    Ok(Verdict::Pass)
}
