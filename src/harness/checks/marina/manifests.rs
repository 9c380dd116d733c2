//! The `_marina` manifest and referrer lists against content the check pushed:
//! every field of tagged and untagged manifests, the `tagged`, `artifactType` and
//! `annotation` filters applied before paging, and referrers.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{
    advertised, push_under, repository_module, sorted, time_of, walk, walk_full, Listing,
    ManifestEntry, TagEntry, MANIFESTS_V1, REFERRERS_V1, TAGS_V1,
};
use crate::harness::checks::referrers::{artifact_config, push_referrer, push_subject, Pushed};
use crate::harness::checks::CheckDef;
use crate::harness::content::{self, Desc, Extras};
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::media_types::{OCI_INDEX, OCI_MANIFEST};

/// The manifest, filter and referrer list checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("extensions.marina-manifests", Extensions, "_marina lists tagged and untagged manifests with the fields they were pushed with, and filters by tagged", ["M002", "M004", "M005", "M010", "M011", "M012"], manifests),
        harness_check!("extensions.marina-filters", Extensions, "artifactType and annotation filters (KEY, KEY=VALUE, repeated) apply before paging: every page but the last is full", ["M014", "M015"], filters),
        harness_check!("extensions.marina-referrers", Extensions, "_marina lists exactly the referrers of a subject with their fields, filtered by artifactType and annotation", ["M002", "M004", "M012", "M013", "M014"], referrers),
    ]
}

/// What a manifest entry must report.
#[derive(Debug, Clone)]
pub(crate) struct Want {
    /// The manifest as pushed.
    pub desc: Desc,
    /// Its artifact type, derived as the definition says.
    pub artifact_type: Option<String>,
    /// Its tags, in byte order.
    pub tags: Vec<String>,
    /// The digest of its subject.
    pub subject: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// How a manifest listing differs from what was pushed.
pub(crate) enum Mismatch {
    /// Not the same digests.
    Set(String),
    /// An entry's fields differ.
    Fields(String),
}

/// Compares a manifest listing with what was pushed.
pub(crate) fn judge_entries(got: &[ManifestEntry], want: &[Want]) -> Result<(), Mismatch> {
    let listed: Vec<&str> = got.iter().map(|e| e.digest.as_str()).collect();
    let wanted: Vec<String> = want.iter().map(|w| w.desc.digest.to_string()).collect();
    let wanted_refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    if sorted(&listed) != sorted(&wanted_refs) {
        return Err(Mismatch::Set(format!(
            "exactly the manifests {:?}; got {listed:?}",
            sorted(&wanted)
        )));
    }
    for w in want {
        let d = w.desc.digest.to_string();
        let e = got.iter().find(|e| e.digest == d).expect("same digests");
        let annotations = e.annotations.clone().unwrap_or_default();
        let same = e.media_type == w.desc.media_type
            && e.size == w.desc.size
            && e.artifact_type == w.artifact_type
            && e.tags == w.tags
            && e.subject == w.subject
            && annotations == w.annotations;
        if !same {
            return Err(Mismatch::Fields(format!(
                "{d}: mediaType {}, size {}, artifactType {:?}, tags {:?}, subject {:?}, annotations {:?}; got {}, {}, {:?}, {:?}, {:?}, {:?}",
                w.desc.media_type, w.desc.size, w.artifact_type, w.tags, w.subject, w.annotations,
                e.media_type, e.size, e.artifact_type, e.tags, e.subject, annotations
            )));
        }
    }
    Ok(())
}

fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A manifest the manifests check pushes, and what its entry must report.
struct Spec {
    body: Bytes,
    media_type: &'static str,
    tags: &'static [&'static str],
    artifact_type: Option<&'static str>,
    subject: Option<Desc>,
    annotations: Vec<(String, String)>,
}

impl Spec {
    fn want(&self) -> Want {
        Want {
            desc: Desc::of(self.media_type, &self.body),
            artifact_type: self.artifact_type.map(str::to_string),
            tags: sorted(&self.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
            subject: self.subject.as_ref().map(|d| d.digest.to_string()),
            annotations: self.annotations.iter().cloned().collect(),
        }
    }
}

const CHART: &str = "application/vnd.marina.check.chart";
const BUNDLE: &str = "application/vnd.marina.check.bundle";

async fn manifests(cx: &Ctx) -> Step<Verdict> {
    advertised(cx).await?;
    cx.need_push()?;
    let repo = cx.repo("ext-manifests");
    let run = cx.label("manifests");
    let config = content::config_blob(&run);
    cx.push_blob(&repo, &config).await?;
    let image_config = Desc::of(content::CONFIG_TYPE, &config);
    let art = artifact_config(cx, &repo).await?;
    let ann = |kind: &str| {
        pairs(&[
            ("org.example.marina.kind", kind),
            ("org.example.marina.run", &run),
        ])
    };
    let extras = |artifact_type: Option<&str>,
                  subject: Option<&Desc>,
                  annotations: &[(String, String)]| Extras {
        artifact_type: artifact_type.map(str::to_string),
        subject: subject.cloned(),
        annotations: annotations.to_vec(),
    };
    let image = |config: &Desc,
                 at: Option<&'static str>,
                 tags: &'static [&'static str],
                 annotations: Vec<(String, String)>,
                 derived: Option<&'static str>| Spec {
        body: content::image_manifest(config, &[], &extras(at, None, &annotations)),
        media_type: OCI_MANIFEST,
        tags,
        artifact_type: at.or(derived),
        subject: None,
        annotations,
    };
    // A: an image with three tags; B: a tagged artifact; C: an untagged one without
    // annotations; D: a tagged index without artifactType; E: an untagged index with
    // artifactType and a subject; F: an untagged image.
    let a = image(
        &image_config,
        None,
        &["v1", "latest", "V2"],
        ann("app"),
        Some(content::CONFIG_TYPE),
    );
    let a_desc = Desc::of(OCI_MANIFEST, &a.body);
    let specs = vec![
        image(&art, Some(CHART), &["chart"], ann("chart"), None),
        image(&art, Some(CHART), &[], vec![], None),
        Spec {
            body: content::index_manifest(std::slice::from_ref(&a_desc), &Extras::default()),
            media_type: OCI_INDEX,
            tags: &["multi"],
            artifact_type: None,
            subject: None,
            annotations: vec![],
        },
        Spec {
            body: content::index_manifest(
                &[],
                &extras(Some(BUNDLE), Some(&a_desc), &ann("bundle")),
            ),
            media_type: OCI_INDEX,
            tags: &[],
            artifact_type: Some(BUNDLE),
            subject: Some(a_desc.clone()),
            annotations: ann("bundle"),
        },
        image(
            &image_config,
            None,
            &[],
            ann("plain"),
            Some(content::CONFIG_TYPE),
        ),
    ];
    let mut want = Vec::new();
    for spec in std::iter::once(&a).chain(&specs) {
        push_under(cx, &repo, &spec.body, spec.media_type, spec.tags).await?;
        want.push(spec.want());
    }
    let path = repository_module(cx, &repo, "manifests").await?;
    let listing = |params: &[(&str, &str)]| {
        Listing::new(&path, params, "manifests", MANIFESTS_V1).top("repository", repo.clone())
    };
    let got = walk_full::<ManifestEntry>(cx, &listing(&[("n", "2")]), 2, "M019").await?;
    for e in &got {
        time_of(cx, &e.digest, &e.pushed_at)?;
    }
    judge_entries(&got, &want).map_err(|m| match m {
        Mismatch::Set(why) => cx.fail("M010", format!("every manifest, tagged or not: {why}")),
        Mismatch::Fields(why) => cx.fail("M012", why),
    })?;
    for (tagged, keep) in [("true", true), ("false", false)] {
        let l = listing(&[("tagged", tagged), ("n", "2")]);
        let got = walk_full::<ManifestEntry>(cx, &l, 2, "M015").await?;
        let subset: Vec<Want> = want
            .iter()
            .filter(|w| w.tags.is_empty() != keep)
            .cloned()
            .collect();
        judge_entries(&got, &subset).map_err(|m| match m {
            Mismatch::Set(why) => cx.fail("M011", format!("tagged={tagged}: {why}")),
            Mismatch::Fields(why) => cx.fail("M012", why),
        })?;
    }
    Ok(Verdict::Pass)
}

/// A manifest of the filter check and what the filters see of it.
struct Item {
    digest: String,
    even: bool,
    key: Option<&'static str>,
    extra: bool,
    tags: Vec<String>,
}

const EVEN: &str = "application/vnd.marina.check.even";
const ODD: &str = "application/vnd.marina.check.odd";
const KEY: &str = "org.example.marina.filter";
const EXTRA: &str = "org.example.marina.extra";

async fn filters(cx: &Ctx) -> Step<Verdict> {
    advertised(cx).await?;
    cx.need_push()?;
    let repo = cx.repo("ext-filters");
    let art = artifact_config(cx, &repo).await?;
    let run = cx.label("filters");
    let mut items = Vec::new();
    for i in 0..9u32 {
        let key = (i != 8).then_some(if i % 3 == 0 { "x" } else { "y" });
        let extra = [0, 3, 4, 8].contains(&i);
        let mut annotations = vec![("org.example.marina.run".to_string(), format!("{run}-{i}"))];
        if let Some(k) = key {
            annotations.push((KEY.into(), k.into()));
        }
        if extra {
            annotations.push((EXTRA.into(), "1".into()));
        }
        let even = i % 2 == 0;
        let extras = Extras {
            artifact_type: Some(if even { EVEN } else { ODD }.into()),
            subject: None,
            annotations,
        };
        let body = content::image_manifest(&art, &[], &extras);
        let tags: Vec<String> = if i % 3 == 2 {
            vec![]
        } else {
            vec![format!("f{i}")]
        };
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let desc = push_under(cx, &repo, &body, OCI_MANIFEST, &refs).await?;
        items.push(Item {
            digest: desc.digest.to_string(),
            even,
            key,
            extra,
            tags,
        });
    }
    let manifests = repository_module(cx, &repo, "manifests").await?;
    let tags = repository_module(cx, &repo, "tags").await?;
    let key_x = format!("{KEY}=x");
    let key_y = format!("{KEY}=y");
    type Keep = fn(&Item) -> bool;
    type Params<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Params, Keep)> = vec![
        (vec![("artifactType", EVEN)], |i| i.even),
        (vec![("annotation", KEY)], |i| i.key.is_some()),
        (vec![("annotation", &key_x)], |i| i.key == Some("x")),
        (vec![("annotation", &key_x), ("annotation", EXTRA)], |i| {
            i.key == Some("x") && i.extra
        }),
        (
            vec![
                ("artifactType", EVEN),
                ("annotation", &key_y),
                ("tagged", "true"),
            ],
            |i| i.even && i.key == Some("y") && !i.tags.is_empty(),
        ),
    ];
    for (params, keep) in &cases {
        let mut p = params.clone();
        p.push(("n", "2"));
        let l = Listing::new(&manifests, &p, "manifests", MANIFESTS_V1);
        let got = walk_full::<ManifestEntry>(cx, &l, 2, "M015").await?;
        let listed: Vec<&str> = got.iter().map(|e| e.digest.as_str()).collect();
        let want: Vec<&str> = items
            .iter()
            .filter(|i| keep(i))
            .map(|i| i.digest.as_str())
            .collect();
        cx.ensure(sorted(&listed) == sorted(&want), "M014", || {
            format!(
                "{params:?} keeps exactly {:?}; got {listed:?}",
                sorted(&want)
            )
        })?;
    }
    let tag_cases: Vec<(Params, usize, Keep)> = vec![
        (vec![("artifactType", ODD)], 1, |i| !i.even),
        (vec![("annotation", &key_x)], 2, |i| i.key == Some("x")),
    ];
    for (params, n, keep) in &tag_cases {
        let n_text = n.to_string();
        let mut p = params.clone();
        p.push(("n", &n_text));
        let l = Listing::new(&tags, &p, "tags", TAGS_V1);
        let got = walk_full::<TagEntry>(cx, &l, *n, "M015").await?;
        let listed: Vec<&str> = got.iter().map(|t| t.name.as_str()).collect();
        let want: Vec<&str> = items
            .iter()
            .filter(|i| keep(i))
            .flat_map(|i| i.tags.iter().map(String::as_str))
            .collect();
        cx.ensure(sorted(&listed) == sorted(&want), "M014", || {
            format!(
                "tags with {params:?} are exactly {:?}; got {listed:?}",
                sorted(&want)
            )
        })?;
    }
    Ok(Verdict::Pass)
}

fn want_referrer(p: &Pushed, subject: &str) -> Want {
    Want {
        desc: p.desc.clone(),
        artifact_type: p.artifact_type.clone(),
        tags: vec![],
        subject: Some(subject.to_string()),
        annotations: p.annotations.clone(),
    }
}

async fn referrers(cx: &Ctx) -> Step<Verdict> {
    advertised(cx).await?;
    cx.need_push()?;
    let repo = cx.repo("ext-referrers");
    let subject = push_subject(cx, &repo).await?;
    let other = push_subject(cx, &repo).await?;
    let config = artifact_config(cx, &repo).await?;
    let (sig, sbom) = (
        "application/vnd.marina.check.sig",
        "application/vnd.marina.check.sbom",
    );
    let mut pushed = Vec::new();
    for (at, index) in [
        (Some(sig), false),
        (Some(sbom), false),
        (None, false),
        (None, true),
        (Some(sig), true),
    ] {
        pushed.push(push_referrer(cx, &repo, &subject, &config, at, index).await?);
    }
    let noise = push_referrer(cx, &repo, &other, &config, Some(sig), false).await?;
    let path = repository_module(cx, &repo, "referrers").await?;
    let s = subject.digest.to_string();
    let listing = |subject: &str, params: &[(&str, &str)]| {
        let mut p = vec![("subject", subject)];
        p.extend_from_slice(params);
        Listing::new(&path, &p, "manifests", REFERRERS_V1)
            .top("repository", repo.clone())
            .top("subject", subject.to_string())
    };
    let judge = |got: &[ManifestEntry], want: &[Want], what: &str| {
        judge_entries(got, want).map_err(|m| match m {
            Mismatch::Set(why) => cx.fail("M013", format!("{what}: {why}")),
            Mismatch::Fields(why) => cx.fail("M012", why),
        })
    };
    let all: Vec<Want> = pushed.iter().map(|p| want_referrer(p, &s)).collect();
    let got = walk_full::<ManifestEntry>(cx, &listing(&s, &[("n", "2")]), 2, "M019").await?;
    judge(&got, &all, "the referrers of the subject")?;

    let got = walk_full::<ManifestEntry>(
        cx,
        &listing(&s, &[("artifactType", sig), ("n", "1")]),
        1,
        "M015",
    )
    .await?;
    let sigs: Vec<Want> = pushed
        .iter()
        .filter(|p| p.artifact_type.as_deref() == Some(sig))
        .map(|p| want_referrer(p, &s))
        .collect();
    judge_entries(&got, &sigs).map_err(|m| match m {
        Mismatch::Set(why) => cx.fail("M014", format!("artifactType={sig}: {why}")),
        Mismatch::Fields(why) => cx.fail("M012", why),
    })?;

    let (k, v) = pushed[1]
        .annotations
        .iter()
        .next()
        .expect("push_referrer annotates");
    let filter = format!("{k}={v}");
    let got = walk::<ManifestEntry>(cx, &listing(&s, &[("annotation", &filter)]))
        .await?
        .items;
    judge_entries(&got, &[want_referrer(&pushed[1], &s)]).map_err(|m| match m {
        Mismatch::Set(why) => cx.fail("M014", format!("annotation={filter}: {why}")),
        Mismatch::Fields(why) => cx.fail("M012", why),
    })?;

    let o = other.digest.to_string();
    let got = walk::<ManifestEntry>(cx, &listing(&o, &[])).await?.items;
    judge(
        &got,
        &[want_referrer(&noise, &o)],
        "the referrers of another subject",
    )?;
    Ok(Verdict::Pass)
}
