//! Page cost of the listing extension's queries: 10,000 repositories and 100,000
//! tags, pages of 100 from the first to the last. Every page is a keyset range
//! scan, so the last page should cost what the first does (ratio near 1).
//!
//! Run: `cargo bench --bench listing` (optionally `-- --quick` for fewer repeats).

use std::time::{Duration, Instant};

use futures_executor::block_on;

use marina::store::listing::{
    AnnotationFilter, ListingStore, ManifestFilter, PageRequest, Position, Sort, SortField,
    SortOrder,
};
use marina::store::{MetadataStore, NewManifest, Page, SqliteMetaStore};

const REPOS: usize = 10_000;
const BIG_REPO: &str = "big/app";
const BIG_MANIFESTS: usize = 9_000;
const TAGS_PER_BIG_MANIFEST: usize = 10;
const PAGE: u32 = 100;

fn manifest<'a>(
    repo: &'a str,
    digest: &'a str,
    tags: &'a [String],
    annotations: Option<String>,
) -> NewManifest<'a> {
    NewManifest {
        repo,
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: Some("application/vnd.oci.image.config.v1+json"),
        subject: None,
        annotations,
        bytes: digest.as_bytes(),
        tags,
        required_blobs: vec![],
        required_manifests: vec![],
        references: vec![],
    }
}

fn seed(store: &SqliteMetaStore) -> usize {
    let mut tags = 0;
    let v1 = vec!["v1".to_string()];
    for i in 0..REPOS - 1 {
        let repo = format!("ns{:02}/team{}/repo{i:05}", i % 100, i % 7);
        let digest = format!("sha256:{i:064x}");
        block_on(store.put_manifest(&manifest(&repo, &digest, &v1, None))).expect("seed");
        tags += 1;
    }
    for m in 0..BIG_MANIFESTS {
        let digest = format!("sha256:{:064x}", 1_000_000 + m);
        let names: Vec<String> = (0..TAGS_PER_BIG_MANIFEST)
            .map(|t| format!("t{m:05}-{t}"))
            .collect();
        let annotations = format!(
            "{{\"org.example.index\":\"{m}\",\"org.example.parity\":\"{}\"}}",
            if m % 2 == 0 { "even" } else { "odd" }
        );
        block_on(store.put_manifest(&manifest(BIG_REPO, &digest, &names, Some(annotations))))
            .expect("seed");
        tags += names.len();
    }
    tags
}

/// What reading one page reports: items read, whether more follow, the last position.
type PageOutcome = (usize, bool, Option<Position>);

/// One list to measure: reads a page after a position.
struct Case<'a> {
    name: &'a str,
    sort: Sort,
    read: Box<dyn Fn(&PageRequest) -> PageOutcome + 'a>,
}

fn pos<T>(p: Page<T>, f: fn(&T) -> Position) -> PageOutcome {
    (p.items.len(), p.more, p.items.last().map(f))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let repeats = if quick { 5 } else { 31 };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteMetaStore::open(&dir.path().join("meta.db")).expect("store");
    let started = Instant::now();
    let tags = seed(&store);
    println!(
        "seeded {REPOS} repositories and {tags} tags in {:.1?}",
        started.elapsed()
    );

    let asc = |field| Sort {
        field,
        order: SortOrder::Asc,
    };
    let desc = |field| Sort {
        field,
        order: SortOrder::Desc,
    };
    let none = ManifestFilter::default();
    let even = ManifestFilter {
        annotations: vec![AnnotationFilter::Equals(
            "org.example.parity".into(),
            "even".into(),
        )],
        ..Default::default()
    };
    let s = &store;
    let cases = vec![
        Case {
            name: "repositories by name",
            sort: asc(SortField::Name),
            read: Box::new(move |r| {
                pos(
                    block_on(s.list_repositories("", r)).unwrap(),
                    Position::of_repository,
                )
            }),
        },
        Case {
            name: "repositories by push time, desc",
            sort: desc(SortField::Pushed),
            read: Box::new(move |r| {
                pos(
                    block_on(s.list_repositories("", r)).unwrap(),
                    Position::of_repository,
                )
            }),
        },
        Case {
            name: "tags of big/app by name",
            sort: asc(SortField::Name),
            read: Box::new(|r| {
                pos(
                    block_on(s.list_tag_records(BIG_REPO, None, &none, r))
                        .unwrap()
                        .unwrap(),
                    Position::of_tag,
                )
            }),
        },
        Case {
            name: "tags of big/app by push time",
            sort: asc(SortField::Pushed),
            read: Box::new(|r| {
                pos(
                    block_on(s.list_tag_records(BIG_REPO, None, &none, r))
                        .unwrap()
                        .unwrap(),
                    Position::of_tag,
                )
            }),
        },
        Case {
            name: "manifests of big/app by digest",
            sort: asc(SortField::Name),
            read: Box::new(|r| {
                pos(
                    block_on(s.list_manifest_summaries(BIG_REPO, None, &none, r))
                        .unwrap()
                        .unwrap(),
                    Position::of_manifest,
                )
            }),
        },
        Case {
            name: "manifests parity=even by push, desc",
            sort: desc(SortField::Pushed),
            read: Box::new(|r| {
                pos(
                    block_on(s.list_manifest_summaries(BIG_REPO, None, &even, r))
                        .unwrap()
                        .unwrap(),
                    Position::of_manifest,
                )
            }),
        },
    ];

    println!(
        "\n{:<38} {:>6} {:>12} {:>12} {:>10}",
        "list (pages of 100)", "pages", "first page", "last page", "last/first"
    );
    let mut worst: f64 = 0.0;
    for case in &cases {
        // Walk once to find where every page starts.
        let mut starts: Vec<Option<Position>> = vec![None];
        loop {
            let req = PageRequest {
                sort: case.sort,
                after: starts.last().cloned().flatten(),
                n: PAGE,
            };
            let (len, more, last) = (case.read)(&req);
            assert!(len > 0);
            if !more {
                break;
            }
            starts.push(last);
        }
        // First and last page measured alternately, so that both see the same
        // machine load; the median of each is kept.
        let read = |after: &Option<Position>| {
            let req = PageRequest {
                sort: case.sort,
                after: after.clone(),
                n: PAGE,
            };
            let t = Instant::now();
            std::hint::black_box((case.read)(&req));
            t.elapsed()
        };
        let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            firsts.push(read(&starts[0]));
            lasts.push(read(starts.last().unwrap()));
        }
        let (first, last) = (median(firsts), median(lasts));
        let ratio = last.as_secs_f64() / first.as_secs_f64();
        worst = worst.max(ratio);
        println!(
            "{:<38} {:>6} {:>12.1?} {:>12.1?} {:>10.2}",
            case.name,
            starts.len(),
            first,
            last,
            ratio
        );
    }
    println!("\nworst last/first ratio: {worst:.2}");
}
