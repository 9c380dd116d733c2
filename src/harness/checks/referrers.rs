//! The referrers API: availability, exact sets, artifactType derivation,
//! annotations, empty lists, filtering, bad digests, pagination and the
//! tag-schema upgrade path.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;

use super::CheckDef;
use crate::client::headers as parse;
use crate::client::Request;
use crate::harness::content::{self, Desc, Extras};
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::{media_types, referrers_tag::referrers_tag_for, Digest};

/// The referrers checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("referrers.api", Referrers, "GET /referrers/<digest> answers 200 with an image index (never 404)", ["R101", "R102", "R104", "R105"], api),
        harness_check!("referrers.empty", Referrers, "a digest without referrers gives an index with an empty manifests list", ["R110"], empty),
        harness_check!("referrers.oci-subject", Referrers, "pushing a manifest with a subject answers OCI-Subject: <subject digest>", ["R084"], oci_subject),
        harness_check!("referrers.exact-set", Referrers, "the list holds exactly the referrers, with artifactType derived per the spec and their annotations", ["R104", "R106", "R107", "R108", "R109", "R142"], exact_set),
        harness_check!("referrers.filter", Referrers, "?artifactType= filters and says so in OCI-Filters-Applied, or returns everything unannounced", ["R113", "R114", "R115"], filter),
        harness_check!("referrers.bad-digest", Referrers, "a malformed digest is answered 400", ["R103"], bad_digest),
        harness_check!("referrers.pagination", Referrers, "hundreds of referrers page through Link rel=\"next\" to the complete set", ["R111", "R112"], pagination),
        harness_check!("referrers.tag-schema", Referrers, "a referrer also listed in a tag-schema index appears once in the referrers API", ["R141", "R142"], tag_schema),
    ]
}

/// A descriptor as the referrers API reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RefDesc {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size.
    pub size: u64,
    /// Artifact type.
    pub artifact_type: Option<String>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Option<Vec<RefDesc>>,
}

/// A referrer the harness pushed, and what the API must report for it.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Its descriptor.
    pub desc: Desc,
    /// The artifactType the API must report.
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Pushes the artifact config blob (`{}` typed as the artifact config) to `repo`.
pub(crate) async fn artifact_config(cx: &Ctx, repo: &str) -> Step<Desc> {
    let bytes = Bytes::from_static(b"{}");
    cx.push_blob(repo, &bytes).await?;
    Ok(Desc::of(content::ARTIFACT_CONFIG_TYPE, &bytes))
}

/// Pushes a referrer of `subject`: an image manifest, or an index when `index`.
pub(crate) async fn push_referrer(
    cx: &Ctx,
    repo: &str,
    subject: &Desc,
    config: &Desc,
    artifact_type: Option<&str>,
    index: bool,
) -> Step<Pushed> {
    let annotations = vec![("org.example.marina".to_string(), cx.label("ref"))];
    let extras = Extras {
        artifact_type: artifact_type.map(str::to_string),
        subject: Some(subject.clone()),
        annotations: annotations.clone(),
    };
    let (body, mt) = if index {
        (
            content::index_manifest(&[], &extras),
            media_types::OCI_INDEX,
        )
    } else {
        (
            content::image_manifest(config, &[], &extras),
            media_types::OCI_MANIFEST,
        )
    };
    let desc = Desc::of(mt, &body);
    cx.push_manifest(repo, &desc.digest.to_string(), &body, mt)
        .await?;
    // An empty artifactType counts as missing (spec, "Listing Referrers").
    let derived = match (artifact_type.filter(|a| !a.is_empty()), index) {
        (Some(a), _) => Some(a.to_string()),
        (None, false) => Some(config.media_type.clone()),
        (None, true) => None,
    };
    Ok(Pushed {
        desc,
        artifact_type: derived,
        annotations: annotations.into_iter().collect(),
    })
}

/// A fresh subject manifest in `repo`.
pub(crate) async fn push_subject(cx: &Ctx, repo: &str) -> Step<Desc> {
    let config = artifact_config(cx, repo).await?;
    let body = content::image_manifest(
        &config,
        &[],
        &Extras {
            annotations: vec![("subject".into(), cx.label("subject"))],
            ..Extras::default()
        },
    );
    cx.push_manifest(
        repo,
        &Desc::of(media_types::OCI_MANIFEST, &body)
            .digest
            .to_string(),
        &body,
        media_types::OCI_MANIFEST,
    )
    .await
}

/// Lists the referrers of `digest`, following Link pages; returns the
/// descriptors and whether a filter was announced.
pub(crate) async fn list_referrers(
    cx: &Ctx,
    repo: &str,
    digest: &Digest,
    filter: Option<&str>,
) -> Step<(Vec<RefDesc>, Option<String>, usize)> {
    let mut target = format!("/v2/{repo}/referrers/{digest}");
    if let Some(f) = filter {
        target.push_str(&format!("?artifactType={f}"));
    }
    let mut all = Vec::new();
    let mut applied = None;
    for page in 1..=200 {
        let r = cx.send(Request::get(target.clone())).await?;
        cx.expect_status(&r, &[200], "R101", "the referrers request")?;
        let ct = r.header("content-type").unwrap_or("");
        cx.ensure(ct == media_types::OCI_INDEX, "R105", || {
            format!("Content-Type: {}; got {ct:?}", media_types::OCI_INDEX)
        })?;
        let idx: Index = serde_json::from_slice(&r.body)
            .map_err(|e| cx.fail("R104", format!("an image index body: {e}")))?;
        let manifests = idx.manifests.ok_or_else(|| {
            cx.fail(
                "R110",
                "the index has a manifests list (empty when nothing matches), not null or missing",
            )
        })?;
        all.extend(manifests);
        if let Some(a) = r.header("oci-filters-applied") {
            applied = Some(a.to_string());
        }
        let next = parse::next_link(r.header_all("link")).map_err(|bad| {
            cx.fail(
                "R112",
                format!("Link follows RFC 5988 with rel=\"next\"; got {bad:?}"),
            )
        })?;
        match next {
            Some(t) => {
                target = r.resolve(&t).map(|u| u.to_string()).ok_or_else(|| {
                    cx.fail("R112", format!("a resolvable Link target; got {t:?}"))
                })?
            }
            None => return Ok((all, applied, page)),
        }
    }
    Err(cx.fail("R111", "pagination ends within 200 pages"))
}

/// Compares a listing with what was pushed: same digests, and per descriptor the
/// media type, size, artifactType and annotations.
pub(crate) fn judge(listed: &[RefDesc], pushed: &[Pushed]) -> Result<(), (&'static str, String)> {
    let mut got: Vec<&str> = listed.iter().map(|d| d.digest.as_str()).collect();
    let mut want: Vec<String> = pushed.iter().map(|p| p.desc.digest.to_string()).collect();
    got.sort();
    want.sort();
    if got != want {
        return Err((
            "R104",
            format!("exactly the referrers pushed {want:?}; got {got:?}"),
        ));
    }
    for p in pushed {
        let d = listed
            .iter()
            .find(|d| d.digest == p.desc.digest.to_string())
            .expect("same set");
        if d.media_type != p.desc.media_type || d.size != p.desc.size {
            return Err((
                "R104",
                format!(
                    "descriptor of {} has mediaType {} and size {}; got {} and {}",
                    d.digest, p.desc.media_type, p.desc.size, d.media_type, d.size
                ),
            ));
        }
        if d.artifact_type != p.artifact_type {
            let req = match (
                &p.artifact_type,
                p.desc.media_type == media_types::OCI_INDEX,
            ) {
                (None, _) => "R108",
                (Some(a), false) if a == content::ARTIFACT_CONFIG_TYPE => "R107",
                _ => "R106",
            };
            return Err((
                req,
                format!(
                    "descriptor of {} has artifactType {:?}; got {:?}",
                    d.digest, p.artifact_type, d.artifact_type
                ),
            ));
        }
        let anns = d.annotations.clone().unwrap_or_default();
        if !p.annotations.iter().all(|(k, v)| anns.get(k) == Some(v)) {
            return Err((
                "R109",
                format!(
                    "descriptor of {} carries the annotations {:?}; got {anns:?}",
                    d.digest, p.annotations
                ),
            ));
        }
    }
    Ok(())
}

async fn api(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    let r = cx
        .send(Request::get(format!(
            "/v2/{}/referrers/{}",
            i.repo, i.desc.digest
        )))
        .await?;
    cx.ensure(r.status != 404, "R101", || {
        "the referrers request for a manifest of an existing repository answers 200; got 404 (no referrers API)".into()
    })?;
    cx.expect_status(&r, &[200], "R101", "the referrers request")?;
    let ct = r.header("content-type").unwrap_or("");
    cx.ensure(ct == media_types::OCI_INDEX, "R105", || {
        format!("Content-Type: {}; got {ct:?}", media_types::OCI_INDEX)
    })?;
    serde_json::from_slice::<Index>(&r.body)
        .map_err(|e| cx.fail("R104", format!("an image index body: {e}")))?;
    Ok(Verdict::Pass)
}

async fn empty(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let i = cx.image().await?;
    let absent = super::pull::absent_digest(cx);
    for d in [&i.desc.digest, &absent] {
        let (listed, _, _) = list_referrers(cx, &i.repo, d, None).await?;
        cx.ensure(listed.is_empty(), "R110", || {
            format!("no referrers for {d}; got {listed:?}")
        })?;
    }
    Ok(Verdict::Pass)
}

async fn oci_subject(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let repo = cx.repo("referrers");
    let subject = push_subject(cx, &repo).await?;
    let config = artifact_config(cx, &repo).await?;
    let body = content::image_manifest(
        &config,
        &[],
        &Extras {
            artifact_type: Some("application/vnd.marina.check.sig".into()),
            subject: Some(subject.clone()),
            annotations: vec![],
        },
    );
    let r = cx
        .put_manifest(
            &repo,
            &Desc::of(media_types::OCI_MANIFEST, &body)
                .digest
                .to_string(),
            &body,
            media_types::OCI_MANIFEST,
        )
        .await?;
    cx.expect_status(&r, &[201], "R031", "a manifest with a subject")?;
    let got = r.header("oci-subject");
    cx.ensure(
        got == Some(subject.digest.to_string().as_str()),
        "R084",
        || {
            format!(
                "OCI-Subject: {}; got {}",
                subject.digest,
                got.unwrap_or("no header")
            )
        },
    )?;
    Ok(Verdict::Pass)
}

async fn exact_set(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let repo = cx.repo("referrers");
    let subject = push_subject(cx, &repo).await?;
    let config = artifact_config(cx, &repo).await?;
    let pushed = vec![
        push_referrer(
            cx,
            &repo,
            &subject,
            &config,
            Some("application/vnd.marina.check.sbom"),
            false,
        )
        .await?,
        push_referrer(cx, &repo, &subject, &config, None, false).await?,
        push_referrer(cx, &repo, &subject, &config, None, true).await?,
        push_referrer(
            cx,
            &repo,
            &subject,
            &config,
            Some("application/vnd.marina.check.bundle"),
            true,
        )
        .await?,
        push_referrer(cx, &repo, &subject, &config, Some(""), false).await?,
        push_referrer(cx, &repo, &subject, &config, Some(""), true).await?,
    ];
    let (listed, _, _) = list_referrers(cx, &repo, &subject.digest, None).await?;
    judge(&listed, &pushed).map_err(|(r, why)| cx.fail(r, why))?;
    Ok(Verdict::Pass)
}

async fn filter(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let repo = cx.repo("referrers");
    let subject = push_subject(cx, &repo).await?;
    let config = artifact_config(cx, &repo).await?;
    let (sig, sbom) = (
        "application/vnd.marina.check.sig",
        "application/vnd.marina.check.sbom",
    );
    let pushed = vec![
        push_referrer(cx, &repo, &subject, &config, Some(sig), false).await?,
        push_referrer(cx, &repo, &subject, &config, Some(sbom), false).await?,
        push_referrer(cx, &repo, &subject, &config, Some(sig), true).await?,
    ];
    let (listed, applied, _) = list_referrers(cx, &repo, &subject.digest, Some(sig)).await?;
    match applied {
        Some(a) => {
            let names: Vec<&str> = a.split(',').map(str::trim).collect();
            cx.ensure(names.contains(&"artifactType"), "R114", || {
                format!("OCI-Filters-Applied names artifactType; got {a:?}")
            })?;
            cx.ensure(
                names.iter().all(|n| !n.is_empty() && !n.contains(' ')),
                "R115",
                || {
                    format!(
                        "OCI-Filters-Applied is a comma-separated list of filter names; got {a:?}"
                    )
                },
            )?;
            let want: Vec<Pushed> = pushed
                .into_iter()
                .filter(|p| p.artifact_type.as_deref() == Some(sig))
                .collect();
            judge(&listed, &want)
                .map_err(|(r, why)| cx.fail(r, format!("filtered by {sig}: {why}")))?;
            Ok(Verdict::Pass)
        }
        None => {
            judge(&listed, &pushed).map_err(|(_, why)| {
                cx.fail(
                    "R114",
                    format!("without OCI-Filters-Applied the list is unfiltered: {why}"),
                )
            })?;
            Ok(Verdict::unsupported(
                "artifactType filtering is not applied (no OCI-Filters-Applied)",
            ))
        }
    }
}

async fn bad_digest(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let i = cx.image().await?;
    for bad in ["sha256:baddigeststring", "nodigest"] {
        let r = cx
            .send(Request::get(format!("/v2/{}/referrers/{bad}", i.repo)))
            .await?;
        cx.expect_status(
            &r,
            &[400],
            "R103",
            &format!("referrers of the malformed digest {bad}"),
        )?;
    }
    Ok(Verdict::Pass)
}

async fn pagination(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let repo = cx.repo("referrers-many");
    let subject = push_subject(cx, &repo).await?;
    let config = artifact_config(cx, &repo).await?;
    let mut pushed = Vec::new();
    for i in 0..cx.options().referrers_count {
        let at = if i % 2 == 0 {
            Some("application/vnd.marina.check.even")
        } else {
            None
        };
        pushed.push(push_referrer(cx, &repo, &subject, &config, at, false).await?);
    }
    let (listed, _, _) = list_referrers(cx, &repo, &subject.digest, None).await?;
    let mut digests: Vec<&str> = listed.iter().map(|d| d.digest.as_str()).collect();
    digests.sort();
    let before = digests.len();
    digests.dedup();
    cx.ensure(before == digests.len(), "R111", || {
        format!(
            "pages never repeat a referrer; {} of {before} were repeats",
            before - digests.len()
        )
    })?;
    judge(&listed, &pushed).map_err(|(r, why)| {
        cx.fail(
            if r == "R104" { "R111" } else { r },
            format!("the pages add up to every referrer: {why}"),
        )
    })?;
    Ok(Verdict::Pass)
}

async fn tag_schema(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let repo = cx.repo("referrers");
    let subject = push_subject(cx, &repo).await?;
    let config = artifact_config(cx, &repo).await?;
    let referrer = push_referrer(
        cx,
        &repo,
        &subject,
        &config,
        Some("application/vnd.marina.check.legacy"),
        false,
    )
    .await?;
    let mut entry = referrer.desc.clone();
    entry.media_type = media_types::OCI_MANIFEST.into();
    let fallback = content::index_manifest(&[entry], &Extras::default());
    let tag = referrers_tag_for(&subject.digest);
    cx.push_manifest(&repo, &tag, &fallback, media_types::OCI_INDEX)
        .await?;
    let (listed, _, _) = list_referrers(cx, &repo, &subject.digest, None).await?;
    judge(&listed, std::slice::from_ref(&referrer)).map_err(|(_, why)| {
        cx.fail(
            "R141",
            format!("a referrer also listed under the tag schema appears exactly once: {why}"),
        )
    })?;
    Ok(Verdict::Pass)
}
