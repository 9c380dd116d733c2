//! Deletes of tags, manifests and blobs, and what they make visible: a deleted
//! tag is gone while its manifest stays; a manifest deleted by digest takes every
//! tag with it.

use super::tags::{get_page, push_tags};
use super::CheckDef;
use crate::client::{Request, Response};
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;

/// The delete checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("delete.tag", Delete, "DELETE of a tag answers 202 (or 400/405 when disabled); the tag is gone, its manifest stays", ["R005", "R119", "R120"], tag),
        harness_check!("delete.manifest", Delete, "DELETE by digest answers 202 (or 400/405 when disabled); the manifest and all its tags are gone", ["R005", "R121", "R123"], manifest),
        harness_check!("delete.manifest-unknown-repo", Delete, "DELETE of a manifest in a repository that does not exist answers 404", ["R122"], manifest_unknown_repo),
        harness_check!("delete.blob", Delete, "DELETE of a blob answers 202 (or 400/405 when disabled); the blob is gone", ["R125", "R127"], blob),
        harness_check!("delete.blob-unknown", Delete, "DELETE of a blob that is not there answers 404", ["R126", "R127"], blob_unknown),
    ]
}

/// Interprets the answer to a DELETE: `Ok(true)` deleted, `Ok(false)` disabled.
/// A 401/403 is not permitted (see [`Ctx::expect_status`]).
fn deleted(cx: &Ctx, r: &Response, ok_req: &str, what: &str) -> Step<bool> {
    cx.expect_status(
        r,
        &[202, 400, 405],
        ok_req,
        &format!("{what} (400/405 when deletion is disabled)"),
    )?;
    Ok(r.status == 202)
}

async fn tag(cx: &Ctx) -> Step<Verdict> {
    cx.need_delete()?;
    let repo = cx.repo("delete");
    let desc = push_tags(cx, &repo, &["keep", "drop"]).await?;
    let r = cx
        .send(Request::delete(format!("/v2/{repo}/manifests/drop")))
        .await?;
    if !deleted(cx, &r, "R119", "DELETE of a tag")? {
        return Ok(Verdict::unsupported(format!(
            "tag deletion is disabled ({})",
            r.status
        )));
    }
    let g = cx.get_manifest(&repo, "drop").await?;
    cx.expect_status(&g, &[404], "R119", "GET of a deleted tag")?;
    for reference in ["keep".to_string(), desc.digest.to_string()] {
        let g = cx.get_manifest(&repo, &reference).await?;
        cx.expect_status(
            &g,
            &[200],
            "R119",
            "GET of the manifest (by another tag or digest) after deleting one tag",
        )?;
    }
    Ok(Verdict::Pass)
}

async fn manifest(cx: &Ctx) -> Step<Verdict> {
    cx.need_delete()?;
    let repo = cx.repo("delete");
    let tags = ["gone-1", "gone-2", "gone-3"];
    let desc = push_tags(cx, &repo, &tags).await?;
    let r = cx
        .send(Request::delete(format!(
            "/v2/{repo}/manifests/{}",
            desc.digest
        )))
        .await?;
    if !deleted(cx, &r, "R121", "DELETE of a manifest by digest")? {
        return Ok(Verdict::unsupported(format!(
            "manifest deletion is disabled ({})",
            r.status
        )));
    }
    let g = cx.get_manifest(&repo, &desc.digest.to_string()).await?;
    cx.expect_status(&g, &[404], "R121", "GET of a deleted manifest")?;
    for t in tags {
        let g = cx.get_manifest(&repo, t).await?;
        cx.expect_status(
            &g,
            &[404],
            "R121",
            "GET of a tag whose manifest was deleted by digest",
        )?;
    }
    let l = cx
        .send(Request::get(format!("/v2/{repo}/tags/list")))
        .await?;
    if l.status == 200 {
        let (_, list) = get_page(cx, format!("/v2/{repo}/tags/list")).await?;
        let left: Vec<String> = list
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter(|t| tags.contains(&t.as_str()))
            .collect();
        cx.ensure(left.is_empty(), "R121", || {
            format!(
                "tags of a manifest deleted by digest leave the tag list; still listed {left:?}"
            )
        })?;
    }
    Ok(Verdict::Pass)
}

async fn manifest_unknown_repo(cx: &Ctx) -> Step<Verdict> {
    cx.need_delete()?;
    let repo = cx.repo("never-created");
    let digest = super::pull::absent_digest(cx);
    let r = cx
        .send(Request::delete(format!("/v2/{repo}/manifests/{digest}")))
        .await?;
    if matches!(r.status, 400 | 405) {
        return Ok(Verdict::unsupported(format!(
            "manifest deletion is disabled ({})",
            r.status
        )));
    }
    cx.expect_status(
        &r,
        &[404],
        "R122",
        "DELETE of a manifest in a repository that does not exist",
    )?;
    Ok(Verdict::Pass)
}

async fn blob(cx: &Ctx) -> Step<Verdict> {
    cx.need_delete()?;
    let repo = cx.repo("delete");
    let bytes = cx.unique_bytes(321);
    let digest = cx.push_blob(&repo, &bytes).await?;
    let r = cx
        .send(Request::delete(format!("/v2/{repo}/blobs/{digest}")))
        .await?;
    if !deleted(cx, &r, "R125", "DELETE of a blob")? {
        return Ok(Verdict::unsupported(format!(
            "blob deletion is disabled ({})",
            r.status
        )));
    }
    let g = cx
        .send(Request::get(format!("/v2/{repo}/blobs/{digest}")))
        .await?;
    cx.expect_status(&g, &[404], "R125", "GET of a deleted blob")?;
    Ok(Verdict::Pass)
}

async fn blob_unknown(cx: &Ctx) -> Step<Verdict> {
    cx.need_delete()?;
    let repo = cx.image().await?.repo;
    let digest = super::pull::absent_digest(cx);
    let r = cx
        .send(Request::delete(format!("/v2/{repo}/blobs/{digest}")))
        .await?;
    if matches!(r.status, 400 | 405) {
        return Ok(Verdict::unsupported(format!(
            "blob deletion is disabled ({})",
            r.status
        )));
    }
    cx.expect_status(&r, &[404], "R126", "DELETE of a blob that is not there")?;
    Ok(Verdict::Pass)
}
