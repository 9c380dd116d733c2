//! Tag listing: the body, sort order with mixed-case tags, `n`, `n=0`, `last`,
//! and `Link` pagination followed to a complete, duplicate-free union.

use std::cmp::Ordering;

use serde::Deserialize;

use super::CheckDef;
use crate::client::headers as parse;
use crate::client::{Request, Response};
use crate::harness::content::{self, Desc, Extras};
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::media_types;

/// The tag-listing checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!(
            "tags.list",
            Tags,
            "the tag list answers 200 with {name, tags} holding exactly the pushed tags",
            ["R005", "R092", "R094"],
            list
        ),
        harness_check!(
            "tags.order",
            Tags,
            "mixed-case tags are listed in lexical or ASCIIbetical order",
            ["R093"],
            order
        ),
        harness_check!(
            "tags.n",
            Tags,
            "?n=3 gives exactly the first 3 tags in order (fewer only with a Link)",
            ["R095", "R098"],
            n_limit
        ),
        harness_check!(
            "tags.n-zero",
            Tags,
            "?n=0 gives an empty list and no Link",
            ["R097"],
            n_zero
        ),
        harness_check!(
            "tags.last",
            Tags,
            "?last= gives the tags strictly after it, in order, with and without n",
            ["R100"],
            last
        ),
        harness_check!(
            "tags.link",
            Tags,
            "Link rel=\"next\" pages with n=3 add up to every tag exactly once",
            ["R096", "R095"],
            link
        ),
    ]
}

/// Tags whose two allowed orders differ, including case-insensitive duplicates.
pub const ORDER_TAGS: [&str; 10] = ["b", "A", "latest", "10", "_x", "B", "9", "a", "Z-1", "v1.0"];
/// Tags without case-insensitive duplicates, so each allowed order is total.
pub const PAGE_TAGS: [&str; 10] = [
    "golf", "Bravo", "10", "echo", "_u", "alpha", "Delta", "9", "charlie", "Foxtrot",
];

/// The tag-list body.
#[derive(Debug, Deserialize)]
pub struct TagList {
    /// Repository name.
    pub name: Option<String>,
    /// Tags (`null` is read as absent).
    pub tags: Option<Vec<String>>,
}

/// Case-insensitive order, ties broken by bytes.
pub fn lexical(a: &str, b: &str) -> Ordering {
    a.to_ascii_lowercase()
        .cmp(&b.to_ascii_lowercase())
        .then_with(|| a.cmp(b))
}

/// Byte order (Go's sort.Strings).
pub fn asciibetical(a: &str, b: &str) -> Ordering {
    a.cmp(b)
}

/// The two orders the spec allows.
pub const ORDERS: [fn(&str, &str) -> Ordering; 2] = [lexical, asciibetical];

/// Whether `tags` is sorted under one of the allowed orders (ties allowed in lexical).
pub fn is_sorted_allowed(tags: &[String]) -> bool {
    let ci = tags
        .windows(2)
        .all(|w| w[0].to_ascii_lowercase() <= w[1].to_ascii_lowercase());
    let ascii = tags.windows(2).all(|w| w[0] <= w[1]);
    ci || ascii
}

/// What a page should hold under `order`: sorted tags after `last`, at most `n`.
pub fn expected_page(
    all: &[String],
    order: fn(&str, &str) -> Ordering,
    n: Option<usize>,
    last: Option<&str>,
) -> Vec<String> {
    let mut sorted = all.to_vec();
    sorted.sort_by(|a, b| order(a, b));
    let after = sorted
        .into_iter()
        .filter(|t| last.is_none_or(|l| order(t, l) == Ordering::Greater));
    after.take(n.unwrap_or(usize::MAX)).collect()
}

/// Pushes one manifest to `repo` under each tag, in the given order.
pub(crate) async fn push_tags(cx: &Ctx, repo: &str, tags: &[&str]) -> Step<Desc> {
    let config = content::config_blob(&cx.label("tags"));
    cx.push_blob(repo, &config).await?;
    let m = content::image_manifest(
        &Desc::of(content::CONFIG_TYPE, &config),
        &[],
        &Extras::default(),
    );
    let mut desc = None;
    for t in tags {
        desc = Some(
            cx.push_manifest(repo, t, &m, media_types::OCI_MANIFEST)
                .await?,
        );
    }
    Ok(desc.unwrap_or_else(|| Desc::of(media_types::OCI_MANIFEST, &m)))
}

/// GETs a tag list page; checks 200 and the JSON shape.
pub(crate) async fn get_page(cx: &Ctx, target: String) -> Step<(Response, TagList)> {
    let r = cx.send(Request::get(target)).await?;
    cx.expect_status(&r, &[200], "R092", "tag listing of an existing repository")?;
    let list: TagList = serde_json::from_slice(&r.body).map_err(|e| {
        cx.fail(
            "R094",
            format!("the tag list is JSON {{\"name\": …, \"tags\": […]}}: {e}"),
        )
    })?;
    Ok((r, list))
}

async fn list(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("tags-list");
    push_tags(cx, &repo, &PAGE_TAGS).await?;
    let (_, l) = get_page(cx, format!("/v2/{repo}/tags/list")).await?;
    cx.ensure(l.name.as_deref() == Some(repo.as_str()), "R094", || {
        format!("name is {repo:?}; got {:?}", l.name)
    })?;
    let mut got = l.tags.unwrap_or_default();
    got.sort();
    let mut want: Vec<String> = PAGE_TAGS.iter().map(|s| s.to_string()).collect();
    want.sort();
    cx.ensure(got == want, "R094", || {
        format!("tags holds exactly the pushed tags {want:?}; got {got:?}")
    })?;
    Ok(Verdict::Pass)
}

async fn order(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("tags-order");
    push_tags(cx, &repo, &ORDER_TAGS).await?;
    let (_, l) = get_page(cx, format!("/v2/{repo}/tags/list")).await?;
    let tags = l.tags.unwrap_or_default();
    cx.ensure(is_sorted_allowed(&tags), "R093", || {
        format!("tags in lexical or ASCIIbetical order; got {tags:?}")
    })?;
    Ok(Verdict::Pass)
}

fn all_page_tags() -> Vec<String> {
    PAGE_TAGS.iter().map(|s| s.to_string()).collect()
}

/// Checks one page against both allowed orders; `Err` names the requirement broken.
pub(crate) fn judge_page(
    all: &[String],
    n: Option<usize>,
    last: Option<&str>,
    got: &[String],
    has_link: bool,
) -> Result<(), (&'static str, String)> {
    if n == Some(0) {
        if !got.is_empty() || has_link {
            return Err((
                "R097",
                format!(
                    "n=0 gives an empty list and no Link; got {got:?}, Link present: {has_link}"
                ),
            ));
        }
        return Ok(());
    }
    if let Some(n) = n.filter(|&n| got.len() > n) {
        return Err((
            "R095",
            format!("n={n} gives at most {n} tags; got {} ({got:?})", got.len()),
        ));
    }
    if !is_sorted_allowed(got) {
        let req = match (n, last) {
            (_, Some(_)) => "R100",
            (Some(_), None) => "R098",
            (None, None) => "R093",
        };
        return Err((
            req,
            format!("the page is in lexical or ASCIIbetical order; got {got:?}"),
        ));
    }
    let matches = ORDERS.iter().any(|&o| {
        let want = expected_page(all, o, n, last);
        got == want.as_slice() || (has_link && !got.is_empty() && want.starts_with(got))
    });
    if matches {
        return Ok(());
    }
    let want = expected_page(all, lexical, n, last);
    let req = match (n, last) {
        (_, Some(_)) => "R100",
        _ => "R095",
    };
    Err((
        req,
        format!(
            "with n={n:?} last={last:?}: {} tags, e.g. {want:?} (lexical); got {got:?}",
            want.len()
        ),
    ))
}

async fn query(cx: &Ctx, repo: &str, n: Option<usize>, last: Option<&str>) -> Step<Verdict> {
    let mut q = Vec::new();
    if let Some(n) = n {
        q.push(format!("n={n}"));
    }
    if let Some(l) = last {
        q.push(format!("last={l}"));
    }
    let (r, l) = get_page(cx, format!("/v2/{repo}/tags/list?{}", q.join("&"))).await?;
    let got = l.tags.unwrap_or_default();
    let has_link = r.header("link").is_some();
    judge_page(&all_page_tags(), n, last, &got, has_link)
        .map_err(|(req, why)| cx.fail(req, why))?;
    Ok(Verdict::Pass)
}

async fn n_limit(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("tags-n");
    push_tags(cx, &repo, &PAGE_TAGS).await?;
    query(cx, &repo, Some(3), None).await?;
    query(cx, &repo, Some(10), None).await?;
    query(cx, &repo, Some(50), None).await
}

async fn n_zero(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("tags-n0");
    push_tags(cx, &repo, &PAGE_TAGS).await?;
    query(cx, &repo, Some(0), None).await
}

async fn last(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("tags-last");
    push_tags(cx, &repo, &PAGE_TAGS).await?;
    for l in ["Bravo", "echo", "_u", "golf"] {
        query(cx, &repo, None, Some(l)).await?;
        query(cx, &repo, Some(3), Some(l)).await?;
    }
    Ok(Verdict::Pass)
}

async fn link(cx: &Ctx) -> Step<Verdict> {
    let repo = cx.repo("tags-link");
    push_tags(cx, &repo, &PAGE_TAGS).await?;
    let n = 3;
    let mut target = format!("/v2/{repo}/tags/list?n={n}");
    let mut union: Vec<String> = Vec::new();
    let mut links = 0;
    for _ in 0..50 {
        let (r, l) = get_page(cx, target.clone()).await?;
        let page = l.tags.unwrap_or_default();
        if page.len() > n {
            return Ok(Verdict::skipped(format!(
                "the registry ignores n (a page of {} tags for n={n}; see tags.n)",
                page.len()
            )));
        }
        union.extend(page.iter().cloned());
        let next = parse::next_link(r.header_all("link")).map_err(|bad| {
            cx.fail(
                "R096",
                format!("Link follows RFC 5988 (<url>; rel=\"next\"); got {bad:?}"),
            )
        })?;
        match next {
            Some(t) => {
                links += 1;
                target = r.resolve(&t).map(|u| u.to_string()).ok_or_else(|| {
                    cx.fail(
                        "R096",
                        format!("a Link target that resolves to a URL; got {t:?}"),
                    )
                })?;
            }
            // A Link that names no next page is not the spec's pagination header.
            None if !r.header_all("link").is_empty() => {
                return Err(cx.fail(
                    "R096",
                    format!(
                        "a Link header on the tag list has rel=\"next\"; got {:?}",
                        r.header_all("link")
                    ),
                ));
            }
            None if page.len() == n => match page.last() {
                Some(l) => target = format!("/v2/{repo}/tags/list?n={n}&last={l}"),
                None => break,
            },
            None => break,
        }
    }
    let mut sorted = union.clone();
    sorted.sort();
    sorted.dedup();
    cx.ensure(sorted.len() == union.len(), "R095", || {
        format!("pages never repeat a tag; union {union:?}")
    })?;
    let mut want = all_page_tags();
    want.sort();
    cx.ensure(sorted == want, "R095", || {
        format!("the pages add up to every tag {want:?}; got {union:?}")
    })?;
    if links == 0 {
        return Ok(Verdict::unsupported(
            "no Link header; pagination by last gave every tag once",
        ));
    }
    Ok(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn both_orders_are_accepted() {
        assert!(is_sorted_allowed(&v(&[
            "10", "9", "A", "B", "_x", "a", "b"
        ])));
        assert!(is_sorted_allowed(&v(&[
            "10", "9", "_x", "a", "A", "b", "B"
        ])));
        assert!(is_sorted_allowed(&v(&[
            "10", "9", "_x", "A", "a", "B", "b"
        ])));
        assert!(!is_sorted_allowed(&v(&["b", "9", "A", "C", "10", "a"])));
    }

    #[test]
    fn pages_are_judged_against_the_model() {
        let all = v(&PAGE_TAGS);
        let first3 = expected_page(&all, asciibetical, Some(3), None);
        assert_eq!(first3, v(&["10", "9", "Bravo"]));
        assert!(judge_page(&all, Some(3), None, &first3, false).is_ok());
        assert_eq!(
            judge_page(&all, Some(3), None, &all, false).unwrap_err().0,
            "R095"
        );
        assert_eq!(
            judge_page(&all, Some(3), None, &v(&["9", "10", "Bravo"]), false)
                .unwrap_err()
                .0,
            "R098"
        );
        assert_eq!(
            judge_page(&all, None, Some("echo"), &v(&["golf", "Foxtrot"]), false)
                .unwrap_err()
                .0,
            "R100"
        );
        assert_eq!(
            judge_page(&all, Some(3), None, &v(&["10", "9"]), false)
                .unwrap_err()
                .0,
            "R095"
        );
        assert!(judge_page(&all, Some(3), None, &v(&["10", "9"]), true).is_ok());
        assert_eq!(
            judge_page(&all, Some(0), None, &[], true).unwrap_err().0,
            "R097"
        );
        let after = expected_page(&all, lexical, Some(2), Some("charlie"));
        assert_eq!(after, v(&["Delta", "echo"]));
        assert!(judge_page(&all, Some(2), Some("charlie"), &after, false).is_ok());
        assert_eq!(
            judge_page(
                &all,
                Some(2),
                Some("charlie"),
                &v(&["alpha", "Bravo"]),
                false
            )
            .unwrap_err()
            .0,
            "R100"
        );
    }
}
