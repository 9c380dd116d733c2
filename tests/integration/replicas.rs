//! Several servers over one database and one bucket, each with a disk of its
//! own, behind a proxy that sends every request to the next server in turn:
//! what one server acknowledged, the others serve, and a session one opened,
//! the others continue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use marina::harness::{self, report, Options, Verdict};
use marina::server::ServerHandle;
use poem::http::StatusCode;
use poem::{Body, Request, Response};

use crate::support::{postgres_metadata_url, s3_url};

/// A round-robin proxy on loopback: each request goes to the next backend.
struct RoundRobin {
    url: String,
    /// Requests each backend received.
    hits: Arc<Vec<AtomicUsize>>,
}

impl RoundRobin {
    async fn start(backends: Vec<String>) -> RoundRobin {
        let hits: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (backends, counted) = (Arc::new(backends), hits.clone());
        let app = poem::endpoint::make(move |req: Request| {
            let (client, backends, next, counted) = (
                client.clone(),
                backends.clone(),
                next.clone(),
                counted.clone(),
            );
            async move {
                let i = next.fetch_add(1, Ordering::SeqCst) % backends.len();
                counted[i].fetch_add(1, Ordering::SeqCst);
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let mut out =
                    client.request(req.method().clone(), format!("{}{path}", backends[i]));
                for (name, value) in req.headers() {
                    if name != poem::http::header::HOST {
                        out = out.header(name, value);
                    }
                }
                let body = reqwest::Body::wrap_stream(req.into_body().into_bytes_stream());
                let answer = match out.body(body).send().await {
                    Ok(a) => a,
                    Err(e) => {
                        return Response::builder()
                            .status(StatusCode::BAD_GATEWAY)
                            .body(e.to_string())
                    }
                };
                let mut resp = Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    resp = resp.header(name, value);
                }
                use futures_util::TryStreamExt;
                resp.body(Body::from_bytes_stream(
                    answer.bytes_stream().map_err(std::io::Error::other),
                ))
            }
        });
        let acceptor = poem::listener::Listener::into_acceptor(poem::listener::TcpListener::bind(
            "127.0.0.1:0",
        ))
        .await
        .unwrap();
        let addr = poem::listener::Acceptor::local_addr(&acceptor)[0]
            .as_socket_addr()
            .copied()
            .unwrap();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        RoundRobin {
            url: format!("http://{addr}"),
            hits,
        }
    }
}

/// Three servers on PostgreSQL and S3, a data directory each.
async fn replicas(sparse: bool) -> Option<(Vec<ServerHandle>, Vec<tempfile::TempDir>)> {
    let (Some(metadata), Some(blobs)) = (postgres_metadata_url(), s3_url()) else {
        return None;
    };
    let mut handles = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let registry = marina::Registry::builder()
            .data_dir(dir.path())
            .metadata_url(metadata.expose())
            .blob_url(&blobs)
            .sparse_manifests(sparse)
            .warning(
                "marina-check/*-main",
                "this repository is for conformance tests",
            )
            .build()
            .expect("the stores open");
        handles.push(
            marina::server::serve(&registry, "127.0.0.1:0")
                .await
                .expect("a loopback port"),
        );
        dirs.push(dir);
    }
    Some((handles, dirs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_passes_through_a_round_robin_over_three_replicas() {
    let Some((handles, _dirs)) = replicas(false).await else {
        return;
    };
    let proxy = RoundRobin::start(handles.iter().map(|h| h.url()).collect()).await;
    let report = harness::check(
        &proxy.url,
        Options {
            seed: 11,
            cases: 8,
            ..Options::default()
        },
    )
    .await
    .expect("the harness runs");
    let text = report::render_terminal(&report, true);
    for o in &report.outcomes {
        let ok = match &o.verdict {
            Verdict::Pass => true,
            Verdict::Unsupported { .. } => {
                ["protocol.namespace", "protocol.retry-after"].contains(&o.id.as_str())
            }
            _ => false,
        };
        assert!(ok, "{} is {}, not pass:\n{text}", o.id, o.verdict.kind());
    }
    let hits: Vec<usize> = proxy
        .hits
        .iter()
        .map(|h| h.load(Ordering::SeqCst))
        .collect();
    assert!(
        hits.iter().all(|&n| n > 100),
        "every replica took its turn: {hits:?}"
    );
    for h in handles {
        h.stop().await;
    }
}

/// The current official suite, every option on and sparse manifests too,
/// through the proxy over three replicas (when `MARINA_CONFORMANCE_BIN` names
/// a build of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_suite_passes_through_a_round_robin_over_three_replicas() {
    let Some(bin) = std::env::var_os("MARINA_CONFORMANCE_BIN") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: set MARINA_CONFORMANCE_BIN to run the official suite through three replicas"
        );
        return;
    };
    let Some((handles, _dirs)) = replicas(true).await else {
        return;
    };
    let proxy = RoundRobin::start(handles.iter().map(|h| h.url()).collect()).await;
    let out = tempfile::tempdir().unwrap();
    let mut o = marina::conformance::Options::new(std::path::PathBuf::from(bin));
    o.registry = Some(marina::conformance::Endpoint::parse(&proxy.url).unwrap());
    o.profile = marina::conformance::Profile::Dev;
    o.switches = vec![marina::conformance::Switch::parse("data.sparse", true).unwrap()];
    o.out = Some(out.path().to_path_buf());
    o.progress = false;
    o.strict = true;
    let report = marina::conformance::run(o).await;
    assert_eq!(report.exit_code(), 0, "{}", report.summary);
    assert!(
        report.summary.contains(" 0 FAIL") && report.summary.contains(" 0 Skip"),
        "{}",
        report.summary
    );
    let hits: Vec<usize> = proxy
        .hits
        .iter()
        .map(|h| h.load(Ordering::SeqCst))
        .collect();
    assert!(
        hits.iter().all(|&n| n > 100),
        "every replica took its turn: {hits:?}"
    );
    for h in handles {
        h.stop().await;
    }
}

/// Garbage collection across replicas: three servers on PostgreSQL and S3
/// collect at once while writers push through all of them and a deleter
/// deletes through one; no acknowledged manifest loses a blob (`gc.rs`'s race).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_collecting_at_once_while_others_push_never_lose_a_blob() {
    let (Some(metadata), Some(blobs)) = (postgres_metadata_url(), s3_url()) else {
        return;
    };
    crate::gc::collector_races_writers(Some(&metadata), Some(&blobs), 3).await;
}
