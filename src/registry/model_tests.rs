//! Random sequences of pushes (layers shared from a small pool), tag and
//! manifest deletions, mounts and collections, against a model of what must
//! live: after every collection (no grace), a repository links a blob exactly
//! when one of its manifests references it, every linked blob reads back
//! byte-exact, and the store records exactly the blobs something holds.

use std::collections::{BTreeMap, BTreeSet};

use super::{MountOutcome, Registry};
use crate::oci::media_types::OCI_MANIFEST;
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag};
use futures_util::StreamExt;
use proptest::prelude::*;
use serde_json::json;

fn image_manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, n)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": n}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0.to_string(), "size": config.1},
        "layers": layers,
    }))
    .unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Push { repo: u8, layers: Vec<u8>, tag: u8 },
    DeleteTag { repo: u8, tag: u8 },
    DeleteManifest { repo: u8, nth: u8 },
    Mount { from: u8, to: u8, layer: u8 },
    Collect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, proptest::collection::vec(0..5u8, 1..3), 0..3u8)
            .prop_map(|(repo, layers, tag)| Op::Push { repo, layers, tag }),
        1 => (0..3u8, 0..3u8).prop_map(|(repo, tag)| Op::DeleteTag { repo, tag }),
        2 => (0..3u8, 0..8u8).prop_map(|(repo, nth)| Op::DeleteManifest { repo, nth }),
        1 => (0..3u8, 0..3u8, 0..5u8).prop_map(|(from, to, layer)| Op::Mount { from, to, layer }),
        2 => Just(Op::Collect),
    ]
}

fn layer(i: u8) -> Vec<u8> {
    format!("pooled layer {i}")
        .repeat(10 + i as usize)
        .into_bytes()
}

fn repo(i: u8) -> RepoName {
    format!("model/r{i}").parse().unwrap()
}

async fn push(reg: &Registry, repo: &RepoName, bytes: &[u8]) -> Digest {
    let d = Algorithm::Sha256.digest_of(bytes);
    let body =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes.to_vec()))]);
    reg.upload_monolithic(repo, &d, None, body).await.unwrap();
    d
}

async fn read(reg: &Registry, repo: &RepoName, d: &Digest) -> Option<Vec<u8>> {
    let size = reg.blob_size(repo, d).await.ok()?;
    let mut chunks = reg
        .read_blob(d, 0, size)
        .await
        .expect("a linked blob's bytes open");
    let mut out = Vec::new();
    while let Some(c) = chunks.next().await {
        out.extend_from_slice(&c.expect("a linked blob's bytes read"));
    }
    Some(out)
}

async fn run(ops: Vec<Op>) {
    let test = crate::testing::TestRegistry::start_with(
        crate::Registry::builder()
            .in_memory()
            .gc_interval(None)
            .gc_grace(std::time::Duration::ZERO),
        None,
    )
    .await;
    let reg = test.registry().core().clone();
    let mut contents: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    // The model: links per repository, and manifests with what they reference.
    let mut links: BTreeSet<(u8, Digest)> = BTreeSet::new();
    let mut manifests: BTreeMap<(u8, Digest), Vec<Digest>> = BTreeMap::new();
    let mut serial = 0u32;
    for op in ops {
        match op {
            Op::Push {
                repo: r,
                layers,
                tag,
            } => {
                serial += 1;
                let config = format!("{{\"serial\":{serial}}}").into_bytes();
                let mut refs = Vec::new();
                for bytes in layers.iter().map(|&i| layer(i)).chain([config.clone()]) {
                    let d = push(&reg, &repo(r), &bytes).await;
                    contents.insert(d.clone(), bytes);
                    links.insert((r, d.clone()));
                    refs.push(d);
                }
                let config_d = refs.pop().unwrap();
                let m = image_manifest(
                    (&config_d, config.len()),
                    &refs
                        .iter()
                        .map(|d| (d, contents[d].len()))
                        .collect::<Vec<_>>(),
                );
                let tag: Tag = format!("t{tag}").parse().unwrap();
                let pushed = reg
                    .put_manifest(
                        &repo(r),
                        &Reference::Tag(tag),
                        Some(OCI_MANIFEST),
                        m,
                        vec![],
                    )
                    .await
                    .expect("a manifest over freshly linked blobs is accepted");
                refs.push(config_d);
                manifests.insert((r, pushed.digest), refs);
            }
            Op::DeleteTag { repo: r, tag } => {
                let tag: Tag = format!("t{tag}").parse().unwrap();
                let _ = reg.delete_manifest(&repo(r), &Reference::Tag(tag)).await;
            }
            Op::DeleteManifest { repo: r, nth } => {
                let mine: Vec<Digest> = manifests
                    .keys()
                    .filter(|(x, _)| *x == r)
                    .map(|(_, d)| d.clone())
                    .collect();
                if let Some(d) = mine.get(nth as usize % mine.len().max(1)) {
                    reg.delete_manifest(&repo(r), &Reference::Digest(d.clone()))
                        .await
                        .unwrap();
                    manifests.remove(&(r, d.clone()));
                }
            }
            Op::Mount { from, to, layer: l } => {
                let d = Algorithm::Sha256.digest_of(&layer(l));
                match reg
                    .mount(&repo(to), &d, Some(&repo(from)), None, Algorithm::Sha256)
                    .await
                    .unwrap()
                {
                    MountOutcome::Mounted => {
                        assert!(
                            links.contains(&(from, d.clone())),
                            "mounted {d} from r{from}, which the model does not link"
                        );
                        links.insert((to, d));
                    }
                    MountOutcome::Started(id) => {
                        assert!(
                            !links.contains(&(from, d.clone())),
                            "r{from} links {d} but the mount did not find it"
                        );
                        reg.cancel_upload(&repo(to), &id).await.unwrap();
                    }
                }
            }
            Op::Collect => {
                reg.collect_garbage().await.unwrap();
                links.retain(|(r, d)| {
                    manifests
                        .iter()
                        .any(|((mr, _), refs)| mr == r && refs.contains(d))
                });
                for r in 0..3u8 {
                    for (d, bytes) in &contents {
                        let got = read(&reg, &repo(r), d).await;
                        if links.contains(&(r, d.clone())) {
                            assert_eq!(got.as_deref(), Some(&bytes[..]), "r{r} must serve {d}");
                        } else {
                            assert_eq!(got, None, "r{r} must not serve {d}");
                        }
                    }
                }
                let held: BTreeSet<&Digest> = links
                    .iter()
                    .map(|(_, d)| d)
                    .chain(manifests.values().flatten())
                    .collect();
                let totals = reg.storage_totals().await.unwrap();
                assert_eq!(totals.blobs as usize, held.len(), "blobs recorded vs held");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn what_lives_after_a_collection_is_what_the_model_says(ops in proptest::collection::vec(op(), 1..30)) {
        tokio::runtime::Runtime::new().unwrap().block_on(run(ops));
    }
}
