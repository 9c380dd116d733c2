//! Checks of Marina's listing extension, `_marina` (`spec/extensions/_marina.md`),
//! on any registry that advertises it through `_oci/ext/discover`; elsewhere they
//! are Unsupported, with what discover said.
//!
//! A registry-level module is used only when the registry-level discover answer
//! lists it; a repository-level module only when the discover answer of the
//! repository the check uses lists it (a registry may offer some modules and not
//! others). This module holds what the checks share: detection, entry types,
//! page walking and pushing; `judge` holds the pure judgements.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::CheckDef;
use crate::client::headers as parse;
use crate::client::{Request, Response};
use crate::harness::content::{self, Desc, Extras};
use crate::harness::context::{Ctx, Step};
use crate::harness::discover::{self, Answer, Extension, Level};
use crate::harness::verdict::Verdict;

mod judge;
mod lists;
mod manifests;
mod rules;

pub(crate) use judge::{essence, sorted, with_query};
pub use judge::{judge_order, judge_sizes, parse_utc, Sort};

pub use crate::oci::media_types::{
    MARINA_EXTENSION as NAME, MARINA_MANIFESTS_V1 as MANIFESTS_V1,
    MARINA_REFERRERS_V1 as REFERRERS_V1, MARINA_REPOSITORIES_V1 as REPOSITORIES_V1,
    MARINA_TAGS_V1 as TAGS_V1,
};

/// The `_marina` checks, in run order.
pub fn checks() -> Vec<CheckDef> {
    let mut v = rules::early();
    v.extend(lists::checks());
    v.extend(manifests::checks());
    v.extend(rules::late());
    v
}

/// The `_marina` entry of the registry-level discover answer; Unsupported when
/// discover is absent or does not list it, Skipped when its answer is malformed.
pub(crate) async fn advertised(cx: &Ctx) -> Step<Extension> {
    match cx.extensions().await {
        Answer::Listed(list) => {
            let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
            let names = format!("{names:?}");
            list.into_iter().find(|e| e.name == NAME).ok_or_else(|| {
                Verdict::unsupported(format!("/v2/_oci/ext/discover lists {names}, not {NAME}"))
            })
        }
        Answer::Absent(why) => Err(Verdict::unsupported(format!(
            "{NAME} is not advertised: {why}"
        ))),
        Answer::Malformed(_) => Err(Verdict::skipped(
            "the discover answer is malformed (see extensions.discover)",
        )),
    }
}

/// The path of a registry-level module, when discover lists it.
pub(crate) async fn registry_module(cx: &Ctx, module: &str) -> Step<String> {
    let ext = advertised(cx).await?;
    let path = format!("/v2/{NAME}/list/{module}");
    if ext.lists(&path) {
        Ok(path)
    } else {
        Err(Verdict::unsupported(format!(
            "discover lists {NAME} with {:?}, not {path}",
            ext.endpoints
        )))
    }
}

/// The repository-level discover answer for `repo`, classified.
pub(crate) async fn discover_repository(cx: &Ctx, repo: &str) -> Step<Answer> {
    let level = Level::Repository(repo);
    let r = cx.send(Request::get(level.path())).await?;
    Ok(discover::classify(
        r.status,
        r.header("content-type"),
        &r.body,
        level,
    ))
}

/// The path of a repository-level module of `repo`, when that repository's
/// discover answer lists it.
pub(crate) async fn repository_module(cx: &Ctx, repo: &str, module: &str) -> Step<String> {
    let path = format!("/v2/{repo}/{NAME}/list/{module}");
    match discover_repository(cx, repo).await? {
        Answer::Listed(list) => match list.iter().find(|e| e.name == NAME) {
            Some(e) if e.lists(&path) => Ok(path),
            Some(e) => Err(Verdict::unsupported(format!(
                "discover of {repo} lists {NAME} with {:?}, not {path}",
                e.endpoints
            ))),
            None => Err(Verdict::unsupported(format!(
                "discover of {repo} does not list {NAME}"
            ))),
        },
        Answer::Absent(why) => Err(Verdict::unsupported(format!(
            "{NAME} is not advertised for {repo}: {why}"
        ))),
        Answer::Malformed(_) => Err(Verdict::skipped(
            "the repository's discover answer is malformed (see extensions.discover-repository)",
        )),
    }
}

/// A repository entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepoEntry {
    pub name: String,
    pub pushed_at: String,
}

/// A tag entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TagEntry {
    pub name: String,
    pub digest: String,
    pub pushed_at: String,
}

/// A manifest entry (manifest and referrer lists). Unknown fields are ignored, as
/// the definition asks of clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestEntry {
    pub digest: String,
    pub media_type: String,
    #[serde(default)]
    pub artifact_type: Option<String>,
    pub size: u64,
    pub tags: Vec<String>,
    pub pushed_at: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// What a list is, for walking it.
pub(crate) struct Listing {
    /// The first page: path and query.
    pub target: String,
    /// The member holding the items.
    pub key: &'static str,
    /// The media type every page must have.
    pub media_type: &'static str,
    /// Top-level string members every page must carry, with their values.
    pub top: Vec<(&'static str, String)>,
}

impl Listing {
    /// A listing of `path` with `params`.
    pub fn new(
        path: &str,
        params: &[(&str, &str)],
        key: &'static str,
        media_type: &'static str,
    ) -> Listing {
        Listing {
            target: with_query(path, params),
            key,
            media_type,
            top: Vec::new(),
        }
    }

    /// Requires a top-level member on every page.
    pub fn top(mut self, member: &'static str, value: impl Into<String>) -> Listing {
        self.top.push((member, value.into()));
        self
    }
}

/// One page: its items and the resolved `Link rel="next"` target, if any.
pub(crate) async fn page<T: DeserializeOwned>(
    cx: &Ctx,
    target: &str,
    l: &Listing,
) -> Step<(Vec<T>, Option<String>, Response)> {
    let r = cx
        .send(Request::get(target).header("accept", l.media_type))
        .await?;
    cx.expect_status(&r, &[200], "M004", &format!("the {NAME} listing {target}"))?;
    let ct = essence(r.header("content-type"));
    cx.ensure(ct == l.media_type, "M004", || {
        format!(
            "Content-Type {} (the module's v1 media type); got {:?}",
            l.media_type,
            r.header("content-type").unwrap_or("none")
        )
    })?;
    let body: Value = serde_json::from_slice(&r.body)
        .map_err(|e| cx.fail("M004", format!("a JSON object body: {e}")))?;
    for (member, want) in &l.top {
        let got = body.get(member).and_then(Value::as_str);
        cx.ensure(got == Some(want.as_str()), "M004", || {
            format!(
                "the body's {member:?} is {want:?}; got {:?}",
                body.get(member)
            )
        })?;
    }
    let items = body.get(l.key).and_then(Value::as_array).ok_or_else(|| {
        cx.fail(
            "M004",
            format!("the body has a {:?} array; got {body}", l.key),
        )
    })?;
    let items = items
        .iter()
        .map(|i| {
            T::deserialize(i).map_err(|e| {
                cx.fail(
                    "M004",
                    format!(
                        "every entry of {:?} has the documented fields: {e} in {i}",
                        l.key
                    ),
                )
            })
        })
        .collect::<Step<Vec<T>>>()?;
    let next = parse::next_link(r.header_all("link")).map_err(|bad| {
        cx.fail(
            "M019",
            format!("Link is <url>; rel=\"next\" (RFC 8288); got {bad:?}"),
        )
    })?;
    let next = match next {
        Some(t) => Some(
            r.resolve(&t)
                .map(|u| u.to_string())
                .ok_or_else(|| cx.fail("M019", format!("a resolvable Link target; got {t:?}")))?,
        ),
        None => None,
    };
    Ok((items, next, r))
}

/// Every page of a listing, in order.
pub(crate) struct Walked<T> {
    /// The items, in the order served.
    pub items: Vec<T>,
    /// How many items each page held.
    pub sizes: Vec<usize>,
}

/// Most pages one walk follows.
const MAX_PAGES: usize = 200;

/// Follows `Link rel="next"` from the first page until there is none, or until
/// `enough` holds for the items so far.
pub(crate) async fn walk_until<T: DeserializeOwned>(
    cx: &Ctx,
    l: &Listing,
    mut enough: impl FnMut(&[T]) -> bool,
) -> Step<Walked<T>> {
    let mut target = l.target.clone();
    let mut walked = Walked {
        items: Vec::new(),
        sizes: Vec::new(),
    };
    for _ in 0..MAX_PAGES {
        let (items, next, _) = page::<T>(cx, &target, l).await?;
        walked.sizes.push(items.len());
        walked.items.extend(items);
        match next {
            Some(n) if !enough(&walked.items) => target = n,
            _ => return Ok(walked),
        }
    }
    Err(cx.fail(
        "M019",
        format!(
            "the Link chain from {} ends within {MAX_PAGES} pages",
            l.target
        ),
    ))
}

/// Every page of a listing.
pub(crate) async fn walk<T: DeserializeOwned>(cx: &Ctx, l: &Listing) -> Step<Walked<T>> {
    walk_until(cx, l, |_| false).await
}

/// A walk with page size `n`: its items, after checking that every page followed
/// by a `Link` was full (failing `req`).
pub(crate) async fn walk_full<T: DeserializeOwned>(
    cx: &Ctx,
    l: &Listing,
    n: usize,
    req: &str,
) -> Step<Vec<T>> {
    let w = walk::<T>(cx, l).await?;
    judge_sizes(&w.sizes, n).map_err(|why| cx.fail(req, format!("{}: {why}", l.target)))?;
    Ok(w.items)
}

/// The push time of an entry, failing M005 when it is not RFC 3339 UTC.
pub(crate) fn time_of(cx: &Ctx, what: &str, pushed_at: &str) -> Step<i128> {
    parse_utc(pushed_at).ok_or_else(|| {
        cx.fail(
            "M005",
            format!("pushedAt of {what} is an RFC 3339 date-time in UTC; got {pushed_at:?}"),
        )
    })
}

/// Pushes `body` under each of `tags`, or by digest when there are none.
pub(crate) async fn push_under(
    cx: &Ctx,
    repo: &str,
    body: &Bytes,
    media_type: &str,
    tags: &[&str],
) -> Step<Desc> {
    let desc = Desc::of(media_type, body);
    if tags.is_empty() {
        cx.push_manifest(repo, &desc.digest.to_string(), body, media_type)
            .await?;
    }
    for t in tags {
        cx.push_manifest(repo, t, body, media_type).await?;
    }
    Ok(desc)
}

/// An image manifest over a config blob unique to this call (the blob is pushed,
/// the manifest is not).
pub(crate) async fn fresh_image(cx: &Ctx, repo: &str, extras: &Extras) -> Step<Bytes> {
    let config = content::config_blob(&cx.label("ext"));
    cx.push_blob(repo, &config).await?;
    Ok(content::image_manifest(
        &Desc::of(content::CONFIG_TYPE, &config),
        &[],
        extras,
    ))
}
