//! Tag list phases: seed one manifest under many tags (batched with `?tag=` when the
//! registry supports it, one `PUT` per tag otherwise), then time the first page and
//! the last page (`last=`) of `n` tags.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde::Deserialize;

use super::manifests::push_image;
use super::{finish, not_run, note, Ctx};
use crate::bench::client::BenchClient;
use crate::bench::driver;
use crate::bench::plan::Phase;
use crate::bench::report::{Outcome, PhaseResult, Unit};
use crate::bench::target::{Image, TagSeed, Target};

/// Tags per `PUT` when the registry takes `?tag=` parameters.
const BATCH: u64 = 100;

/// Whether a `PUT` by digest with a `tag` parameter creates that tag.
async fn tag_params_work(reg: &BenchClient, img: &Image, tag: &str) -> bool {
    let put = reg
        .put_manifest(
            &img.repo,
            &img.digest,
            img.bytes.clone(),
            &[tag.to_string()],
        )
        .await;
    if put.is_err() {
        return false;
    }
    matches!(reg.get_manifest(&img.repo, tag, true).await, Ok(a) if a.status == StatusCode::OK)
}

/// Tags one manifest `tags` times.
pub async fn seed(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let n = ctx.settings.tags;
    let width = (n.saturating_sub(1).to_string().len()).max(6);
    let mut seed = TagSeed {
        repo: ctx.repo("tag-list"),
        count: 0,
        width,
    };
    let img = match push_image(
        t,
        &seed.repo,
        &seed.name(0),
        &format!("{}/tag-list", ctx.prefix),
    )
    .await
    {
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
    let batch = if n > 1 && tag_params_work(&t.registry, &img, &seed.name(1)).await {
        BATCH
    } else {
        1
    };
    let ops = n.div_ceil(batch);
    bar.set_length(ops);
    let bounds = ctx.count_bounds(ctx.settings.concurrency, ops);
    let (reg, names) = (t.registry.clone(), seed.clone());
    let tally = driver::run(bounds, bar, move |i| {
        let (reg, img, names) = (reg.clone(), img.clone(), names.clone());
        async move {
            let (from, to) = (i * batch, ((i + 1) * batch).min(n));
            if batch == 1 {
                reg.put_manifest(&img.repo, &names.name(i), img.bytes.clone(), &[])
                    .await?;
            } else {
                let tags: Vec<String> = (from..to).map(|k| names.name(k)).collect();
                reg.put_manifest(&img.repo, &img.digest, img.bytes.clone(), &tags)
                    .await?;
            }
            Ok(to - from)
        }
    })
    .await;
    let (errors, started) = (tally.errors, tally.started);
    let mut r = finish(ctx, phase, Unit::Ops, bounds, tally, false);
    // Report tags, not requests: `bytes` carried the number of tags of each request.
    seed.count = (started * batch).min(n);
    r.ops = r.bytes;
    r.bytes = 0;
    r.rate = r.ops as f64 / r.elapsed_s.max(1e-9);
    note(
        &mut r,
        if batch > 1 {
            format!("{BATCH} tags per PUT with ?tag= (latency is per PUT)")
        } else {
            "one PUT per tag (no ?tag= support)".to_string()
        },
    );
    if errors == 0 && seed.count > 0 {
        t.tags = Some(seed);
    }
    r
}

#[derive(Deserialize)]
struct TagList<'a> {
    #[serde(borrow, default)]
    tags: Option<Vec<&'a str>>,
}

/// Times one page of the seeded tag list, one request at a time, for the phase duration.
pub async fn list(
    ctx: &Ctx,
    t: &mut Target,
    bar: &ProgressBar,
    last: bool,
    phase: Phase,
) -> PhaseResult {
    let Some(seed) = t.tags.clone() else {
        return not_run(ctx, phase, Outcome::Failed, "tag seeding did not complete");
    };
    let page = ctx.settings.page;
    let after = (last && seed.count > page).then(|| seed.name(seed.count - page - 1));
    let path = match &after {
        Some(a) => format!("/v2/{}/tags/list?n={page}&last={a}", seed.repo),
        None => format!("/v2/{}/tags/list?n={page}", seed.repo),
    };
    let expected_first = after
        .as_ref()
        .map_or_else(|| seed.name(0), |_| seed.name(seed.count - page));
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
                anyhow::bail!("tag list: unexpected {}", a.status);
            }
            let body = a.body.unwrap_or_default();
            let list: TagList = serde_json::from_slice(&body)?;
            let tags = list.tags.unwrap_or_default();
            most.fetch_max(tags.len() as u64, Ordering::Relaxed);
            if tags.len() as u64 <= page && tags.first() != Some(&expected_first.as_str()) {
                anyhow::bail!(
                    "tag list page starts at {:?}, expected {expected_first:?}",
                    tags.first()
                );
            }
            Ok(a.len)
        }
    })
    .await;
    let mut r = finish(ctx, phase, Unit::Ops, bounds, tally, true);
    let most = most.load(Ordering::Relaxed);
    if most > page {
        note(&mut r, format!("no paging: n={page} answered {most} tags"));
    }
    if last && seed.count <= page {
        note(&mut r, "one page only: the last page is the first");
    }
    if seed.count < ctx.settings.tags {
        note(
            &mut r,
            format!(
                "only {} of {} tags were seeded",
                seed.count, ctx.settings.tags
            ),
        );
    }
    r
}
