//! Disk usage per repository (`marina du`): from the `_marina` listing
//! extension's repository records (`bytes`, `uniqueBytes`, and the page's `usage`
//! total), or, without the extension, estimated from the manifests the tags point
//! at, saying what that cannot see.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::http::{Http, MANIFEST_ACCEPT};
use super::{ClientError, Options, Source};
use crate::oci::media_types::{MARINA_EXTENSION, MARINA_REPOSITORIES_V1};
use crate::oci::ManifestView;

/// What one repository holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySize {
    /// Full name.
    pub name: String,
    /// Bytes of the blobs it holds (a blob shared with others counts in each).
    pub bytes: u64,
    /// Bytes no other repository holds, when known.
    pub unique_bytes: Option<u64>,
}

/// What a registry or namespace holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// Per repository, in name order.
    pub repositories: Vec<RepositorySize>,
    /// The total with every blob counted once, when known.
    pub total_bytes: Option<u64>,
    /// Which API answered.
    pub source: Source,
    /// What the answer cannot see, one sentence each.
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    name: String,
    bytes: Option<u64>,
    unique_bytes: Option<u64>,
}

#[derive(Deserialize)]
struct Total {
    bytes: u64,
}

#[derive(Deserialize)]
struct Page {
    repositories: Vec<Entry>,
    usage: Option<Total>,
}

/// Usage through the extension: every page of the repository list.
pub(crate) async fn via_extension(
    http: &Http,
    namespace: Option<&str>,
) -> Result<UsageReport, ClientError> {
    let mut query: Vec<(&str, &str)> = vec![("n", "1000")];
    if let Some(ns) = namespace {
        query.push(("namespace", ns));
    }
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    let accept = format!("{MARINA_REPOSITORIES_V1}, application/json;q=0.5");
    let mut next = Some(format!(
        "/v2/{MARINA_EXTENSION}/list/repositories?{encoded}"
    ));
    let (mut repositories, mut total, mut notes) = (Vec::new(), None, Vec::new());
    while let Some(path) = next.take() {
        let answer = http.get(&path, &accept).await?.ok("GET")?;
        let page: Page = answer.json()?;
        if total.is_none() {
            total = page.usage.map(|u| u.bytes);
        }
        for e in page.repositories {
            if e.bytes.is_none() {
                notes.push(format!("{}: the registry gives no size", e.name));
            }
            repositories.push(RepositorySize {
                name: e.name,
                bytes: e.bytes.unwrap_or(0),
                unique_bytes: e.unique_bytes,
            });
        }
        next = answer.next();
    }
    if total.is_none() {
        notes.push("the total is shown only to callers who may pull every repository".into());
    }
    Ok(UsageReport {
        repositories,
        total_bytes: total,
        source: Source::Extension,
        notes,
    })
}

/// Usage through the standard API: the blobs of the manifests the tags point at
/// (and of an index's children), each counted once per repository and once in the
/// total.
pub(crate) async fn via_manifests(
    http: &Http,
    namespace: Option<&str>,
) -> Result<UsageReport, ClientError> {
    let listing = super::fallback::repositories(http, namespace, &Options::default()).await?;
    let mut held: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for repo in listing.items {
        let tags = super::fallback::tags(http, &repo.name, None, &Options::default()).await?;
        let mut blobs = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut queue: Vec<String> = tags.items.into_iter().map(|t| t.digest).collect();
        while let Some(reference) = queue.pop() {
            if !seen.insert(reference.clone()) || seen.len() > 10_000 {
                continue;
            }
            let path = format!("/v2/{}/manifests/{reference}", repo.name);
            let answer = http.get(&path, MANIFEST_ACCEPT).await?.ok("GET")?;
            let Ok(view) = ManifestView::parse(&answer.body, answer.content_type()) else {
                continue;
            };
            for d in view.config.iter().chain(view.layers.iter()) {
                blobs.insert(d.digest.to_string(), d.size.max(0) as u64);
            }
            queue.extend(view.manifests.iter().map(|d| d.digest.to_string()));
        }
        held.insert(repo.name, blobs);
    }
    let mut owners: BTreeMap<&String, usize> = BTreeMap::new();
    for blobs in held.values() {
        for d in blobs.keys() {
            *owners.entry(d).or_default() += 1;
        }
    }
    let mut all: BTreeMap<&String, u64> = BTreeMap::new();
    let repositories = held
        .iter()
        .map(|(name, blobs)| {
            all.extend(blobs.iter().map(|(d, s)| (d, *s)));
            RepositorySize {
                name: name.clone(),
                bytes: blobs.values().sum(),
                unique_bytes: Some(
                    blobs
                        .iter()
                        .filter(|(d, _)| owners[d] == 1)
                        .map(|(_, s)| s)
                        .sum(),
                ),
            }
        })
        .collect();
    Ok(UsageReport {
        repositories,
        total_bytes: Some(all.values().sum()),
        source: Source::Standard,
        notes: vec![
            "estimated from the manifests tags point at: untagged manifests, blobs no tag reaches and blobs shared with repositories outside the listing are not seen".into(),
        ],
    })
}
