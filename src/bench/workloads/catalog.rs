//! Catalog phases: create many repositories (the empty blob mounted from one source
//! repository, then a small manifest in each), then time the first page of the
//! catalog and the page that ends at the last seeded repository (`last=`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde::Deserialize;

use super::{finish, not_run, note, Ctx};
use crate::bench::content::{image_manifest, sha256, EMPTY_BLOB};
use crate::bench::driver;
use crate::bench::plan::Phase;
use crate::bench::report::{Outcome, PhaseResult, Unit};
use crate::bench::target::{owe, Kind, Target};

/// Name of seeded repository `i` of `n`: zero-padded so lexical order is numeric.
fn repo_name(ctx: &Ctx, i: u64, n: u64) -> String {
    let width = n.saturating_sub(1).to_string().len().max(5);
    ctx.repo(&format!("catalog/r{i:0width$}"))
}

/// Creates `repos` repositories, each holding one manifest.
pub async fn seed(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let n = ctx.settings.repos;
    let src = ctx.repo("catalog-src");
    let empty = sha256(EMPTY_BLOB);
    if let Err(e) = t
        .registry
        .push_bytes(&src, Bytes::from_static(EMPTY_BLOB), &empty)
        .await
    {
        return not_run(
            ctx,
            phase,
            Outcome::Failed,
            format!("could not push the empty blob: {e:#}"),
        );
    }
    t.owe(Kind::Layer, &src, &empty);
    let manifest = Bytes::from(image_manifest(&format!("{}/catalog", ctx.prefix)));
    let digest = Arc::new(sha256(&manifest));
    let uploads = Arc::new(AtomicU64::new(0));
    bar.set_length(n);
    let bounds = ctx.count_bounds(ctx.settings.concurrency, n);
    let (reg, ledger, ctx2, uploads2) = (
        t.registry.clone(),
        t.ledger.clone(),
        ctx.clone(),
        uploads.clone(),
    );
    let tally = driver::run(bounds, bar, move |i| {
        let (reg, ledger, ctx, src, empty, manifest, digest, uploads) = (
            reg.clone(),
            ledger.clone(),
            ctx2.clone(),
            src.clone(),
            empty.clone(),
            manifest.clone(),
            digest.clone(),
            uploads2.clone(),
        );
        async move {
            let repo = repo_name(&ctx, i, n);
            if !reg.mount(&repo, &empty, &src).await? {
                uploads.fetch_add(1, Ordering::Relaxed);
                reg.push_bytes(&repo, Bytes::from_static(EMPTY_BLOB), &empty)
                    .await?;
            }
            owe(&ledger, Kind::Layer, &repo, &empty);
            reg.put_manifest(&repo, "latest", manifest, &[]).await?;
            owe(&ledger, Kind::Manifest, &repo, &digest);
            Ok(0)
        }
    })
    .await;
    let (errors, started) = (tally.errors, tally.started);
    let mut r = finish(ctx, phase, Unit::Ops, bounds, tally, false);
    let uploads = uploads.load(Ordering::Relaxed);
    if uploads > 0 {
        note(
            &mut r,
            format!("{uploads} mounts were refused; the blob was uploaded instead"),
        );
    }
    if errors == 0 && started > 0 {
        t.repos = Some(started);
    }
    r
}

#[derive(Deserialize)]
struct Catalog<'a> {
    #[serde(borrow, default)]
    repositories: Option<Vec<&'a str>>,
}

/// Times one catalog page, one request at a time, for the phase duration.
pub async fn list(
    ctx: &Ctx,
    t: &mut Target,
    bar: &ProgressBar,
    last: bool,
    phase: Phase,
) -> PhaseResult {
    let Some(count) = t.repos else {
        return not_run(
            ctx,
            phase,
            Outcome::Failed,
            "repository seeding did not complete",
        );
    };
    let page = ctx.settings.page;
    let after = (last && count > page).then(|| repo_name(ctx, count - page - 1, count));
    let path = match &after {
        Some(a) => format!("/v2/_catalog?n={page}&last={a}"),
        None => format!("/v2/_catalog?n={page}"),
    };
    let expected_first = after.as_ref().map(|_| repo_name(ctx, count - page, count));
    let most = Arc::new(AtomicU64::new(0));
    let bounds = ctx.rate_bounds(1);
    let (reg, most2) = (t.registry.clone(), most.clone());
    let tally = driver::run(bounds, bar, move |_| {
        let (reg, path, expected_first, most) = (
            reg.clone(),
            path.clone(),
            expected_first.clone(),
            most2.clone(),
        );
        async move {
            let a = reg.get(&path, 256 << 20).await?;
            if a.status != StatusCode::OK {
                anyhow::bail!("catalog: unexpected {}", a.status);
            }
            let body = a.body.unwrap_or_default();
            let c: Catalog = serde_json::from_slice(&body)?;
            let repos = c.repositories.unwrap_or_default();
            if repos.is_empty() {
                anyhow::bail!("empty catalog page");
            }
            most.fetch_max(repos.len() as u64, Ordering::Relaxed);
            if let Some(e) = &expected_first {
                if repos.len() as u64 <= page && repos.first() != Some(&e.as_str()) {
                    anyhow::bail!("catalog page starts at {:?}, expected {e:?}", repos.first());
                }
            }
            Ok(a.len)
        }
    })
    .await;
    let mut r = finish(ctx, phase, Unit::Ops, bounds, tally, true);
    let most = most.load(Ordering::Relaxed);
    if most > page {
        note(
            &mut r,
            format!("no paging: n={page} answered {most} repositories"),
        );
    }
    if count < ctx.settings.repos {
        note(
            &mut r,
            format!(
                "only {count} of {} repositories were seeded",
                ctx.settings.repos
            ),
        );
    }
    r
}
