//! Several servers over one database and one bucket, each with a disk of its
//! own, behind a proxy that sends every request to the next server in turn:
//! what one server acknowledged, the others serve, and a session one opened,
//! the others continue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use marina::harness::{self, report, Options};
use marina::server::ServerHandle;
use poem::http::StatusCode;
use poem::{Body, Request, Response};

use crate::support::{missing_tool, postgres_metadata_url, s3_url};

/// A round-robin proxy on loopback: each request goes to the next backend.
struct RoundRobin {
    url: String,
    /// Requests each backend received.
    hits: Arc<Vec<AtomicUsize>>,
}

impl RoundRobin {
    /// Fails unless every backend answered more than `n` requests.
    fn assert_each_backend_took(&self, n: usize) {
        let hits: Vec<usize> = self.hits.iter().map(|h| h.load(Ordering::SeqCst)).collect();
        assert!(
            hits.iter().all(|&h| h > n),
            "every replica took its turn: {hits:?}"
        );
    }

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
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let (method, headers) = (req.method().clone(), req.headers().clone());
                // Buffered, so that a backend that is down can be skipped.
                let body = match req.into_body().into_bytes().await {
                    Ok(b) => b,
                    Err(e) => {
                        return Response::builder()
                            .status(StatusCode::BAD_REQUEST)
                            .body(e.to_string())
                    }
                };
                let mut last_error = String::new();
                for _ in 0..backends.len() {
                    let i = next.fetch_add(1, Ordering::SeqCst) % backends.len();
                    let mut out = client.request(method.clone(), format!("{}{path}", backends[i]));
                    for (name, value) in &headers {
                        if name != poem::http::header::HOST {
                            out = out.header(name, value);
                        }
                    }
                    let answer = match out.body(body.clone()).send().await {
                        Ok(a) => a,
                        // Refused: that server is down; the next one takes it.
                        Err(e) if e.is_connect() => {
                            last_error = e.to_string();
                            continue;
                        }
                        Err(e) => {
                            return Response::builder()
                                .status(StatusCode::BAD_GATEWAY)
                                .body(e.to_string())
                        }
                    };
                    counted[i].fetch_add(1, Ordering::SeqCst);
                    let mut resp = Response::builder().status(answer.status());
                    for (name, value) in answer.headers() {
                        resp = resp.header(name, value);
                    }
                    use futures_util::TryStreamExt;
                    return resp.body(Body::from_bytes_stream(
                        answer.bytes_stream().map_err(std::io::Error::other),
                    ));
                }
                Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(last_error)
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

/// Runs `marina check` against `url`; fails unless every check passes (the two
/// a registry may leave unsupported aside).
async fn assert_harness_passes(url: &str) {
    let report = harness::check(
        url,
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
        assert!(
            crate::harness_reference::passes(o),
            "{} is {}, not pass:\n{text}",
            o.id,
            o.verdict.kind()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_passes_through_a_round_robin_over_three_replicas() {
    let Some((handles, _dirs)) = replicas(false).await else {
        return;
    };
    let proxy = RoundRobin::start(handles.iter().map(|h| h.url()).collect()).await;
    assert_harness_passes(&proxy.url).await;
    proxy.assert_each_backend_took(100);
    for h in handles {
        h.stop().await;
    }
}

/// haproxy run from the example topology's configuration
/// (`examples/replicas/haproxy.cfg`), stopped when dropped.
struct Haproxy {
    child: std::process::Child,
    url: String,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// haproxy in front of the three `backends` (`http://HOST:PORT`); `None`
    /// (after [`missing_tool`], which fails under CI) without haproxy.
    async fn start(backends: &[String]) -> Option<Haproxy> {
        let found = std::process::Command::new("haproxy")
            .arg("-v")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing_tool("haproxy", "apt install haproxy");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/replicas/haproxy.cfg");
        let mut cmd = std::process::Command::new("haproxy");
        cmd.args(["-f", config, "-db"])
            .env("MARINA_LB_ADDR", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null());
        for (i, b) in backends.iter().enumerate() {
            cmd.env(
                format!("MARINA_REPLICA_{}", i + 1),
                b.trim_start_matches("http://"),
            );
        }
        let lb = Haproxy {
            child: cmd.spawn().expect("haproxy starts"),
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(format!("{}/v2/", lb.url)).await {
                if r.status() == 200 {
                    return Some(lb);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("haproxy does not forward to the replicas at {}", lb.url);
    }
}

/// The example topology's balancer (real haproxy, round robin, no stickiness)
/// over three replicas: consecutive requests of one client on one connection
/// land on different replicas, and the harness and a skopeo round trip pass
/// through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_passes_through_haproxy_over_three_replicas() {
    let Some((handles, _dirs)) = replicas(false).await else {
        return;
    };
    let urls: Vec<String> = handles.iter().map(|h| h.url()).collect();
    let Some(lb) = Haproxy::start(&urls).await else {
        return;
    };
    let client = reqwest::Client::new();
    let mut answered = Vec::new();
    for _ in 0..6 {
        let r = client.get(format!("{}/v2/", lb.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let replica = r.headers().get("x-marina-replica").cloned();
        answered.push(replica.map(|v| v.to_str().unwrap().to_string()));
    }
    let distinct: std::collections::BTreeSet<_> = answered.iter().flatten().collect();
    assert_eq!(
        distinct.len(),
        3,
        "one client's requests spread over the replicas: {answered:?}"
    );
    for pair in answered.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "consecutive requests, one replica: {answered:?}"
        );
    }
    assert_harness_passes(&lb.url).await;
    crate::clients::skopeo_round_trip(&lb.url).await;
    drop(lb);
    for h in handles {
        h.stop().await;
    }
}

/// The current official suite, every option on and sparse manifests too,
/// through the proxy over three replicas (when `MARINA_CONFORMANCE_BIN` names
/// a build of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_suite_passes_through_a_round_robin_over_three_replicas() {
    let Some(bin) =
        crate::support::suite_binary("MARINA_CONFORMANCE_BIN", "through three replicas")
    else {
        return;
    };
    let Some((handles, _dirs)) = replicas(true).await else {
        return;
    };
    let proxy = RoundRobin::start(handles.iter().map(|h| h.url()).collect()).await;
    let report = crate::support::official_suite(bin, &proxy.url, true).await;
    assert_eq!(report.exit_code(), 0, "{}", report.summary);
    assert!(
        report.summary.contains(" 0 FAIL") && report.summary.contains(" 0 Skip"),
        "{}",
        report.summary
    );
    proxy.assert_each_backend_took(100);
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

/// SIGKILL of one of three `marina serve` processes on PostgreSQL + S3 while
/// clients push through the proxy: every push that got its 201 reads back,
/// byte for byte, from the survivors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_during_pushes_loses_no_acknowledged_write() {
    let (Some(metadata), Some(blobs)) = (postgres_metadata_url(), s3_url()) else {
        return;
    };
    /// Child servers, killed however the test ends.
    struct Children(Vec<std::process::Child>);
    impl Drop for Children {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut children = Children(Vec::new());
    let mut urls = Vec::new();
    for dir in &dirs {
        let words = [
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--metadata-url",
            metadata.expose(),
            "--blob-url",
            &blobs,
        ];
        let args: Vec<&std::ffi::OsStr> = words.iter().map(std::ffi::OsStr::new).collect();
        let (child, url) = crate::support::spawn_serve(&args, std::process::Stdio::null());
        children.0.push(child);
        urls.push(url);
    }
    let proxy = RoundRobin::start(urls).await;
    // `repo:tag`, the manifest and its layer, of every push that got its 201.
    type Acknowledged = Vec<(String, Vec<u8>, Vec<u8>)>;
    let acknowledged: Arc<std::sync::Mutex<Acknowledged>> = Arc::default();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(4);
    let mut writers = Vec::new();
    for w in 0..6usize {
        let (url, acknowledged) = (proxy.url.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0usize;
            while tokio::time::Instant::now() < deadline {
                i += 1;
                let repo = format!("kill/w{w}");
                let layer: Vec<u8> = (0..(20_000 + i * 7)).map(|j| (j ^ w ^ i) as u8).collect();
                let config = format!("{{\"w\":{w},\"i\":{i}}}").into_bytes();
                let mut ok = true;
                for bytes in [&layer, &config] {
                    let d = marina::oci::Algorithm::Sha256.digest_of(bytes);
                    let r = http
                        .post(format!("{url}/v2/{repo}/blobs/uploads/?digest={d}"))
                        .body(bytes.clone())
                        .send()
                        .await;
                    ok &= r.is_ok_and(|r| r.status() == StatusCode::CREATED);
                }
                if !ok {
                    continue;
                }
                let m = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": marina::oci::Algorithm::Sha256.digest_of(&config).to_string(),
                        "size": config.len()},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": marina::oci::Algorithm::Sha256.digest_of(&layer).to_string(),
                        "size": layer.len()}],
                }))
                .unwrap();
                let r = http
                    .put(format!("{url}/v2/{repo}/manifests/t{i}"))
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(m.clone())
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == StatusCode::CREATED) {
                    acknowledged
                        .lock()
                        .unwrap()
                        .push((format!("{repo}:t{i}"), m, layer));
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(children.0[1].id() as i32, libc::SIGKILL) },
        0
    );
    let _ = children.0[1].wait();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "too few pushes: {}",
        acknowledged.len()
    );
    let http = reqwest::Client::new();
    for (name, manifest, layer) in &acknowledged {
        let (repo, tag) = name.split_once(':').unwrap();
        let got = http
            .get(format!("{}/v2/{repo}/manifests/{tag}", proxy.url))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::OK, "{name}");
        assert!(
            got.bytes().await.unwrap() == *manifest,
            "{name}: the manifest"
        );
        let d = marina::oci::Algorithm::Sha256.digest_of(layer);
        let got = http
            .get(format!("{}/v2/{repo}/blobs/{d}", proxy.url))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::OK, "{name}: its layer");
        assert!(
            got.bytes().await.unwrap() == *layer,
            "{name}: the layer's bytes"
        );
    }
    drop(children);
}
