//! Referrers phases: push many artifacts whose `subject` is one image (one in ten
//! of a second artifact type, for the filter), walk the listing once to find the
//! pages the registry makes, then time the first and the last page, with and
//! without an `artifactType` filter.

use std::sync::Arc;

use bytes::Bytes;
use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde::Deserialize;

use super::manifests::push_image;
use super::{finish, not_run, note, Ctx};
use crate::bench::client::BenchClient;
use crate::bench::content::{referrer_manifest, sha256};
use crate::bench::driver;
use crate::bench::plan::Phase;
use crate::bench::report::{Outcome, PhaseResult, Unit};
use crate::bench::target::{owe, Kind, Pages, ReferrersSeed, Target};

/// Artifact type of most referrers.
pub const SBOM_TYPE: &str = "application/vnd.marina.bench.sbom";
/// Artifact type of every tenth referrer, the one filtered for.
pub const SIGNATURE_TYPE: &str = "application/vnd.marina.bench.signature";
/// Most pages walked when following `Link` headers.
const MAX_PAGES: u64 = 10_000;

fn artifact_type(i: u64) -> &'static str {
    if i.is_multiple_of(10) {
        SIGNATURE_TYPE
    } else {
        SBOM_TYPE
    }
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<serde::de::IgnoredAny>,
}

/// One page: its entries, whether a filter was applied, and the next page.
async fn page(reg: &BenchClient, target: &str) -> anyhow::Result<(u64, bool, Option<String>)> {
    let a = reg.get(target, 64 << 20).await?;
    if a.status != StatusCode::OK {
        anyhow::bail!("GET referrers: unexpected {}", a.status);
    }
    let index: Index = serde_json::from_slice(&a.body.unwrap_or_default())?;
    let applied = a.headers.contains_key("oci-filters-applied");
    let next = a
        .headers
        .get(reqwest::header::LINK)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::client::headers::next_link([v]).ok().flatten());
    Ok((index.manifests.len() as u64, applied, next))
}

/// Follows `Link` headers from `first` to the last page.
async fn walk(reg: &BenchClient, first: String) -> anyhow::Result<(Pages, bool)> {
    let mut pages = Pages {
        first: first.clone(),
        last: first.clone(),
        count: 0,
        entries: 0,
    };
    let mut applied = false;
    let mut next = Some(first);
    while let Some(target) = next.take() {
        let (entries, a, n) = page(reg, &target).await?;
        pages.count += 1;
        pages.entries += entries;
        pages.last = target;
        applied |= a;
        if pages.count >= MAX_PAGES {
            break;
        }
        next = n;
    }
    Ok((pages, applied))
}

/// Pushes `referrers` artifacts referring to one subject.
pub async fn seed(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let repo = ctx.repo("referrers");
    let subject = match push_image(t, &repo, "subject", &format!("{}/referrers", ctx.prefix)).await
    {
        Ok(i) => Arc::new(i),
        Err(e) => {
            t.referrers = Some(ReferrersSeed::Unavailable(format!(
                "could not push the subject: {e:#}"
            )));
            return not_run(
                ctx,
                phase,
                Outcome::Failed,
                format!("could not push the subject: {e:#}"),
            );
        }
    };
    let first = format!("/v2/{repo}/referrers/{}", subject.digest);
    match t.registry.get(&first, 0).await {
        Ok(a) if a.status == StatusCode::OK => {}
        other => {
            let why = match other {
                Ok(a) => format!(
                    "no referrers API (GET …/referrers/<digest> answered {})",
                    a.status
                ),
                Err(e) => format!("no referrers API ({e:#})"),
            };
            t.referrers = Some(ReferrersSeed::Unavailable(why.clone()));
            return not_run(ctx, phase, Outcome::Unsupported, why);
        }
    }
    let n = ctx.settings.referrers;
    bar.set_length(n);
    let bounds = ctx.count_bounds(ctx.settings.concurrency, n);
    let (reg, ledger, prefix) = (t.registry.clone(), t.ledger.clone(), ctx.prefix.clone());
    let tally = driver::run(bounds, bar, {
        let subject = subject.clone();
        move |i| {
            let (reg, ledger, subject, prefix) =
                (reg.clone(), ledger.clone(), subject.clone(), prefix.clone());
            async move {
                let bytes = Bytes::from(referrer_manifest(
                    artifact_type(i),
                    &subject.digest,
                    subject.bytes.len(),
                    &format!("{prefix} referrer {i}"),
                ));
                let digest = sha256(&bytes);
                reg.put_manifest(&subject.repo, &digest, bytes, &[]).await?;
                owe(&ledger, Kind::Manifest, &subject.repo, &digest);
                Ok(0)
            }
        }
    })
    .await;
    let errors = tally.errors;
    let mut r = finish(ctx, phase, Unit::Ops, bounds, tally, false);
    if errors > 0 || r.ops == 0 {
        t.referrers = Some(ReferrersSeed::Unavailable("referrer seeding failed".into()));
        return r;
    }
    let filtered_first = format!("{first}?artifactType={SIGNATURE_TYPE}");
    let walked = async {
        let (all, _) = walk(&t.registry, first).await?;
        let (filtered, applied) = walk(&t.registry, filtered_first).await?;
        anyhow::Ok((all, filtered, applied))
    };
    match walked.await {
        Ok((all, filtered, filter_applied)) => {
            note(
                &mut r,
                format!(
                    "listing: {} referrers in {} pages; filtered: {} in {} pages{}",
                    all.entries,
                    all.count,
                    filtered.entries,
                    filtered.count,
                    if filter_applied {
                        ""
                    } else {
                        " (filter not applied by the registry)"
                    }
                ),
            );
            if all.entries != r.ops {
                let expected = format!("expected {} referrers in the listing", r.ops);
                note(&mut r, expected);
                r.outcome = Outcome::Partial;
            }
            t.referrers = Some(ReferrersSeed::Ready {
                all,
                filtered,
                filter_applied,
            });
        }
        Err(e) => {
            t.referrers = Some(ReferrersSeed::Unavailable(format!(
                "walking the pages failed: {e:#}"
            )));
            note(&mut r, format!("walking the pages failed: {e:#}"));
            r.outcome = Outcome::Partial;
        }
    }
    r
}

/// Times one page of the referrers, one request at a time, for the phase duration.
pub async fn list(
    ctx: &Ctx,
    t: &mut Target,
    bar: &ProgressBar,
    filtered: bool,
    last: bool,
    phase: Phase,
) -> PhaseResult {
    let (pages, applied) = match &t.referrers {
        Some(ReferrersSeed::Ready {
            all,
            filtered: f,
            filter_applied,
        }) => (
            if filtered { f.clone() } else { all.clone() },
            *filter_applied,
        ),
        Some(ReferrersSeed::Unavailable(why)) => {
            let outcome = if why.starts_with("no referrers API") {
                Outcome::Unsupported
            } else {
                Outcome::Failed
            };
            return not_run(ctx, phase, outcome, why.clone());
        }
        None => return not_run(ctx, phase, Outcome::Failed, "referrers were not seeded"),
    };
    let target = if last {
        pages.last.clone()
    } else {
        pages.first.clone()
    };
    let bounds = ctx.rate_bounds(1);
    let reg = t.registry.clone();
    let tally = driver::run(bounds, bar, move |_| {
        let (reg, target) = (reg.clone(), target.clone());
        async move {
            let (entries, _, _) = page(&reg, &target).await?;
            if entries == 0 {
                anyhow::bail!("empty referrers page");
            }
            Ok(entries)
        }
    })
    .await;
    let per_page = tally.bytes / tally.ops.max(1);
    let mut r = finish(ctx, phase, Unit::Ops, bounds, tally, true);
    r.bytes = 0;
    note(
        &mut r,
        format!(
            "{} referrers per page, page {} of {}",
            per_page,
            if last { pages.count } else { 1 },
            pages.count
        ),
    );
    if filtered && !applied {
        note(&mut r, "filter not applied by the registry");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_ten_is_a_signature() {
        let sigs = (0..1000)
            .filter(|&i| artifact_type(i) == SIGNATURE_TYPE)
            .count();
        assert_eq!(sigs, 100);
    }
}
