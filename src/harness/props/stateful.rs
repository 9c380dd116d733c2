//! A stateful model test: random sequences of manifest pushes (with tags), tag
//! deletes, manifest deletes, blob mounts and referrer pushes run against the
//! registry and an in-memory model; after every step the tags, manifests and
//! referrers the registry shows must equal the model's.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;

use super::run_property;
use crate::client::Request;
use crate::harness::checks::referrers::{list_referrers, push_referrer};
use crate::harness::checks::tags::TagList;
use crate::harness::checks::CheckDef;
use crate::harness::content::{self, Desc, Extras};
use crate::harness::context::{Created, Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::media_types;

/// The stateful property check.
pub fn checks() -> Vec<CheckDef> {
    vec![harness_check!(
        "properties.stateful",
        Properties,
        "random push/tag/delete/mount/referrer sequences leave the registry equal to an in-memory model after every step",
        ["R015", "R027", "R028", "R030", "R064", "R075", "R092", "R119", "R121", "R142", "R143"],
        stateful
    )]
}

const REPOS: usize = 2;
const MANIFESTS: usize = 3;
const TAGS: [&str; 3] = ["t0", "t1", "T2"];

/// One step of a sequence.
#[derive(Debug, Clone)]
enum Op {
    Push {
        repo: usize,
        manifest: usize,
        tag: usize,
    },
    DeleteTag {
        repo: usize,
        tag: usize,
    },
    DeleteManifest {
        repo: usize,
        manifest: usize,
    },
    Mount {
        from: usize,
        to: usize,
        manifest: usize,
    },
    Refer {
        repo: usize,
        manifest: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPOS;
    let m = 0..MANIFESTS;
    let t = 0..TAGS.len();
    prop_oneof![
        3 => (r.clone(), m.clone(), t.clone()).prop_map(|(repo, manifest, tag)| Op::Push { repo, manifest, tag }),
        1 => (r.clone(), t).prop_map(|(repo, tag)| Op::DeleteTag { repo, tag }),
        1 => (r.clone(), m.clone()).prop_map(|(repo, manifest)| Op::DeleteManifest { repo, manifest }),
        1 => (r.clone(), r.clone(), m.clone()).prop_map(|(from, to, manifest)| Op::Mount { from, to, manifest }),
        1 => (r, m).prop_map(|(repo, manifest)| Op::Refer { repo, manifest }),
    ]
}

/// What the registry should show.
#[derive(Debug, Default)]
struct Model {
    /// Per repository: tag → manifest index.
    tags: Vec<BTreeMap<usize, usize>>,
    /// Per repository: manifests present.
    manifests: Vec<BTreeSet<usize>>,
    /// Per repository: layer blobs present (by manifest index).
    blobs: Vec<BTreeSet<usize>>,
    /// Per repository and subject manifest: referrer digests.
    referrers: Vec<BTreeMap<usize, BTreeSet<String>>>,
    /// Whether tag deletion is disabled on this registry.
    tag_delete_disabled: bool,
}

/// The content of one case: a config and per manifest index a layer and manifest.
struct Universe {
    repos: Vec<String>,
    config: (Bytes, Desc),
    layers: Vec<(Bytes, Desc)>,
    manifests: Vec<(Bytes, Desc)>,
}

fn universe(cx: &Ctx) -> Universe {
    let config = content::config_blob(&cx.label("stateful"));
    let cdesc = Desc::of(content::CONFIG_TYPE, &config);
    let layers: Vec<(Bytes, Desc)> = (0..MANIFESTS)
        .map(|_| {
            let b = cx.unique_bytes(200);
            let d = Desc::of(content::LAYER_TYPE, &b);
            (b, d)
        })
        .collect();
    let manifests = layers
        .iter()
        .map(|(_, l)| {
            let m = content::image_manifest(&cdesc, std::slice::from_ref(l), &Extras::default());
            let d = Desc::of(media_types::OCI_MANIFEST, &m);
            (m, d)
        })
        .collect();
    let case = cx.next();
    Universe {
        repos: (0..REPOS)
            .map(|i| cx.repo(&format!("prop-state-{case}-{i}")))
            .collect(),
        config: (config, cdesc),
        layers,
        manifests,
    }
}

async fn apply(cx: &Ctx, u: &Universe, m: &mut Model, op: &Op, referrers: bool) -> Step<()> {
    match *op {
        Op::Push {
            repo,
            manifest,
            tag,
        } => {
            let name = &u.repos[repo];
            cx.push_blob(name, &u.config.0).await?;
            cx.push_blob(name, &u.layers[manifest].0).await?;
            m.blobs[repo].insert(manifest);
            let r = cx
                .put_manifest(
                    name,
                    TAGS[tag],
                    &u.manifests[manifest].0,
                    media_types::OCI_MANIFEST,
                )
                .await?;
            cx.expect_status(&r, &[201], "R075", "pushing a manifest by tag")?;
            m.manifests[repo].insert(manifest);
            m.tags[repo].insert(tag, manifest);
        }
        Op::DeleteTag { repo, tag } => {
            let r = cx
                .send(Request::delete(format!(
                    "/v2/{}/manifests/{}",
                    u.repos[repo], TAGS[tag]
                )))
                .await?;
            let present = m.tags[repo].contains_key(&tag);
            match r.status {
                400 | 405 if present => m.tag_delete_disabled = true,
                202 if present => {
                    m.tags[repo].remove(&tag);
                }
                s if !present => cx.ensure(s != 202, "R143", || {
                    format!("DELETE of a tag that does not exist does not answer 202; got {s}")
                })?,
                s => {
                    return Err(cx.fail(
                        "R119",
                        format!("DELETE of a tag answers 202 (or 400/405 when disabled); got {s}"),
                    ))
                }
            }
        }
        Op::DeleteManifest { repo, manifest } => {
            let r = cx
                .send(Request::delete(format!(
                    "/v2/{}/manifests/{}",
                    u.repos[repo], u.manifests[manifest].1.digest
                )))
                .await?;
            if m.manifests[repo].contains(&manifest) {
                if matches!(r.status, 400 | 405) {
                    return Err(Verdict::unsupported(format!(
                        "manifest deletion is disabled ({})",
                        r.status
                    )));
                }
                cx.expect_status(&r, &[202], "R121", "DELETE of a manifest by digest")?;
                m.manifests[repo].remove(&manifest);
                m.tags[repo].retain(|_, v| *v != manifest);
            } else {
                cx.ensure(r.status != 202, "R143", || format!("DELETE of a manifest the repository does not hold does not answer 202; got {}", r.status))?;
            }
        }
        Op::Mount { from, to, manifest } => {
            let (bytes, desc) = &u.layers[manifest];
            let r = cx
                .send(
                    Request::post(format!(
                        "/v2/{}/blobs/uploads/?mount={}&from={}",
                        u.repos[to], desc.digest, u.repos[from]
                    ))
                    .header("content-length", "0"),
                )
                .await?;
            match r.status {
                201 => {
                    cx.ensure(m.blobs[from].contains(&manifest) || m.blobs[to].contains(&manifest), "R064", || "a mount of a blob absent from the source answers 202 or 404, not 201".into())?;
                    cx.created(Created::Blob(u.repos[to].clone(), desc.digest.clone()));
                    let g = cx.send(Request::get(format!("/v2/{}/blobs/{}", u.repos[to], desc.digest))).await?;
                    cx.ensure(g.status == 200 && g.body == bytes, "R064", || format!("a mounted blob is pullable from the target; GET answered {}", g.status))?;
                    m.blobs[to].insert(manifest);
                }
                202 => {
                    if let Some(loc) = r.header("location").and_then(|l| r.resolve(l)) {
                        let _ = cx.send(Request::delete(loc.to_string())).await?;
                    }
                }
                404 if !m.blobs[from].contains(&manifest) => {}
                s => return Err(cx.fail("R064", format!("a mount answers 201 or 202 (404 only when the source lacks the blob); got {s}"))),
            }
        }
        Op::Refer { repo, manifest } if referrers => {
            let name = &u.repos[repo];
            cx.push_blob(name, &u.config.0).await?;
            let subject = u.manifests[manifest].1.clone();
            let p = push_referrer(
                cx,
                name,
                &subject,
                &u.config.1,
                Some("application/vnd.marina.state"),
                false,
            )
            .await?;
            m.referrers[repo]
                .entry(manifest)
                .or_default()
                .insert(p.desc.digest.to_string());
        }
        Op::Refer { .. } => {}
    }
    Ok(())
}

async fn compare(cx: &Ctx, u: &Universe, m: &Model, referrers: bool) -> Step<()> {
    for (i, name) in u.repos.iter().enumerate() {
        let r = cx
            .send(Request::get(format!("/v2/{name}/tags/list")))
            .await?;
        let mut want: Vec<&str> = m.tags[i].keys().map(|t| TAGS[*t]).collect();
        want.sort();
        if r.status == 200 {
            let l: TagList = serde_json::from_slice(&r.body)
                .map_err(|e| cx.fail("R094", format!("a JSON tag list: {e}")))?;
            let mut got = l.tags.unwrap_or_default();
            got.sort();
            cx.ensure(got == want, "R092", || {
                format!("the tag list of {name} is {want:?}; got {got:?}")
            })?;
        } else {
            cx.ensure(want.is_empty() && r.status == 404, "R092", || {
                format!(
                    "the tag list of {name} answers 200 with {want:?}; got {}",
                    r.status
                )
            })?;
        }
        for (t, tag) in TAGS.iter().enumerate() {
            let g = cx
                .send(
                    Request::head(format!("/v2/{name}/manifests/{tag}"))
                        .header("accept", content::manifest_accept()),
                )
                .await?;
            match m.tags[i].get(&t) {
                Some(&mi) => {
                    cx.expect_status(&g, &[200], "R015", &format!("HEAD of tag {tag} in {name}"))?;
                    let want = u.manifests[mi].1.digest.to_string();
                    cx.ensure(
                        g.header("docker-content-digest") == Some(want.as_str()),
                        "R028",
                        || format!("tag {tag} points at {want}"),
                    )?;
                }
                None => cx.expect_status(
                    &g,
                    &[404],
                    "R030",
                    &format!("HEAD of absent tag {tag} in {name}"),
                )?,
            }
        }
        for (mi, (_, d)) in u.manifests.iter().enumerate() {
            let g = cx
                .send(
                    Request::head(format!("/v2/{name}/manifests/{}", d.digest))
                        .header("accept", content::manifest_accept()),
                )
                .await?;
            let want = if m.manifests[i].contains(&mi) {
                200
            } else {
                404
            };
            cx.expect_status(
                &g,
                &[want],
                if want == 200 { "R027" } else { "R030" },
                &format!("HEAD of manifest {mi} by digest in {name}"),
            )?;
        }
        if referrers {
            for (mi, set) in &m.referrers[i] {
                let (listed, _, _) =
                    list_referrers(cx, name, &u.manifests[*mi].1.digest, None).await?;
                let got: BTreeSet<String> = listed.into_iter().map(|d| d.digest).collect();
                cx.ensure(&got == set, "R142", || {
                    format!("referrers of manifest {mi} in {name} are {set:?}; got {got:?}")
                })?;
            }
        }
    }
    Ok(())
}

async fn stateful(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    cx.need_delete()?;
    let referrers = cx.referrers_available().await.is_ok();
    run_property(
        cx,
        "stateful",
        || proptest::collection::vec(op(), 1..8),
        move |cx, ops: Vec<Op>| async move {
            let u = universe(&cx);
            let mut m = Model {
                tags: vec![BTreeMap::new(); REPOS],
                manifests: vec![BTreeSet::new(); REPOS],
                blobs: vec![BTreeSet::new(); REPOS],
                referrers: vec![BTreeMap::new(); REPOS],
                tag_delete_disabled: false,
            };
            for op in &ops {
                apply(&cx, &u, &mut m, op, referrers).await?;
                compare(&cx, &u, &m, referrers).await?;
            }
            Ok(())
        },
    )
    .await
}
