//! Listing through the `_marina` extension: discover it, then follow its pages.

use serde::Deserialize;

use super::http::Http;
use super::model::{Manifest, ManifestPage, Repository, RepositoryPage, Tag, TagPage};
use super::{ClientError, Listing, Options, SortKey, Source};

use crate::oci::media_types::{
    MARINA_EXTENSION as NAME, MARINA_MANIFESTS_V1, MARINA_REFERRERS_V1, MARINA_REPOSITORIES_V1,
    MARINA_TAGS_V1,
};
const PAGE: usize = 100;

#[derive(Deserialize)]
struct Discovered {
    #[serde(default)]
    extensions: Vec<DiscoveredExtension>,
}

#[derive(Deserialize)]
struct DiscoveredExtension {
    name: String,
    #[serde(default)]
    endpoints: Vec<String>,
}

/// Whether the registry (`repo` `None`) or the repository advertises the listing
/// extension through `_oci/ext/discover`. Any failure means no, except refused
/// credentials: a listing under another identity than the one given would mislead.
pub(crate) async fn offers(http: &Http, repo: Option<&str>) -> Result<bool, ClientError> {
    let path = match repo {
        Some(r) => format!("/v2/{r}/_oci/ext/discover"),
        None => "/v2/_oci/ext/discover".to_string(),
    };
    let answer = match http.get(&path, "application/json").await {
        Ok(a) => a,
        // No connection is not a missing feature: say so, once.
        Err(e @ ClientError::Transport { .. }) => return Err(e),
        Err(_) => return Ok(false),
    };
    if answer.status == reqwest::StatusCode::UNAUTHORIZED && http.has_credentials() {
        return Err(ClientError::Invalid(format!(
            "{}: the registry refused the credentials (401)",
            answer.url
        )));
    }
    if !answer.status.is_success() {
        return Ok(false);
    }
    Ok(answer.json::<Discovered>().is_ok_and(|d| {
        d.extensions
            .iter()
            .any(|e| e.name == NAME && e.endpoints.iter().any(|p| p.contains("/_marina/list/")))
    }))
}

fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The query of a first page: sort, page size and filters.
fn query(opts: &Options, extra: &[(&str, &str)], with_tagged: bool) -> String {
    let n = opts.limit.map_or(PAGE, |l| l.clamp(1, PAGE));
    let mut q = vec![
        format!("n={n}"),
        format!(
            "sort={}",
            match opts.sort.key {
                SortKey::Name => "name",
                SortKey::Pushed => "pushed",
            }
        ),
        format!(
            "order={}",
            if opts.sort.descending { "desc" } else { "asc" }
        ),
    ];
    for (k, v) in extra {
        q.push(format!("{k}={}", encode(v)));
    }
    if let Some(a) = &opts.filters.artifact_type {
        q.push(format!("artifactType={}", encode(a)));
    }
    for a in &opts.filters.annotations {
        q.push(format!("annotation={}", encode(a)));
    }
    if let (true, Some(t)) = (with_tagged, opts.filters.tagged) {
        q.push(format!("tagged={t}"));
    }
    q.join("&")
}

/// Follows `Link` from `first` until `limit` items are collected or no page is left.
async fn collect<T, P: serde::de::DeserializeOwned>(
    http: &Http,
    first: String,
    accept: &str,
    limit: Option<usize>,
    items_of: impl Fn(P) -> Vec<T>,
) -> Result<Vec<T>, ClientError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    while let Some(path) = next.take() {
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
        let answer = http.get(&path, accept).await?.ok("GET")?;
        items.extend(items_of(answer.json::<P>()?));
        next = answer.next();
    }
    if let Some(l) = limit {
        items.truncate(l);
    }
    Ok(items)
}

fn listing<T>(items: Vec<T>, not_honoured: Vec<String>) -> Listing<T> {
    Listing {
        items,
        source: Source::Extension,
        not_honoured,
    }
}

pub(crate) async fn repositories(
    http: &Http,
    namespace: Option<&str>,
    opts: &Options,
) -> Result<Listing<Repository>, ClientError> {
    let ns: Vec<(&str, &str)> = namespace.map(|n| ("namespace", n)).into_iter().collect();
    let mut plain = opts.clone();
    plain.filters = Default::default();
    let first = format!("/v2/{NAME}/list/repositories?{}", query(&plain, &ns, false));
    let accept = &format!("{MARINA_REPOSITORIES_V1}, application/json;q=0.5");
    let items = collect(http, first, accept, opts.limit, |p: RepositoryPage| {
        p.repositories
    })
    .await?;
    let mut notes = Vec::new();
    if !opts.filters.is_empty() {
        notes.push("filters apply to manifests, not to repositories; ignored".to_string());
    }
    Ok(listing(items, notes))
}

pub(crate) async fn tags(
    http: &Http,
    repo: &str,
    digest: Option<&str>,
    opts: &Options,
) -> Result<Listing<Tag>, ClientError> {
    let d: Vec<(&str, &str)> = digest.map(|d| ("digest", d)).into_iter().collect();
    let first = format!("/v2/{repo}/{NAME}/list/tags?{}", query(opts, &d, false));
    let accept = &format!("{MARINA_TAGS_V1}, application/json;q=0.5");
    let items = collect(http, first, accept, opts.limit, |p: TagPage| p.tags).await?;
    let mut notes = Vec::new();
    if opts.filters.tagged.is_some() {
        notes.push("--tagged applies to manifests; every tag is tagged".to_string());
    }
    Ok(listing(items, notes))
}

/// Manifests of `repo`, or with `subject` its referrers.
pub(crate) async fn manifests(
    http: &Http,
    repo: &str,
    subject: Option<&str>,
    opts: &Options,
) -> Result<Listing<Manifest>, ClientError> {
    let (first, accept) = match subject {
        Some(s) => (
            format!(
                "/v2/{repo}/{NAME}/list/referrers?{}",
                query(opts, &[("subject", s)], true)
            ),
            &format!("{MARINA_REFERRERS_V1}, application/json;q=0.5"),
        ),
        None => (
            format!(
                "/v2/{repo}/{NAME}/list/manifests?{}",
                query(opts, &[], true)
            ),
            &format!("{MARINA_MANIFESTS_V1}, application/json;q=0.5"),
        ),
    };
    let items = collect(http, first, accept, opts.limit, |p: ManifestPage| {
        p.manifests
    })
    .await?;
    Ok(listing(items, Vec::new()))
}
