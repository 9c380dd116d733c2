//! The `_marina` rules that are not about one list: what discover may say about
//! it, pages that stay correct while content changes, versioned media types, and
//! error answers.

use super::{
    advertised, discover_repository, fresh_image, page, push_under, registry_module,
    repository_module, with_query, Listing, TagEntry, NAME, REPOSITORIES_V1, TAGS_V1,
};
use crate::client::{Request, Response};
use crate::harness::checks::CheckDef;
use crate::harness::content::Extras;
use crate::harness::context::{Ctx, Step};
use crate::harness::discover::{error_codes, Answer};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::media_types::OCI_MANIFEST;

/// Checks that run before the lists.
pub fn early() -> Vec<CheckDef> {
    vec![harness_check!(
        "extensions.marina-discover",
        Extensions,
        "discover lists for _marina only the endpoints its definition has, at registry and repository level",
        ["M001"],
        discover
    )]
}

/// Checks that run after the lists.
pub fn late() -> Vec<CheckDef> {
    vec![
        harness_check!("extensions.marina-live-paging", Extensions, "tag pages stay correct while tags are pushed and deleted between them: nothing present throughout is skipped or repeated", ["M017", "M022", "M023"], live_paging),
        harness_check!("extensions.marina-versioning", Extensions, "listings are served as their v1 media type; an Accept admitting only another version is refused 406 with an error envelope", ["M004", "M024", "M030", "X006"], versioning),
        harness_check!("extensions.marina-errors", Extensions, "bad cursors and empty annotation keys get 400 UNSUPPORTED, bad names and digests 400 NAME_INVALID/DIGEST_INVALID, unknown repositories 404 NAME_UNKNOWN", ["M016", "M019", "M021", "M028", "M029", "M030"], errors),
    ]
}

fn strip_query(endpoint: &str) -> &str {
    endpoint.split('?').next().unwrap_or(endpoint)
}

async fn discover(cx: &Ctx) -> Step<Verdict> {
    let ext = advertised(cx).await?;
    let allowed = [format!("/v2/{NAME}/list/repositories")];
    let unknown: Vec<&String> = ext
        .endpoints
        .iter()
        .filter(|e| !allowed.iter().any(|a| a == strip_query(e)))
        .collect();
    cx.ensure(unknown.is_empty(), "M001", || {
        format!("at registry level {NAME} lists only {allowed:?}; it also lists {unknown:?}")
    })?;
    // The repository level, on the fixture image's repository when there is one.
    let Ok(image) = cx.image().await else {
        return Ok(Verdict::Pass);
    };
    if let Answer::Listed(list) = discover_repository(cx, &image.repo).await? {
        if let Some(e) = list.iter().find(|e| e.name == NAME) {
            let allowed: Vec<String> = ["tags", "manifests", "referrers"]
                .iter()
                .map(|m| format!("/v2/{}/{NAME}/list/{m}", image.repo))
                .collect();
            let unknown: Vec<&String> = e
                .endpoints
                .iter()
                .filter(|x| !allowed.iter().any(|a| a == strip_query(x)))
                .collect();
            cx.ensure(unknown.is_empty(), "M001", || {
                format!(
                    "at repository level {NAME} lists only {allowed:?}; it also lists {unknown:?}"
                )
            })?;
        }
    }
    Ok(Verdict::Pass)
}

/// Deletes a tag between pages.
async fn delete_tag(cx: &Ctx, repo: &str, tag: &str) -> Step<()> {
    let r = cx
        .send(Request::delete(format!("/v2/{repo}/manifests/{tag}")))
        .await?;
    match r.status {
        202 => Ok(()),
        400 | 405 => Err(Verdict::unsupported(format!(
            "tag deletion is disabled ({}), so content cannot change between pages",
            r.status
        ))),
        s => Err(Verdict::skipped(format!(
            "setup: DELETE of the tag {tag} answered {s} (see delete.tag)"
        ))),
    }
}

async fn live_paging(cx: &Ctx) -> Step<Verdict> {
    advertised(cx).await?;
    cx.need_push()?;
    cx.need_delete()?;
    let repo = cx.repo("ext-live");
    let body = fresh_image(cx, &repo, &Extras::default()).await?;
    let names: Vec<String> = (0..15).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    push_under(cx, &repo, &body, OCI_MANIFEST, &refs).await?;
    let path = repository_module(cx, &repo, "tags").await?;
    let l = Listing::new(&path, &[("n", "3")], "tags", TAGS_V1);
    let mut target = l.target.clone();
    let mut seen: Vec<String> = Vec::new();
    for round in 0..50 {
        let (items, next, _) = page::<TagEntry>(cx, &target, &l).await?;
        seen.extend(items.into_iter().map(|t| t.name));
        let Some(next) = next else {
            cx.ensure(round >= 2, "M019", || {
                format!(
                    "15 tags in pages of at most 3 continue through Link; page {} had none",
                    round + 1
                )
            })?;
            break;
        };
        match round {
            0 => {
                // Behind or at the cursor (t01, t02), ahead of it (t07); one tag
                // added ahead (t05a), one behind (t00a).
                for t in ["t01", "t02", "t07"] {
                    delete_tag(cx, &repo, t).await?;
                }
                push_under(cx, &repo, &body, OCI_MANIFEST, &["t05a", "t00a"]).await?;
            }
            1 => {
                delete_tag(cx, &repo, "t10").await?;
                push_under(cx, &repo, &body, OCI_MANIFEST, &["t99"]).await?;
            }
            _ => {}
        }
        target = next;
    }
    let mut repeated = seen.clone();
    repeated.sort();
    repeated.dedup();
    cx.ensure(repeated.len() == seen.len(), "M022", || {
        format!("no tag is listed twice in one walk; listed {seen:?}")
    })?;
    cx.ensure(
        seen.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
        "M017",
        || format!("pages continue in name order; listed {seen:?}"),
    )?;
    let throughout: Vec<&String> = names
        .iter()
        .filter(|n| !["t01", "t02", "t07", "t10"].contains(&n.as_str()))
        .collect();
    let missing: Vec<&&String> = throughout.iter().filter(|t| !seen.contains(t)).collect();
    cx.ensure(missing.is_empty(), "M022", || {
        format!("every tag present for the whole walk is listed once; missing {missing:?} from {seen:?}")
    })?;
    let gone: Vec<&str> = ["t07", "t10"]
        .into_iter()
        .filter(|t| seen.iter().any(|s| s == t))
        .collect();
    let new: Vec<&str> = ["t05a", "t99"]
        .into_iter()
        .filter(|t| !seen.iter().any(|s| s == t))
        .collect();
    cx.ensure(gone.is_empty() && new.is_empty(), "M023", || {
        format!(
            "tags deleted ahead of the cursor are not listed and tags added ahead are; listed {gone:?}, missed {new:?} in {seen:?}"
        )
    })?;
    Ok(Verdict::Pass)
}

/// Fails `req` unless `r` has `status` and the spec's error envelope with `code`
/// (M030 when there is no envelope at all).
fn expect_error(
    cx: &Ctx,
    r: &Response,
    status: u16,
    code: &str,
    req: &str,
    what: &str,
) -> Step<()> {
    cx.expect_status(r, &[status], req, what)?;
    let codes = error_codes(&r.body);
    cx.ensure(!codes.is_empty(), "M030", || {
        format!("{what}: the answer carries the error envelope {{\"errors\":[{{\"code\":…}}]}}")
    })?;
    cx.ensure(codes.iter().any(|c| c == code), req, || {
        format!("{what}: the error code {code}; got {codes:?}")
    })
}

async fn get_with(cx: &Ctx, target: &str, accept: Option<&str>) -> Step<Response> {
    let mut req = Request::get(target);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    cx.send(req).await
}

/// Requests `target` with each Accept that admits `v1` (200, served as `v1`) and
/// with some that do not (406).
async fn negotiate(cx: &Ctx, target: &str, v1: &str, v2: &str) -> Step<()> {
    let with_v2_first = format!("{v2}, {v1};q=0.5");
    for accept in [
        None,
        Some(v1),
        Some("application/json"),
        Some("*/*"),
        Some(&with_v2_first[..]),
    ] {
        let r = get_with(cx, target, accept).await?;
        let what = format!("{target} with Accept {accept:?}");
        cx.expect_status(&r, &[200], "M004", &what)?;
        let ct = super::essence(r.header("content-type"));
        cx.ensure(ct == v1, "M004", || {
            format!("{what} is served as {v1}; got Content-Type {ct:?}")
        })?;
    }
    for accept in [v2, "text/html"] {
        let r = get_with(cx, target, Some(accept)).await?;
        expect_error(
            cx,
            &r,
            406,
            "UNSUPPORTED",
            "M024",
            &format!("{target} with Accept {accept:?} only"),
        )?;
    }
    Ok(())
}

async fn versioning(cx: &Ctx) -> Step<Verdict> {
    let path = registry_module(cx, "repositories").await?;
    negotiate(
        cx,
        &with_query(&path, &[("n", "1")]),
        REPOSITORIES_V1,
        "application/vnd.marina.list.repositories.v2+json",
    )
    .await?;
    if let Ok(image) = cx.image().await {
        if let Ok(tags) = repository_module(cx, &image.repo, "tags").await {
            negotiate(
                cx,
                &tags,
                TAGS_V1,
                "application/vnd.marina.list.tags.v2+json",
            )
            .await?;
        }
    }
    Ok(Verdict::Pass)
}

/// A `Link` URL with `sort` set to `value` (the cursor itself untouched).
fn with_sort(url: &str, value: &str) -> Option<String> {
    let mut u = reqwest::Url::parse(url).ok()?;
    let mut pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "sort")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.push(("sort".into(), value.into()));
    u.query_pairs_mut().clear().extend_pairs(pairs);
    Some(u.to_string())
}

/// A request the registry must refuse: where, with which status and error code,
/// which requirement that breaks, and what it is.
struct Refusal {
    url: String,
    status: u16,
    code: &'static str,
    requirement: &'static str,
    what: String,
}

impl Refusal {
    fn new(
        url: String,
        status: u16,
        code: &'static str,
        requirement: &'static str,
        what: &str,
    ) -> Refusal {
        Refusal {
            url,
            status,
            code,
            requirement,
            what: what.to_string(),
        }
    }
}

async fn errors(cx: &Ctx) -> Step<Verdict> {
    let path = registry_module(cx, "repositories").await?;
    let mut refusals = vec![
        Refusal::new(
            with_query(&path, &[("next", "marina-check-no-such-cursor")]),
            400,
            "UNSUPPORTED",
            "M021",
            "a next cursor the registry never issued",
        ),
        Refusal::new(
            with_query(&path, &[("namespace", "Not_A/valid..name")]),
            400,
            "NAME_INVALID",
            "M029",
            "a malformed namespace",
        ),
    ];
    // Repository level, once a repository's discover answer lists the modules.
    let image = cx.image().await.ok();
    let unknown = cx.repo("never-created");
    let absent = super::super::pull::absent_digest(cx).to_string();
    if let Some(image) = &image {
        if let Ok(tags) = repository_module(cx, &image.repo, "tags").await {
            refusals.push(Refusal::new(
                format!("/v2/{unknown}/{NAME}/list/tags"),
                404,
                "NAME_UNKNOWN",
                "M028",
                "the tags of an unknown repository",
            ));
            refusals.push(Refusal::new(
                with_query(&tags, &[("digest", "sha256:not-a-digest")]),
                400,
                "DIGEST_INVALID",
                "M029",
                "tags with a malformed digest",
            ));
        }
        if let Ok(manifests) = repository_module(cx, &image.repo, "manifests").await {
            refusals.push(Refusal::new(
                format!("/v2/{unknown}/{NAME}/list/manifests"),
                404,
                "NAME_UNKNOWN",
                "M028",
                "the manifests of an unknown repository",
            ));
            for bad in ["=x", ""] {
                refusals.push(Refusal::new(
                    with_query(&manifests, &[("annotation", bad)]),
                    400,
                    "UNSUPPORTED",
                    "M016",
                    &format!("the annotation filter {bad:?}"),
                ));
            }
        }
        if let Ok(referrers) = repository_module(cx, &image.repo, "referrers").await {
            refusals.push(Refusal::new(
                with_query(
                    &format!("/v2/{unknown}/{NAME}/list/referrers"),
                    &[("subject", &absent)],
                ),
                404,
                "NAME_UNKNOWN",
                "M028",
                "the referrers in an unknown repository",
            ));
            refusals.push(Refusal::new(
                with_query(&referrers, &[("subject", "not-a-digest")]),
                400,
                "DIGEST_INVALID",
                "M029",
                "referrers of a malformed subject",
            ));
        }
    }
    for f in &refusals {
        let r = cx.send(Request::get(f.url.clone())).await?;
        expect_error(cx, &r, f.status, f.code, f.requirement, &f.what)?;
    }
    if image.is_none() {
        return Ok(Verdict::Pass);
    }

    // A cursor replayed with another sort: needs two tags of our own.
    if !cx.options().push {
        return Ok(Verdict::Pass);
    }
    let repo = cx.repo("ext-errors");
    crate::harness::checks::tags::push_tags(cx, &repo, &["a", "b"]).await?;
    let Ok(tags) = repository_module(cx, &repo, "tags").await else {
        return Ok(Verdict::Pass);
    };
    let l = Listing::new(&tags, &[("n", "1"), ("sort", "name")], "tags", TAGS_V1);
    let (items, next, _) = page::<TagEntry>(cx, &l.target, &l).await?;
    let next = next.ok_or_else(|| {
        cx.fail(
            "M019",
            format!(
                "n=1 over two tags gives a Link; got {:?} and none",
                items.iter().map(|t| &t.name).collect::<Vec<_>>()
            ),
        )
    })?;
    let replay = with_sort(&next, "pushed")
        .ok_or_else(|| cx.fail("M019", format!("an absolute Link target; got {next:?}")))?;
    let r = cx.send(Request::get(replay)).await?;
    expect_error(
        cx,
        &r,
        400,
        "UNSUPPORTED",
        "M021",
        "a cursor replayed with another sort",
    )?;
    Ok(Verdict::Pass)
}
