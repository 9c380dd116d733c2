//! Listing through the standard distribution API, for registries without the
//! listing extension: `_catalog`, the tag list, manifest HEAD and GET, the referrers
//! API and then the referrers tag schema. Filtering, sorting and limiting happen
//! here; what the standard API cannot tell (push times, untagged manifests) is
//! reported in `not_honoured`.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::http::{Answer, Http, MANIFEST_ACCEPT};
use super::model::{Manifest, Repository, Tag};
use super::{ClientError, Listing, Options, SortKey, Source};
use crate::oci::{referrers_tag, Digest, ManifestView};

const NO_PUSH_TIMES: &str =
    "sorting by push time: the standard API records no push times; sorted by name instead";
const NO_PUSH_TIMES_DESC: &str =
    "sorting by push time: the standard API records no push times; sorted by name (descending) instead";

fn listing<T>(items: Vec<T>, not_honoured: Vec<String>) -> Listing<T> {
    Listing {
        items,
        source: Source::Standard,
        not_honoured,
    }
}

/// Sorts by `key` in the asked direction, noting when push time was asked for.
fn sort_by_name<T>(
    items: &mut [T],
    opts: &Options,
    notes: &mut Vec<String>,
    key: impl Fn(&T) -> &str,
) {
    if opts.sort.key == SortKey::Pushed {
        // The note names the order the output really has.
        let note = if opts.sort.descending {
            NO_PUSH_TIMES_DESC
        } else {
            NO_PUSH_TIMES
        };
        notes.push(note.to_string());
    }
    items.sort_by(|a, b| key(a).cmp(key(b)));
    if opts.sort.descending {
        items.reverse();
    }
}

/// Follows `Link` from `first`, gathering every page.
async fn all_pages<P: serde::de::DeserializeOwned, T>(
    http: &Http,
    first: String,
    items_of: impl Fn(P) -> Vec<T>,
) -> Result<Vec<T>, ClientError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    while let Some(path) = next.take() {
        let answer = http.get(&path, "application/json").await?.ok("GET")?;
        items.extend(items_of(answer.json::<P>()?));
        next = answer.next();
    }
    Ok(items)
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Vec<String>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

pub(crate) async fn repositories(
    http: &Http,
    namespace: Option<&str>,
    opts: &Options,
) -> Result<Listing<Repository>, ClientError> {
    let names = all_pages(http, "/v2/_catalog?n=1000".to_string(), |c: Catalog| {
        c.repositories
    })
    .await
    .map_err(|e| {
        ClientError::Invalid(format!(
            "the registry offers neither the listing extension nor `_catalog`: {e}"
        ))
    })?;
    let prefix = namespace.map(|n| format!("{n}/"));
    let mut items: Vec<Repository> = names
        .into_iter()
        .filter(|n| prefix.as_ref().is_none_or(|p| n.starts_with(p.as_str())))
        .map(|name| Repository {
            name,
            pushed_at: None,
        })
        .collect();
    let mut notes = Vec::new();
    sort_by_name(&mut items, opts, &mut notes, |r| &r.name);
    if let Some(l) = opts.limit {
        items.truncate(l);
    }
    Ok(listing(items, notes))
}

/// Every tag of `repo`, from the tag list.
async fn tag_names(http: &Http, repo: &str) -> Result<Vec<String>, ClientError> {
    all_pages(
        http,
        format!("/v2/{repo}/tags/list?n=1000"),
        |t: TagList| t.tags.unwrap_or_default(),
    )
    .await
}

/// A manifest fetched by tag or digest, summarised.
async fn fetch_manifest(
    http: &Http,
    repo: &str,
    reference: &str,
) -> Result<Option<Manifest>, ClientError> {
    let answer = http
        .get(
            &format!("/v2/{repo}/manifests/{reference}"),
            MANIFEST_ACCEPT,
        )
        .await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let answer = answer.ok("GET")?;
    Ok(Some(summarise(&answer)?))
}

fn summarise(answer: &Answer) -> Result<Manifest, ClientError> {
    let digest = match answer.header("docker-content-digest") {
        Some(d) => d.to_string(),
        None => crate::oci::Algorithm::Sha256
            .digest_of(&answer.body)
            .to_string(),
    };
    let view = ManifestView::parse(&answer.body, answer.content_type())
        .map_err(|e| ClientError::Invalid(format!("{}: {e}", answer.url)))?;
    Ok(Manifest {
        digest,
        media_type: view.media_type,
        artifact_type: view.artifact_type,
        size: answer.body.len() as i64,
        tags: Vec::new(),
        held_by: Vec::new(),
        pushed_at: None,
        subject: view.subject.map(|s| s.digest.to_string()),
        annotations: (!view.annotations.is_empty()).then_some(view.annotations),
    })
}

pub(crate) async fn tags(
    http: &Http,
    repo: &str,
    digest: Option<&str>,
    opts: &Options,
) -> Result<Listing<Tag>, ClientError> {
    let mut names = tag_names(http, repo).await?;
    let mut notes = Vec::new();
    sort_by_name(&mut names, opts, &mut notes, |n| n.as_str());
    let filtering = opts.filters.artifact_type.is_some() || !opts.filters.annotations.is_empty();
    let mut items = Vec::new();
    for name in names {
        if opts.limit.is_some_and(|l| items.len() >= l) {
            break;
        }
        // A HEAD gives the digest; filters need the manifest itself.
        let tag_digest = if filtering {
            match fetch_manifest(http, repo, &name).await? {
                Some(m)
                    if opts
                        .filters
                        .admit(m.artifact_type.as_deref(), m.annotations.as_ref()) =>
                {
                    m.digest
                }
                _ => continue,
            }
        } else {
            let answer = http
                .send(
                    Method::HEAD,
                    &format!("/v2/{repo}/manifests/{name}"),
                    MANIFEST_ACCEPT,
                )
                .await?;
            if answer.status == StatusCode::NOT_FOUND {
                continue; // deleted since the tag list was read
            }
            let answer = answer.ok("HEAD")?;
            match answer.header("docker-content-digest") {
                Some(d) => d.to_string(),
                None => match fetch_manifest(http, repo, &name).await? {
                    Some(m) => m.digest,
                    None => continue,
                },
            }
        };
        if digest.is_some_and(|d| d != tag_digest) {
            continue;
        }
        items.push(Tag {
            name,
            digest: tag_digest,
            pushed_at: None,
        });
    }
    if opts.filters.tagged.is_some() {
        notes.push("--tagged applies to manifests; every tag is tagged".to_string());
    }
    Ok(listing(items, notes))
}

pub(crate) async fn manifests(
    http: &Http,
    repo: &str,
    opts: &Options,
) -> Result<Listing<Manifest>, ClientError> {
    let mut notes = vec![
        "untagged manifests: the standard API reaches manifests only through tags; only tagged ones are listed"
            .to_string(),
    ];
    if opts.filters.tagged == Some(false) {
        return Ok(listing(Vec::new(), notes));
    }
    let mut by_digest: BTreeMap<String, Manifest> = BTreeMap::new();
    for name in tag_names(http, repo).await? {
        let Some(m) = fetch_manifest(http, repo, &name).await? else {
            continue;
        };
        by_digest
            .entry(m.digest.clone())
            .or_insert(m)
            .tags
            .push(name);
    }
    let mut items: Vec<Manifest> = by_digest
        .into_values()
        .filter(|m| {
            opts.filters
                .admit(m.artifact_type.as_deref(), m.annotations.as_ref())
        })
        .map(|mut m| {
            m.tags.sort();
            m
        })
        .collect();
    sort_by_name(&mut items, opts, &mut notes, |m| &m.digest);
    if let Some(l) = opts.limit {
        items.truncate(l);
    }
    Ok(listing(items, notes))
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

pub(crate) async fn referrers(
    http: &Http,
    repo: &str,
    subject: &str,
    opts: &Options,
) -> Result<Listing<Manifest>, ClientError> {
    let subject_digest: Digest = subject
        .parse()
        .map_err(|e| ClientError::Invalid(format!("subject {subject:?}: {e}")))?;
    let mut notes = Vec::new();
    let mut path = format!("/v2/{repo}/referrers/{subject}");
    if let Some(a) = &opts.filters.artifact_type {
        path.push_str(&format!(
            "?artifactType={}",
            percent_encoding::utf8_percent_encode(a, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    let first = http
        .get(&path, "application/vnd.oci.image.index.v1+json")
        .await?;
    let entries: Vec<IndexEntry> = if first.status == StatusCode::NOT_FOUND {
        // No referrers API: the referrers tag schema, or no referrers at all.
        notes.push("referrers API: not offered; read the referrers tag schema instead".to_string());
        let tag = referrers_tag::referrers_tag_for(&subject_digest);
        let answer = http
            .get(
                &format!("/v2/{repo}/manifests/{tag}"),
                "application/vnd.oci.image.index.v1+json",
            )
            .await?;
        if answer.status.is_success() {
            answer
                .json::<Index>()
                .map(|i| i.manifests)
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    } else {
        let first = first.ok("GET")?;
        let mut entries = first.json::<Index>()?.manifests;
        let mut next = first.next();
        while let Some(p) = next.take() {
            let a = http
                .get(&p, "application/vnd.oci.image.index.v1+json")
                .await?
                .ok("GET")?;
            entries.extend(a.json::<Index>()?.manifests);
            next = a.next();
        }
        entries
    };
    let mut items: Vec<Manifest> = entries
        .into_iter()
        .filter(|e| {
            opts.filters
                .admit(e.artifact_type.as_deref(), e.annotations.as_ref())
        })
        .map(|e| Manifest {
            digest: e.digest,
            media_type: e.media_type,
            artifact_type: e.artifact_type,
            size: e.size,
            tags: Vec::new(),
            held_by: Vec::new(),
            pushed_at: None,
            subject: Some(subject.to_string()),
            annotations: e.annotations,
        })
        .collect();
    if opts.filters.tagged.is_some() {
        notes.push(
            "--tagged: the referrers API does not say which referrers are tagged; ignored"
                .to_string(),
        );
    }
    sort_by_name(&mut items, opts, &mut notes, |m| &m.digest);
    if let Some(l) = opts.limit {
        items.truncate(l);
    }
    Ok(listing(items, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without push times the order is by name, and the note names the direction
    /// the output really has (issue 18 item 16: it said "by name" over a
    /// name-descending list).
    #[test]
    fn the_note_names_the_order_the_output_has() {
        for (sort, order, note) in [
            (
                "pushed:desc",
                ["c", "b", "a"],
                "sorted by name (descending) instead",
            ),
            ("pushed", ["a", "b", "c"], "sorted by name instead"),
        ] {
            let opts = Options {
                sort: sort.parse().unwrap(),
                ..Options::default()
            };
            let mut items = vec!["b", "c", "a"];
            let mut notes = Vec::new();
            sort_by_name(&mut items, &opts, &mut notes, |s| s);
            assert_eq!(items, order, "{sort}");
            assert_eq!(notes.len(), 1);
            assert!(notes[0].ends_with(note), "{sort}: {}", notes[0]);
        }
    }
}
