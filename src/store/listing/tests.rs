//! Listing queries: results against a brute-force model, and the query plans
//! (every page one index range, never a scan or a sort).

use super::*;
use crate::store::NewManifest;

fn store() -> (tempfile::TempDir, SqliteMetaStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteMetaStore::open(&dir.path().join("meta.db"))
        .unwrap()
        .with_clock(std::sync::Arc::new(Ticking::default()));
    (dir, s)
}

/// A clock that moves on a millisecond each time it is read, so every push
/// has a push time of its own and sorting by push time is observable.
#[derive(Debug, Default)]
struct Ticking(std::sync::atomic::AtomicI64);

impl crate::store::Clock for Ticking {
    fn now_millis(&self) -> i64 {
        1_700_000_000_000 + self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

struct Seed<'a> {
    repo: &'a str,
    digest: &'a str,
    tags: &'a [&'a str],
    artifact_type: Option<&'a str>,
    subject: Option<&'a str>,
    annotations: &'a [(&'a str, &'a str)],
}

fn put(s: &SqliteMetaStore, m: Seed<'_>) {
    let tags: Vec<String> = m.tags.iter().map(|t| t.to_string()).collect();
    let annotations = (!m.annotations.is_empty()).then(|| {
        serde_json::to_string(&m.annotations.iter().cloned().collect::<BTreeMap<_, _>>()).unwrap()
    });
    s.put_manifest(&NewManifest {
        repo: m.repo,
        digest: m.digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations,
        bytes: m.digest.as_bytes(),
        tags: &tags,
        required_blobs: vec![],
        required_manifests: vec![],
        references: vec![],
    })
    .unwrap();
}

fn plain<'a>(repo: &'a str, digest: &'a str, tags: &'a [&'a str]) -> Seed<'a> {
    Seed {
        repo,
        digest,
        tags,
        artifact_type: None,
        subject: None,
        annotations: &[],
    }
}

fn req(field: SortField, order: SortOrder, n: u32) -> PageRequest {
    PageRequest {
        sort: Sort { field, order },
        after: None,
        n,
    }
}

/// Reads a whole list page by page (`n` per page), checking that no page but the
/// last is short.
fn walk<T: Clone>(
    n: u32,
    sort: Sort,
    mut read: impl FnMut(&PageRequest) -> Page<T>,
    pos: impl Fn(&T) -> Position,
) -> Vec<T> {
    let mut all = Vec::new();
    let mut r = PageRequest {
        sort,
        after: None,
        n,
    };
    loop {
        let p = read(&r);
        if p.more {
            assert_eq!(
                p.items.len(),
                n as usize,
                "a page with more after it is full"
            );
        }
        all.extend(p.items.iter().cloned());
        match (p.more, p.items.last()) {
            (true, Some(last)) => r.after = Some(pos(last)),
            _ => return all,
        }
    }
}

const SORTS: [Sort; 4] = [
    Sort {
        field: SortField::Name,
        order: SortOrder::Asc,
    },
    Sort {
        field: SortField::Name,
        order: SortOrder::Desc,
    },
    Sort {
        field: SortField::Pushed,
        order: SortOrder::Asc,
    },
    Sort {
        field: SortField::Pushed,
        order: SortOrder::Desc,
    },
];

/// Sorts `(pushed_at, key)` pairs as the store must.
fn model_order<T>(items: &mut [T], sort: Sort, key: impl Fn(&T) -> (i64, String)) {
    items.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        let o = match sort.field {
            SortField::Name => ka.1.cmp(&kb.1),
            SortField::Pushed => ka.cmp(&kb),
        };
        match sort.order {
            SortOrder::Asc => o,
            SortOrder::Desc => o.reverse(),
        }
    });
}

#[test]
fn namespaces_of_a_name() {
    assert_eq!(namespaces_of("a"), [""]);
    assert_eq!(namespaces_of("a/b/c"), ["", "a", "a/b"]);
    assert_eq!(
        namespaces_of("org2/team-a/image-a1"),
        ["", "org2", "org2/team-a"]
    );
}

#[test]
fn repositories_of_the_registry_and_of_a_namespace_in_every_order() {
    let (_d, s) = store();
    let names = [
        "hello-world",
        "org1/artifact-a",
        "org2/team-a/image-a1",
        "org2/team-a/image-a2",
        "org2/team-b/image-b1",
        "org3/team-c/image-c1",
        "org20/x",
    ];
    for (i, n) in names.iter().enumerate() {
        put(&s, plain(n, &format!("sha256:{i}"), &["v1"]));
    }
    // A repository holding only blobs is not listed; one whose manifests are all
    // deleted drops out.
    s.link_blob("blobs/only", "sha256:b", 1, &|| true).unwrap();
    put(&s, plain("gone/app", "sha256:gone", &["v1"]));
    assert!(s.delete_manifest("gone/app", "sha256:gone").unwrap());
    // Pushing again moves a repository to the end in push order.
    put(&s, plain("org1/artifact-a", "sha256:again", &["v2"]));

    let pushed_order = [0usize, 2, 3, 4, 5, 6, 1];
    for sort in SORTS {
        for (ns, want) in [
            ("", names.to_vec()),
            ("org2", vec![names[2], names[3], names[4]]),
            ("org2/team-a", vec![names[2], names[3]]),
            ("org1", vec![names[1]]),
            ("org", vec![]),
            ("hello-world", vec![]),
        ] {
            for n in [1, 2, 3, 100] {
                let got: Vec<String> = walk(
                    n,
                    sort,
                    |r| s.list_repositories(ns, r).unwrap(),
                    Position::of_repository,
                )
                .into_iter()
                .map(|r| r.name)
                .collect();
                let mut expect: Vec<(usize, &str)> = want
                    .iter()
                    .map(|w| {
                        let i = names.iter().position(|x| x == w).unwrap();
                        (pushed_order.iter().position(|&p| p == i).unwrap(), *w)
                    })
                    .collect();
                model_order(&mut expect, sort, |(p, w)| (*p as i64, w.to_string()));
                let expect: Vec<&str> = expect.into_iter().map(|(_, w)| w).collect();
                assert_eq!(got, expect, "namespace {ns:?}, {sort:?}, n={n}");
            }
        }
    }
}

#[test]
fn tags_with_digest_and_push_time_in_every_order_and_by_digest() {
    let (_d, s) = store();
    put(&s, plain("r", "sha256:a", &["latest", "v1"]));
    put(&s, plain("r", "sha256:b", &["v2"]));
    put(&s, plain("r", "sha256:c", &["beta", "v3"]));
    // Moving a tag updates its digest and push time.
    put(&s, plain("r", "sha256:b", &["latest"]));
    let all = walk(
        100,
        SORTS[0],
        |r| {
            s.list_tag_records("r", None, &ManifestFilter::default(), r)
                .unwrap()
                .unwrap()
        },
        Position::of_tag,
    );
    let digests: Vec<(&str, &str)> = all
        .iter()
        .map(|t| (t.name.as_str(), t.digest.as_str()))
        .collect();
    assert_eq!(
        digests,
        [
            ("beta", "sha256:c"),
            ("latest", "sha256:b"),
            ("v1", "sha256:a"),
            ("v2", "sha256:b"),
            ("v3", "sha256:c")
        ]
    );
    assert!(
        all.iter().find(|t| t.name == "latest").unwrap().pushed_at
            > all.iter().find(|t| t.name == "v3").unwrap().pushed_at
    );
    for sort in SORTS {
        for digest in [None, Some("sha256:b"), Some("sha256:c"), Some("sha256:x")] {
            for n in [1, 2, 10] {
                let got = walk(
                    n,
                    sort,
                    |r| {
                        s.list_tag_records("r", digest, &ManifestFilter::default(), r)
                            .unwrap()
                            .unwrap()
                    },
                    Position::of_tag,
                );
                let mut want: Vec<TagRecord> = all
                    .iter()
                    .filter(|t| digest.is_none_or(|d| t.digest == d))
                    .cloned()
                    .collect();
                model_order(&mut want, sort, |t| (t.pushed_at, t.name.clone()));
                assert_eq!(got, want, "{sort:?} digest {digest:?} n={n}");
            }
        }
    }
    assert!(s
        .list_tag_records(
            "nope",
            None,
            &ManifestFilter::default(),
            &req(SortField::Name, SortOrder::Asc, 5)
        )
        .unwrap()
        .is_none());
}

/// The issue's scenario repository plus referrers with artifact types and annotations.
fn artifacts(s: &SqliteMetaStore) {
    put(s, plain("r", "sha256:img1", &["v1"]));
    put(s, plain("r", "sha256:img2", &[]));
    let sig = |d, a: &'static [(&str, &str)]| Seed {
        repo: "r",
        digest: d,
        tags: &[],
        artifact_type: Some("application/vnd.example.signature"),
        subject: Some("sha256:img1"),
        annotations: a,
    };
    put(
        s,
        sig("sha256:sig1", &[("signer", "alice"), ("created", "1")]),
    );
    put(s, sig("sha256:sig2", &[("signer", "bob")]));
    put(
        s,
        Seed {
            repo: "r",
            digest: "sha256:sbom1",
            tags: &["sbom"],
            artifact_type: Some("application/spdx+json"),
            subject: Some("sha256:img1"),
            annotations: &[("created", "2"), ("format", "spdx")],
        },
    );
    put(
        s,
        Seed {
            repo: "r",
            digest: "sha256:sbom2",
            tags: &[],
            artifact_type: Some("application/spdx+json"),
            subject: Some("sha256:img2"),
            annotations: &[("format", "spdx")],
        },
    );
}

#[test]
fn manifests_and_referrers_with_every_filter_and_order() {
    let (_d, s) = store();
    artifacts(&s);
    let everything = s
        .list_manifest_summaries(
            "r",
            None,
            &ManifestFilter::default(),
            &req(SortField::Name, SortOrder::Asc, 100),
        )
        .unwrap()
        .unwrap()
        .items;
    assert_eq!(everything.len(), 6);
    let sbom = everything
        .iter()
        .find(|m| m.digest == "sha256:sbom1")
        .unwrap();
    assert_eq!(sbom.tags, ["sbom"]);
    assert_eq!(sbom.subject.as_deref(), Some("sha256:img1"));
    assert_eq!(sbom.artifact_type.as_deref(), Some("application/spdx+json"));

    let ann = |k: &str| AnnotationFilter::Present(k.into());
    let eq = |k: &str, v: &str| AnnotationFilter::Equals(k.into(), v.into());
    let sig = Some("application/vnd.example.signature".to_string());
    let spdx = Some("application/spdx+json".to_string());
    let cases: Vec<(Option<&str>, ManifestFilter, Vec<&str>)> = vec![
        (
            None,
            ManifestFilter::default(),
            vec!["img1", "img2", "sig1", "sig2", "sbom1", "sbom2"],
        ),
        (
            None,
            ManifestFilter {
                tagged: Some(true),
                ..Default::default()
            },
            vec!["img1", "sbom1"],
        ),
        (
            None,
            ManifestFilter {
                tagged: Some(false),
                ..Default::default()
            },
            vec!["img2", "sig1", "sig2", "sbom2"],
        ),
        (
            None,
            ManifestFilter {
                artifact_type: spdx.clone(),
                ..Default::default()
            },
            vec!["sbom1", "sbom2"],
        ),
        (
            None,
            ManifestFilter {
                annotations: vec![ann("created")],
                ..Default::default()
            },
            vec!["sig1", "sbom1"],
        ),
        (
            None,
            ManifestFilter {
                annotations: vec![eq("format", "spdx")],
                ..Default::default()
            },
            vec!["sbom1", "sbom2"],
        ),
        (
            None,
            ManifestFilter {
                annotations: vec![eq("format", "spdx"), ann("created")],
                ..Default::default()
            },
            vec!["sbom1"],
        ),
        (
            None,
            ManifestFilter {
                annotations: vec![ann("signer")],
                artifact_type: sig.clone(),
                tagged: Some(false),
            },
            vec!["sig1", "sig2"],
        ),
        (
            None,
            ManifestFilter {
                annotations: vec![ann("signer")],
                artifact_type: spdx.clone(),
                tagged: None,
            },
            vec![],
        ),
        (
            None,
            ManifestFilter {
                artifact_type: sig.clone(),
                tagged: Some(true),
                ..Default::default()
            },
            vec![],
        ),
        (
            Some("sha256:img1"),
            ManifestFilter::default(),
            vec!["sig1", "sig2", "sbom1"],
        ),
        (
            Some("sha256:img1"),
            ManifestFilter {
                artifact_type: sig.clone(),
                ..Default::default()
            },
            vec!["sig1", "sig2"],
        ),
        (
            Some("sha256:img1"),
            ManifestFilter {
                annotations: vec![eq("signer", "bob")],
                ..Default::default()
            },
            vec!["sig2"],
        ),
        (
            Some("sha256:img1"),
            ManifestFilter {
                annotations: vec![ann("created")],
                artifact_type: spdx.clone(),
                tagged: Some(true),
            },
            vec!["sbom1"],
        ),
        (
            Some("sha256:img2"),
            ManifestFilter::default(),
            vec!["sbom2"],
        ),
        (Some("sha256:none"), ManifestFilter::default(), vec![]),
    ];
    for (subject, filter, want) in &cases {
        for sort in SORTS {
            for n in [1, 2, 100] {
                let got: Vec<ManifestSummary> = walk(
                    n,
                    sort,
                    |r| {
                        s.list_manifest_summaries("r", *subject, filter, r)
                            .unwrap()
                            .unwrap()
                    },
                    Position::of_manifest,
                );
                let mut expect: Vec<ManifestSummary> = everything
                    .iter()
                    .filter(|m| want.iter().any(|w| m.digest == format!("sha256:{w}")))
                    .cloned()
                    .collect();
                model_order(&mut expect, sort, |m| (m.pushed_at, m.digest.clone()));
                assert_eq!(got, expect, "subject {subject:?} {filter:?} {sort:?} n={n}");
            }
        }
    }
    // Tags are filtered by the manifest they point at.
    let tags = s
        .list_tag_records(
            "r",
            None,
            &ManifestFilter {
                annotations: vec![eq("format", "spdx")],
                ..Default::default()
            },
            &req(SortField::Name, SortOrder::Asc, 10),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        tags.items
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["sbom"]
    );
    let tags = s
        .list_tag_records(
            "r",
            None,
            &ManifestFilter {
                artifact_type: spdx,
                ..Default::default()
            },
            &req(SortField::Name, SortOrder::Asc, 10),
        )
        .unwrap()
        .unwrap();
    assert_eq!(tags.items.len(), 1);
}

#[test]
fn deleting_a_manifest_removes_its_annotations() {
    let (_d, s) = store();
    artifacts(&s);
    assert!(s.delete_manifest("r", "sha256:sig1").unwrap());
    let count: i64 = s
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM manifest_annotations WHERE digest = 'sha256:sig1'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(count, 0);
    let signed = s
        .list_manifest_summaries(
            "r",
            None,
            &ManifestFilter {
                annotations: vec![AnnotationFilter::Present("signer".into())],
                ..Default::default()
            },
            &req(SortField::Name, SortOrder::Asc, 10),
        )
        .unwrap()
        .unwrap();
    assert_eq!(signed.items.len(), 1);
}

/// Every paged query the listing extension makes, for every sort and filter
/// combination (described, then SQL and arguments): what the plan tests of
/// each backend check.
pub(crate) fn every_paged_query() -> Vec<(String, (String, Vec<Value>))> {
    let ann = AnnotationFilter::Present("signer".into());
    let eq = AnnotationFilter::Equals("format".into(), "spdx".into());
    let filters = [
        ManifestFilter::default(),
        ManifestFilter {
            artifact_type: Some("t".into()),
            ..Default::default()
        },
        ManifestFilter {
            annotations: vec![ann.clone()],
            ..Default::default()
        },
        ManifestFilter {
            annotations: vec![eq.clone(), ann.clone()],
            ..Default::default()
        },
        ManifestFilter {
            annotations: vec![eq.clone()],
            artifact_type: Some("t".into()),
            tagged: Some(true),
        },
        ManifestFilter {
            tagged: Some(false),
            ..Default::default()
        },
    ];
    let mut queries: Vec<(String, (String, Vec<Value>))> = Vec::new();
    for sort in SORTS {
        for after in [
            None,
            Some(Position {
                pushed_at: 5,
                key: "k".into(),
            }),
        ] {
            let r = PageRequest {
                sort,
                after,
                n: 100,
            };
            for ns in ["", "org"] {
                queries.push((format!("repos {ns:?} {r:?}"), repositories_query(ns, &r)));
            }
            for f in &filters {
                for subject in [None, Some("sha256:img1")] {
                    queries.push((
                        format!("manifests {subject:?} {f:?} {r:?}"),
                        manifests_query(1, subject, f, &r),
                    ));
                }
                for digest in [None, Some("sha256:img1")] {
                    queries.push((
                        format!("tags {digest:?} {f:?} {r:?}"),
                        tags_query(1, digest, f, &r),
                    ));
                }
            }
        }
    }
    queries
}

/// Every paged query, for every sort and filter combination, is a search of an
/// index: no full scan and no temporary b-tree for ordering.
#[test]
fn every_page_is_one_index_range_without_a_sort() {
    let (_d, s) = store();
    artifacts(&s);
    let queries = every_paged_query();
    for (what, (sql, args)) in queries {
        let plan: Vec<String> = s
            .read(|c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))?;
                rows.collect()
            })
            .unwrap();
        let text = plan.join("\n");
        for line in &plan {
            assert!(
                !line.starts_with("SCAN") && !line.contains("TEMP B-TREE"),
                "{what}\n{sql}\nplan:\n{text}"
            );
        }
        assert!(
            plan[0].starts_with("SEARCH"),
            "{what}\n{sql}\nplan:\n{text}"
        );
    }
}

/// A database written before the listing tables existed gets them filled on open.
#[test]
fn upgrading_an_older_database_backfills_annotations_and_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(crate::store::schema::MIGRATIONS[0])
            .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute_batch(
            "INSERT INTO repos (id, name) VALUES (1, 'a/b/c'), (2, 'blobs-only');
             INSERT INTO manifest_content VALUES ('sha256:m', x'00');
             INSERT INTO manifests VALUES (1, 'sha256:m', 'mt', NULL, 1, NULL, '{\"k\":\"v\"}', 42);",
        )
        .unwrap();
    }
    let s = SqliteMetaStore::open(&path).unwrap();
    let r = req(SortField::Name, SortOrder::Asc, 10);
    for ns in ["", "a", "a/b"] {
        assert_eq!(
            s.list_repositories(ns, &r).unwrap().items,
            [RepositoryRecord {
                name: "a/b/c".into(),
                pushed_at: 42
            }],
            "namespace {ns:?}"
        );
    }
    let f = ManifestFilter {
        annotations: vec![AnnotationFilter::Equals("k".into(), "v".into())],
        ..Default::default()
    };
    let m = s
        .list_manifest_summaries("a/b/c", None, &f, &r)
        .unwrap()
        .unwrap();
    assert_eq!(m.items.len(), 1);
}
