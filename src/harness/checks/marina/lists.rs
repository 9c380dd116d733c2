//! The `_marina` repository and tag lists against content the check pushed: the
//! repositories of a namespace at any depth, tags with digests and push times,
//! sorted both ways and paged.

use std::collections::BTreeMap;

use super::{
    advertised, fresh_image, judge_order, page, push_under, registry_module, repository_module,
    sorted, time_of, walk, walk_full, walk_until, Listing, RepoEntry, Sort, TagEntry,
    REPOSITORIES_V1, TAGS_V1,
};
use crate::harness::checks::tags::push_tags;
use crate::harness::checks::CheckDef;
use crate::harness::content::Extras;
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::media_types::OCI_MANIFEST;

/// The repository and tag list checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("extensions.marina-repositories", Extensions, "_marina lists exactly a namespace's repositories at any depth, in pages linked by Link, sorted by name and push time", ["M002", "M004", "M005", "M006", "M007", "M017", "M018", "M019", "X010"], repositories),
        harness_check!("extensions.marina-tags", Extensions, "_marina lists every tag with its digest and last push time, filters by digest, sorts and pages", ["M002", "M004", "M005", "M008", "M009", "M017", "M019"], tags),
    ]
}

fn order_param(desc: bool) -> &'static str {
    if desc {
        "desc"
    } else {
        "asc"
    }
}

async fn repositories(cx: &Ctx) -> Step<Verdict> {
    let path = registry_module(cx, "repositories").await?;
    cx.need_push()?;
    let ns = cx.repo("ext-ns");
    let inside: Vec<String> = ["alpha", "beta/one", "beta/two/deep", "gamma"]
        .iter()
        .map(|s| format!("{ns}/{s}"))
        .collect();
    // Neither the namespace itself nor a sibling that only shares its first
    // characters is under it.
    let outside = [ns.clone(), format!("{ns}x/zeta")];
    for r in inside.iter().chain(&outside) {
        push_tags(cx, r, &["v1"]).await?;
    }
    // alpha again, last: its push time moves.
    push_tags(cx, &inside[0], &["v2"]).await?;
    let want = sorted(&inside);
    let listing = |params: &[(&str, &str)]| {
        let mut p = vec![("namespace", ns.as_str())];
        p.extend_from_slice(params);
        Listing::new(&path, &p, "repositories", REPOSITORIES_V1).top("namespace", ns.clone())
    };
    let keyed = |items: &[RepoEntry]| -> Step<Vec<(String, i128)>> {
        items
            .iter()
            .map(|r| Ok((r.name.clone(), time_of(cx, &r.name, &r.pushed_at)?)))
            .collect()
    };

    let all = keyed(&walk::<RepoEntry>(cx, &listing(&[])).await?.items)?;
    let names: Vec<String> = all.iter().map(|k| k.0.clone()).collect();
    cx.ensure(sorted(&names) == want, "M007", || {
        format!("the repositories under {ns}/, at any depth, are exactly {want:?}; got {names:?}")
    })?;
    let times: BTreeMap<String, i128> = all.into_iter().collect();
    let pushes = [&inside[1], &inside[2], &inside[3], &inside[0]];
    cx.ensure(
        pushes.windows(2).all(|w| times[w[0]] <= times[w[1]]),
        "M004",
        || {
            format!(
                "pushedAt is each repository's last manifest push; pushed in the order {pushes:?} (alpha also first), got {times:?}"
            )
        },
    )?;

    for (sort, desc, n) in [
        (Sort::Name, false, 1),
        (Sort::Name, true, 2),
        (Sort::Pushed, false, 1),
        (Sort::Pushed, true, 3),
    ] {
        let n_text = n.to_string();
        let l = listing(&[
            ("n", &n_text),
            ("sort", sort.as_str()),
            ("order", order_param(desc)),
        ]);
        let got = keyed(&walk_full::<RepoEntry>(cx, &l, n, "M019").await?)?;
        let names: Vec<String> = got.iter().map(|k| k.0.clone()).collect();
        cx.ensure(sorted(&names) == want, "M019", || {
            format!(
                "the pages of {} add up to {want:?}, nothing repeated; got {names:?}",
                l.target
            )
        })?;
        judge_order(&got, sort, desc).map_err(|why| cx.fail("M017", why))?;
    }

    let l = listing(&[("n", "0")]);
    let (items, next, _) = page::<RepoEntry>(cx, &l.target, &l).await?;
    cx.ensure(items.is_empty() && next.is_none(), "M018", || {
        format!(
            "n=0 gives an empty list and no Link; got {} items and Link {next:?}",
            items.len()
        )
    })?;

    // The whole registry, most recent push first, until every repository of
    // this check has been met.
    let ours: Vec<String> = inside.iter().chain(&outside).cloned().collect();
    let l = Listing::new(
        &path,
        &[("sort", "pushed"), ("order", "desc")],
        "repositories",
        REPOSITORIES_V1,
    );
    let w = walk_until::<RepoEntry>(cx, &l, |items| {
        ours.iter().all(|o| items.iter().any(|i| &i.name == o))
    })
    .await?;
    let missing: Vec<&String> = ours
        .iter()
        .filter(|o| !w.items.iter().any(|i| &i.name == *o))
        .collect();
    cx.ensure(missing.is_empty(), "M006", || {
        format!("the registry's repository list holds every repository with a manifest; missing {missing:?}")
    })?;
    Ok(Verdict::Pass)
}

async fn tags(cx: &Ctx) -> Step<Verdict> {
    advertised(cx).await?;
    cx.need_push()?;
    let repo = cx.repo("ext-tags");
    let b1 = fresh_image(cx, &repo, &Extras::default()).await?;
    let m1 = push_under(cx, &repo, &b1, OCI_MANIFEST, &["c", "a", "e"]).await?;
    let b2 = fresh_image(cx, &repo, &Extras::default()).await?;
    // c moves to the second manifest, pushed last.
    let m2 = push_under(cx, &repo, &b2, OCI_MANIFEST, &["d", "b", "c"]).await?;
    let path = repository_module(cx, &repo, "tags").await?;
    let (d1, d2) = (m1.digest.to_string(), m2.digest.to_string());
    let want: Vec<(String, String)> = [("a", &d1), ("b", &d2), ("c", &d2), ("d", &d2), ("e", &d1)]
        .iter()
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect();
    let listing = |params: &[(&str, &str)]| {
        Listing::new(&path, params, "tags", TAGS_V1).top("repository", repo.clone())
    };
    let keyed = |items: &[TagEntry]| -> Step<Vec<(String, i128)>> {
        items
            .iter()
            .map(|t| Ok((t.name.clone(), time_of(cx, &t.name, &t.pushed_at)?)))
            .collect()
    };

    let got = walk_full::<TagEntry>(cx, &listing(&[("n", "2")]), 2, "M019").await?;
    let pairs: Vec<(String, String)> = got
        .iter()
        .map(|t| (t.name.clone(), t.digest.clone()))
        .collect();
    cx.ensure(sorted(&pairs) == want, "M008", || {
        format!("every tag with the digest it points at, {want:?}; got {pairs:?}")
    })?;
    let times: BTreeMap<String, i128> = keyed(&got)?.into_iter().collect();
    let last_pushes = ["a", "e", "d", "b", "c"];
    cx.ensure(
        last_pushes.windows(2).all(|w| times[w[0]] <= times[w[1]]),
        "M008",
        || format!("pushedAt is each tag's last push, in the order {last_pushes:?}; got {times:?}"),
    )?;
    judge_order(&keyed(&got)?, Sort::Name, false).map_err(|why| cx.fail("M017", why))?;

    for (digest, n, desc, names) in [
        (&d1, 5, false, vec!["a", "e"]),
        (&d2, 1, true, vec!["d", "c", "b"]),
    ] {
        let n_text = n.to_string();
        let l = listing(&[
            ("digest", digest),
            ("n", &n_text),
            ("order", order_param(desc)),
        ])
        .top("digest", digest.clone());
        let got = walk_full::<TagEntry>(cx, &l, n, "M019").await?;
        let listed: Vec<&str> = got.iter().map(|t| t.name.as_str()).collect();
        cx.ensure(sorted(&listed) == sorted(&names), "M009", || {
            format!("with digest={digest}, exactly the tags {names:?}; got {listed:?}")
        })?;
        judge_order(&keyed(&got)?, Sort::Name, desc).map_err(|why| cx.fail("M017", why))?;
    }

    for desc in [false, true] {
        let l = listing(&[("n", "2"), ("sort", "pushed"), ("order", order_param(desc))]);
        let got = keyed(&walk_full::<TagEntry>(cx, &l, 2, "M019").await?)?;
        let names: Vec<&str> = got.iter().map(|k| k.0.as_str()).collect();
        cx.ensure(sorted(&names) == ["a", "b", "c", "d", "e"], "M008", || {
            format!("{} lists every tag once; got {names:?}", l.target)
        })?;
        judge_order(&got, Sort::Pushed, desc).map_err(|why| cx.fail("M017", why))?;
    }
    Ok(Verdict::Pass)
}
