//! What callers may see across repositories: `_catalog` filtered to repositories
//! the caller may pull, and the source of an anonymous mount chosen among them.
//!
//! The catalog is paged over the registry's own pages, so a page holds up to `n`
//! visible names and its `Link` names only a visible repository: page boundaries
//! never reveal a hidden name.

use poem::http::StatusCode;
use poem::{IntoResponse, Request, Response};

use super::need::query_pairs;
use super::{Auth, Caller, Subject};
use crate::api::error::ApiError;
use crate::oci::{Digest, ErrorCode, RepoName};
use crate::registry::kept::{kept_page, SCAN_LIMIT};
use crate::registry::Registry;

/// `GET /v2/_catalog` for `caller`.
pub(super) async fn serve(
    registry: &Registry,
    auth: &Auth,
    caller: &Caller,
    req: &Request,
) -> Response {
    let pairs = query_pairs(req.uri().query());
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let max = registry.config().max_list_page;
    let n = match get("n").as_deref() {
        None | Some("") => max,
        Some(v) => match v.parse::<u32>() {
            Ok(n) => n.min(max),
            Err(_) => {
                return ApiError::bad_request(
                    ErrorCode::Unsupported,
                    format!("n must be a non-negative integer, not {v:?}"),
                )
                .into_response()
            }
        },
    };
    let start = get("last").filter(|l| !l.is_empty());
    let page = kept_page(
        n as usize,
        start,
        |after| registry.catalog(after, max),
        String::clone,
        |name: &String| auth.visible(caller, name),
    )
    .await;
    let page = match page {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if page.truncated {
        tracing::warn!(
            limit = SCAN_LIMIT,
            "catalog shortened: the caller may see too few of the repositories examined"
        );
    }
    let shown = page.items;
    let body = serde_json::json!({ "repositories": shown });
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .body(body.to_string());
    if let Some(l) = &page.next {
        let link =
            crate::api::headers::next_link("/v2/_catalog", &[("n", &n.to_string()), ("last", l)]);
        if let Ok(v) = link.parse() {
            resp.headers_mut().insert("Link", v);
        }
    }
    resp
}

/// For a mount without `from`: a repository the caller may pull that holds the
/// blob, if there is one.
pub(super) async fn readable_source(
    registry: &Registry,
    auth: &Auth,
    caller: &Caller,
    digest: &str,
) -> Option<String> {
    let digest: Digest = digest.parse().ok()?;
    let mut last = None;
    let mut scanned = 0;
    while scanned < SCAN_LIMIT {
        let page = registry.catalog(last.clone(), 1000).await.ok()?;
        scanned += page.items.len().max(1);
        for name in page.items {
            last = Some(name.clone());
            if auth.visible(caller, &name) {
                if let Some(found) = holds(registry, name, &digest).await {
                    return Some(found);
                }
            }
        }
        if !page.more {
            break;
        }
    }
    None
}

async fn holds(registry: &Registry, name: String, digest: &Digest) -> Option<String> {
    let repo: RepoName = name.parse().ok()?;
    registry.blob_size(&repo, digest).await.ok().map(|_| name)
}

/// Whether `caller` may pull every repository (an anonymous mount may then look
/// anywhere, as the registry does by itself).
pub(super) fn reads_everything(auth: &Auth, caller: &Caller) -> bool {
    match caller {
        Caller::Anonymous => auth.policy.pulls_everything(Subject::Anonymous),
        Caller::User(u) => auth.policy.pulls_everything(Subject::User(u)),
        Caller::Token(c) if auth.issuer.is_some() => auth.policy.pulls_everything(c.subject()),
        Caller::Token(_) => false,
    }
}
