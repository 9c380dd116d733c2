//! Manifest phases: GET and HEAD by tag and by digest at many connections, and tag
//! pushes (the same manifest `PUT` under a new tag each time).

use std::sync::Arc;

use bytes::Bytes;
use indicatif::ProgressBar;
use reqwest::StatusCode;

use super::{finish, not_run, Ctx};
use crate::bench::client::{BenchClient, MANIFEST_ACCEPT};
use crate::bench::content::{image_manifest, sha256, EMPTY_BLOB};
use crate::bench::driver;
use crate::bench::lean::Pool;
use crate::bench::plan::Phase;
use crate::bench::report::{Outcome, PhaseResult, Unit};
use crate::bench::target::{Image, Kind, Target};

/// Pushes the empty blob and a small image manifest tagged `tag` into `repo`
/// (untimed preparation), noting both for cleanup.
pub(super) async fn push_image(
    t: &Target,
    repo: &str,
    tag: &str,
    label: &str,
) -> anyhow::Result<Image> {
    let empty = sha256(EMPTY_BLOB);
    t.registry
        .push_bytes(repo, Bytes::from_static(EMPTY_BLOB), &empty)
        .await?;
    t.owe(Kind::Layer, repo, &empty);
    let bytes = Bytes::from(image_manifest(label));
    let digest = sha256(&bytes);
    t.registry
        .put_manifest(repo, tag, bytes.clone(), &[])
        .await?;
    t.owe(Kind::Manifest, repo, &digest);
    Ok(Image {
        repo: repo.to_string(),
        tag: tag.to_string(),
        digest,
        bytes,
    })
}

/// The manifest of the manifest phases, pushed on first use.
async fn image(ctx: &Ctx, t: &mut Target) -> anyhow::Result<Image> {
    if let Some(i) = &t.image {
        return Ok(i.clone());
    }
    let i = push_image(t, &ctx.repo("manifests"), "latest", &ctx.prefix).await?;
    t.image = Some(i.clone());
    Ok(i)
}

/// One manifest GET or HEAD: through the lean pool's prepared `request` when there
/// is one, else through the general client.
async fn fetch_one(
    reg: &BenchClient,
    lean: Option<&(Pool, Vec<u8>)>,
    img: &Image,
    head: bool,
    by_digest: bool,
) -> anyhow::Result<u64> {
    let (status, len) = match lean {
        Some((pool, request)) => {
            let r = pool.send(request, head, false).await?;
            (r.status, r.len)
        }
        None => {
            let reference = if by_digest { &img.digest } else { &img.tag };
            let a = reg.get_manifest(&img.repo, reference, head).await?;
            (a.status.as_u16(), a.len)
        }
    };
    if status != StatusCode::OK {
        anyhow::bail!(
            "manifest {}: unexpected {status}",
            if head { "HEAD" } else { "GET" }
        );
    }
    let expected = if head { 0 } else { img.bytes.len() as u64 };
    if len != expected {
        anyhow::bail!("manifest GET: {len} bytes, expected {expected}");
    }
    Ok(len)
}

/// GET or HEAD of one manifest, by tag or digest, from `connections` workers for
/// the phase duration.
pub async fn fetch(
    ctx: &Ctx,
    t: &mut Target,
    bar: &ProgressBar,
    head: bool,
    by_digest: bool,
    phase: Phase,
) -> PhaseResult {
    let img = match image(ctx, t).await {
        Ok(i) => Arc::new(i),
        Err(e) => {
            return not_run(
                ctx,
                phase,
                Outcome::Failed,
                format!("could not push the manifest: {e:#}"),
            )
        }
    };
    let bounds = ctx.rate_bounds(ctx.settings.connections);
    // The lean pool sends no credentials: signed runs use the general client.
    let lean = (!t.registry.signed())
        .then(|| Pool::new(t.registry.base()))
        .flatten()
        .map(|pool| {
            let reference = if by_digest { &img.digest } else { &img.tag };
            let path = format!("/v2/{}/manifests/{reference}", img.repo);
            let method = if head { "HEAD" } else { "GET" };
            let request = pool.request(method, &path, &[("accept", MANIFEST_ACCEPT)]);
            Arc::new((pool, request))
        });
    let op = {
        let reg = t.registry.clone();
        move || {
            let (reg, img, lean) = (reg.clone(), img.clone(), lean.clone());
            async move { fetch_one(&reg, lean.as_deref(), &img, head, by_digest).await }
        }
    };
    // Open the connections before the clock starts: one request per worker.
    let warm = op.clone();
    let _ = driver::run(
        ctx.count_bounds(ctx.settings.connections, ctx.settings.connections as u64),
        &ProgressBar::hidden(),
        move |_| warm(),
    )
    .await;
    let tally = driver::run(bounds, bar, move |_| op()).await;
    finish(ctx, phase, Unit::Ops, bounds, tally, true)
}

/// Tags one manifest `tag_pushes` times, one `PUT` of its bytes per new tag.
pub async fn tag_push(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let repo = ctx.repo("tag-push");
    let img = match push_image(t, &repo, "base", &format!("{}/tag-push", ctx.prefix)).await {
        Ok(i) => Arc::new(i),
        Err(e) => {
            return not_run(
                ctx,
                phase,
                Outcome::Failed,
                format!("could not push the manifest: {e:#}"),
            )
        }
    };
    let n = ctx.settings.tag_pushes;
    bar.set_length(n);
    let bounds = ctx.count_bounds(ctx.settings.concurrency, n);
    let reg = t.registry.clone();
    let tally = driver::run(bounds, bar, move |i| {
        let (reg, img) = (reg.clone(), img.clone());
        async move {
            reg.put_manifest(&img.repo, &format!("p{i:07}"), img.bytes.clone(), &[])
                .await?;
            Ok(0)
        }
    })
    .await;
    finish(ctx, phase, Unit::Ops, bounds, tally, false)
}
