//! Blob properties: uploads under random chunk partitions with sizes around the
//! chunk boundaries, and random Range reads.

use bytes::Bytes;
use proptest::prelude::*;

use super::run_property;
use crate::client::Request;
use crate::harness::checks::pull::range_read;
use crate::harness::checks::push::open_session;
use crate::harness::checks::push_chunks::{chunked_upload, min_chunk};
use crate::harness::checks::CheckDef;
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;

/// The blob property checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("properties.blob-chunks", Properties, "any partition of a blob into in-order chunks (sizes around the chunk boundary, last chunk in PATCH or PUT) uploads it intact", ["R050", "R056"], chunks),
        harness_check!("properties.range-reads", Properties, "random Range reads of a blob answer 206 with exactly the bytes asked for", ["R026"], ranges),
    ]
}

/// A chunk plan: sizes of each chunk, and whether the last goes in the PUT.
#[derive(Debug, Clone)]
struct Plan {
    sizes: Vec<usize>,
    last_in_put: bool,
}

fn plan(unit: usize, min: usize) -> impl Strategy<Value = Plan> {
    let size = prop_oneof![
        Just(unit.saturating_sub(1).max(min).max(1)),
        Just(unit),
        Just(unit + 1),
        Just(2 * unit),
        min.max(1)..=3 * unit,
    ];
    let last = prop_oneof![
        Just(1usize),
        Just(unit.saturating_sub(1).max(1)),
        Just(unit),
        1..=2 * unit
    ];
    (proptest::collection::vec(size, 0..4), last, any::<bool>()).prop_map(
        |(mut sizes, last, last_in_put)| {
            sizes.push(last);
            Plan { sizes, last_in_put }
        },
    )
}

async fn chunks(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    let repo = cx.repo("prop-chunks");
    let (r, loc) = open_session(cx, &repo, "").await?;
    let _ = cx.send(Request::delete(loc)).await?;
    let min = min_chunk(&r).unwrap_or(0);
    let unit = if min > 0 { min } else { 64 };
    run_property(
        cx,
        "blob-chunks",
        move || plan(unit, min),
        move |cx, p: Plan| {
            let repo = repo.clone();
            async move {
                let total: usize = p.sizes.iter().sum();
                let bytes: Bytes = cx.unique_bytes(total);
                chunked_upload(&cx, &repo, &bytes, &p.sizes, p.last_in_put)
                    .await
                    .map(|_| ())
            }
        },
    )
    .await
}

async fn ranges(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("prop-ranges");
    let bytes = cx.unique_bytes(3000);
    let digest = cx.push_blob(&repo, &bytes).await?;
    let len = bytes.len() as u64;
    let strategy = (0..len, 1..len + 50);
    run_property(
        cx,
        "range-reads",
        move || strategy,
        move |cx, (first, span): (u64, u64)| {
            let (repo, bytes, digest) = (repo.clone(), bytes.clone(), digest.clone());
            async move {
                match range_read(&cx, &repo, &digest, &bytes, (first, first + span - 1)).await? {
                    Some(()) => Ok(()),
                    None => Err(Verdict::unsupported(
                        "the registry answers Range requests with the whole blob (200)",
                    )),
                }
            }
        },
    )
    .await
}
