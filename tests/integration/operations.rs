//! Running it in production: /metrics (and promtool), the access log, SIGTERM
//! draining, /healthz and /readyz, 507 on a full store, start-up failures.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use marina::oci::{Algorithm, Digest};
use marina::store::{BlobReader, BlobStore, MemoryBlobStore, ResumedStaging, Staging};
use reqwest::{Method, StatusCode};

use crate::support::TestServer;

/// The value of the sample `name` (with its labels written as in the text).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Whether `tool` runs; under CI a missing tool fails the test instead.
fn have(tool: &str, install: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        crate::support::missing_tool(&format!("`{tool}`"), install);
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_push_and_a_pull_by_route_template_and_pass_promtool() {
    let s = TestServer::start().await;
    let (_, manifest) = s.push_image("team/app", "v1", "metrics").await;
    let r = s.get(&format!("/v2/team/app/manifests/{manifest}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.describe());
    let r = s.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.describe());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        r.describe()
    );
    let text = String::from_utf8(r.body.clone()).unwrap();
    let put = r#"marina_http_requests_total{route="/v2/{name}/manifests/{reference}",method="PUT",status="201"}"#;
    let get = r#"marina_http_requests_total{route="/v2/{name}/manifests/{reference}",method="GET",status="200"}"#;
    let blobs = r#"marina_http_requests_total{route="/v2/{name}/blobs/uploads/",method="POST",status="201"}"#;
    assert_eq!(sample(&text, put), Some(1.0), "{text}");
    assert_eq!(sample(&text, get), Some(1.0), "{text}");
    assert_eq!(sample(&text, blobs), Some(2.0), "{text}");
    assert_eq!(
        sample(&text, r#"marina_stored{kind="manifest"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"marina_stored{kind="blob"}"#),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, "marina_http_received_bytes_total").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(
        sample(&text, "marina_http_sent_bytes_total").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(text.contains("marina_build_info{version="), "{text}");
    assert!(
        text.contains("# TYPE marina_gc_runs_total counter"),
        "{text}"
    );
    assert!(
        !text.contains("team/app"),
        "a repository name leaked into labels: {text}"
    );
    assert!(
        !text.contains(&manifest.to_string()),
        "a digest leaked into labels: {text}"
    );
    if have("promtool", "apt-get install prometheus") {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_and_readyz_fails_when_the_blob_store_is_gone() {
    let s = TestServer::start().await;
    let r = s.get("/healthz").await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    let r = s.get("/readyz").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.describe());
    std::fs::remove_dir_all(s.data_dir().join("blobs")).unwrap();
    let r = s.get("/readyz").await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        r.describe()
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("blob store"),
        "{}",
        r.describe()
    );
    let r = s.get("/").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.header("location"), Some("/docs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id_and_echoes_the_clients() {
    let s = TestServer::start().await;
    let r = s
        .req(Method::GET, "/v2/")
        .await
        .header("X-Request-Id", "trace-42")
        .send()
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    // An id that could break a log line is replaced.
    let r = s
        .req(Method::GET, "/v2/")
        .await
        .header("X-Request-Id", "a b\"c")
        .send()
        .await;
    let id = r.header("x-request-id").unwrap_or("");
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?}"
    );
    let r = s.get("/v2/nope/manifests/v1").await;
    assert!(r.header("x-request-id").is_some(), "{}", r.describe());
}

/// An in-memory registry over `blobs`, served on a free port.
async fn serve_over(blobs: Arc<dyn BlobStore>) -> marina::server::ServerHandle {
    let registry = marina::Registry::builder()
        .in_memory()
        .blob_store(blobs)
        .build()
        .unwrap();
    marina::server::serve(&registry, "127.0.0.1:0")
        .await
        .unwrap()
}

/// The text of a server's `/metrics`.
async fn metrics_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A blob store whose staging areas fail every write with ENOSPC.
struct FullStore(MemoryBlobStore);

struct FullStaging;

impl Staging for FullStaging {
    fn size(&self) -> u64 {
        0
    }
    fn append(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
    }
    fn truncate(&mut self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn read_back(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::io::empty()))
    }
    fn publish(self: Box<Self>, _: &Digest) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
    }
}

#[async_trait::async_trait]
impl BlobStore for FullStore {
    fn create_staging(&self, _: &str, _: &[u8]) -> std::io::Result<Box<dyn Staging>> {
        Ok(Box::new(FullStaging))
    }
    fn reopen_staging(&self, _: &str) -> std::io::Result<Option<ResumedStaging>> {
        Ok(None)
    }
    fn discard_staging(&self, _: &str) {}
    fn stale_staging(&self, _: std::time::SystemTime) -> Vec<String> {
        Vec::new()
    }
    async fn size_of(&self, d: &Digest) -> std::io::Result<Option<u64>> {
        self.0.size_of(d).await
    }
    async fn open(&self, d: &Digest, offset: u64, len: u64) -> std::io::Result<BlobReader> {
        self.0.open(d, offset, len).await
    }
    async fn remove(&self, d: &Digest) -> std::io::Result<()> {
        self.0.remove(d).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_answered_507_in_the_error_envelope_and_counted() {
    let handle = serve_over(Arc::new(FullStore(MemoryBlobStore::new()))).await;
    let url = handle.url();
    let client = reqwest::Client::new();
    let bytes = vec![7u8; 4096];
    let d = Algorithm::Sha256.digest_of(&bytes);
    let r = client
        .post(format!("{url}/v2/full/app/blobs/uploads/?digest={d}"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("storage is full"), "{body}");
    let text = metrics_text(&client, &url).await;
    assert_eq!(
        sample(&text, "marina_storage_full_errors_total"),
        Some(1.0),
        "{text}"
    );
    // Nothing half-written became visible.
    let r = client
        .head(format!("{url}/v2/full/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    handle.stop().await;
}

/// A blob store whose reads never answer: a pull waits until its client goes.
struct StalledReads(MemoryBlobStore);

#[async_trait::async_trait]
impl BlobStore for StalledReads {
    fn create_staging(&self, id: &str, note: &[u8]) -> std::io::Result<Box<dyn Staging>> {
        self.0.create_staging(id, note)
    }
    fn reopen_staging(&self, id: &str) -> std::io::Result<Option<ResumedStaging>> {
        self.0.reopen_staging(id)
    }
    fn discard_staging(&self, id: &str) {
        self.0.discard_staging(id)
    }
    fn stale_staging(&self, before: std::time::SystemTime) -> Vec<String> {
        self.0.stale_staging(before)
    }
    async fn size_of(&self, d: &Digest) -> std::io::Result<Option<u64>> {
        self.0.size_of(d).await
    }
    async fn open(&self, _: &Digest, _: u64, _: u64) -> std::io::Result<BlobReader> {
        std::future::pending().await
    }
    async fn remove(&self, d: &Digest) -> std::io::Result<()> {
        self.0.remove(d).await
    }
}

/// Closes a connection with a reset (`SO_LINGER` of zero), as a client that
/// gives up does.
fn reset(conn: std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_goes_away_unanswered_is_counted_as_499() {
    use std::io::Write;
    let handle = serve_over(Arc::new(StalledReads(MemoryBlobStore::new()))).await;
    let url = handle.url();
    let client = reqwest::Client::new();
    let bytes = vec![5u8; 100_000];
    let d = Algorithm::Sha256.digest_of(&bytes);
    let r = client
        .post(format!("{url}/v2/gone/app/blobs/uploads/?digest={d}"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // A pull that cannot be answered, then the client resets its connection.
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET /v2/gone/app/blobs/{d} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    conn.write_all(request.as_bytes()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    reset(conn);
    let gone = r#"marina_http_requests_total{route="/v2/{name}/blobs/{digest}",method="GET",status="499"}"#;
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics_text(&client, &url).await;
        if sample(&text, gone).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sample(&text, gone), Some(1.0), "{text}");
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_layer_refuses_unread_are_counted_with_its_status() {
    use std::io::{Read, Write};
    let handle = serve_over(Arc::new(MemoryBlobStore::new())).await;
    let url = handle.url();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let huge = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(600_000)
    );
    for (request, status) in [
        ("GARBAGE\r\n\r\n".to_string(), "400"),
        (
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_string(),
            "400",
        ),
        (huge, "431"),
    ] {
        let addr = addr.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(&addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            // The server may answer and close before taking all of a huge head.
            let _ = conn.write_all(request.as_bytes());
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).into_owned()
        })
        .await
        .unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{status}: {answer}"
        );
    }
    let client = reqwest::Client::new();
    let refused = |status: &str| {
        format!(r#"marina_http_requests_total{{route="-",method="OTHER",status="{status}"}}"#)
    };
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics_text(&client, &url).await;
        if sample(&text, &refused("431")).is_some() && sample(&text, &refused("400")) == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sample(&text, &refused("400")), Some(2.0), "{text}");
    assert_eq!(sample(&text, &refused("431")), Some(1.0), "{text}");
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_free_space_floor_pushes_get_507_and_deletes_and_gc_still_free_space() {
    let s = TestServer::start().await;
    let layer = vec![3u8; 200_000];
    let l = s.push_blob("org/full", &layer).await;
    let m = crate::support::image_manifest(&l, layer.len(), &[(&l, layer.len())], None, None);
    let md = Algorithm::Sha256.digest_of(&m);
    s.push_manifest("org/full", "v1", crate::support::OCI_MANIFEST, &m)
        .await;
    let dir = s.stop().await;
    // The same data, with a floor no disk here can stay above.
    let mut config = marina::config::Config::ephemeral(dir.path());
    config.registry.min_free_mib = 1 << 40;
    let s = TestServer::start_in(dir, config).await;
    let small = vec![1u8; 4096];
    let d = Algorithm::Sha256.digest_of(&small);
    let r = s
        .req(
            Method::POST,
            &format!("/v2/org/full/blobs/uploads/?digest={d}"),
        )
        .await
        .body(small)
        .send()
        .await;
    r.expect(507, Some("UNSUPPORTED"));
    // The client is told it is the reserve, not a full disk, and not where
    // the data directory is.
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("MiB would be left free") && !body.contains("storage is full"),
        "{body}"
    );
    assert!(!body.contains(&*s.data_dir().to_string_lossy()), "{body}");
    // The empty blob adds no bytes, and is stored.
    let empty = Algorithm::Sha256.digest_of(b"");
    s.req(
        Method::POST,
        &format!("/v2/org/full/blobs/uploads/?digest={empty}"),
    )
    .await
    .send()
    .await
    .expect(201, None);
    s.head(&format!("/v2/org/full/blobs/{empty}"))
        .await
        .expect(200, None);
    let r = s
        .req(Method::POST, "/v2/org/full/blobs/uploads/")
        .await
        .send()
        .await;
    let loc = r.header("location").expect("location").to_string();
    s.req(Method::PATCH, &loc)
        .await
        .header("Content-Type", "application/octet-stream")
        .body(vec![2u8; 150_000])
        .send()
        .await
        .expect(507, Some("UNSUPPORTED"));
    // Deleting and collecting need no room beyond the floor's.
    s.delete(&format!("/v2/org/full/manifests/{md}"))
        .await
        .expect(202, None);
    assert!(!crate::support::stored_blobs(&s.data_dir()).is_empty());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_marina"))
        .args(["gc", "--gc-grace-secs", "0", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(crate::support::stored_blobs(&s.data_dir()), Vec::new());
}

/// `marina serve` as a child process, its stderr collected.
struct Served {
    child: Child,
    url: String,
    stderr: std::thread::JoinHandle<String>,
}

fn serve(args: &[&str]) -> Served {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let (mut child, url) = crate::support::spawn_serve(&args, Stdio::piped());
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Served { child, url, stderr }
}

/// The access-log lines of a JSON log.
fn access_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "marina::access")
        .collect()
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill");
}

/// Waits (bounded) for the child to exit.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("marina did not exit within 60 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_100_mib_upload_lets_it_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 100;
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let mut all = Vec::with_capacity(CHUNK * CHUNKS);
    for _ in 0..CHUNKS {
        all.extend_from_slice(&chunk);
    }
    let d = Algorithm::Sha256.digest_of(&all);
    drop(all);
    let body = futures_util::stream::unfold(0usize, move |i| {
        let chunk = chunk.clone();
        async move {
            if i == CHUNKS {
                return None;
            }
            // Slow enough that SIGTERM arrives mid-upload.
            tokio::time::sleep(Duration::from_millis(15)).await;
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)), i + 1))
        }
    });
    let url = format!("{}/v2/drain/app/blobs/uploads/?digest={d}", served.url);
    let upload = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("Content-Length", (CHUNK * CHUNKS).to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&served.child);
    let status = upload.await.unwrap().expect("the upload gets an answer");
    assert_eq!(status, StatusCode::CREATED);
    let exit = wait_exit(&mut served.child);
    let log = served.stderr.join().unwrap();
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("\"route\":\"/v2/{name}/blobs/uploads/\""))
        .unwrap_or_else(|| panic!("no access-log line for the upload:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["fields"]["status"], 201, "{line}");
    assert_eq!(v["fields"]["bytes_in"], (CHUNK * CHUNKS) as u64, "{line}");
    assert_eq!(v["fields"]["repository"], "drain/app", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_request_ids_routes_users_and_statuses_and_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    let client = reqwest::Client::new();
    let secret = "hunter2-not-logged";
    let layer = b"a layer".to_vec();
    let d = Algorithm::Sha256.digest_of(&layer);
    let r = client
        .post(format!(
            "{}/v2/log/test/blobs/uploads/?digest={d}",
            served.url
        ))
        .basic_auth("alice", Some(secret))
        .header("X-Request-Id", "push-1")
        .body(layer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client
        .get(format!("{}/v2/log/test/blobs/{d}", served.url))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sigterm(&served.child);
    wait_exit(&mut served.child);
    let log = served.stderr.join().unwrap();
    assert!(!log.contains(secret), "a credential was logged:\n{log}");
    assert!(!log.to_lowercase().contains("authorization"), "{log}");
    let lines = access_lines(&log);
    let push = lines
        .iter()
        .find(|v| v["fields"]["request_id"] == "push-1")
        .unwrap_or_else(|| panic!("no line for push-1:\n{log}"));
    assert_eq!(push["fields"]["method"], "POST");
    assert_eq!(push["fields"]["route"], "/v2/{name}/blobs/uploads/");
    assert_eq!(push["fields"]["repository"], "log/test");
    assert_eq!(push["fields"]["status"], 201);
    assert_eq!(
        push["fields"]["user"], "anonymous",
        "without access control nobody signs in"
    );
    assert_eq!(push["fields"]["client"], "127.0.0.1");
    let pull = lines
        .iter()
        .find(|v| v["fields"]["route"] == "/v2/{name}/blobs/{digest}")
        .unwrap_or_else(|| panic!("no line for the pull:\n{log}"));
    assert_eq!(pull["fields"]["status"], 200);
    assert_eq!(pull["fields"]["bytes_out"], 7);
    assert!(pull["fields"]["request_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

#[test]
fn a_data_dir_that_is_a_file_stops_the_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_marina"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&file.display().to_string()) && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn a_port_in_use_stops_the_start_before_the_data_dir_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_marina"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "{err}");
    assert!(!data.exists(), "the data directory was created: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_access_control_the_access_log_names_the_user_and_each_refusals_reason() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let password = "s3cret-not-logged";
    let hash = bcrypt::hash(password, 4).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let data = dir.path().join("data");
    // Three failed logins from one address lock it out.
    let config = dir.path().join("marina.toml");
    std::fs::write(
        &config,
        "[auth.throttle]\nmax_failures = 3\nwindow_secs = 60\nlockout_secs = 60\n",
    )
    .unwrap();
    let mut served = serve(&[
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--htpasswd",
        htpasswd.to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    let client = reqwest::Client::new();
    let layer = b"a signed-in layer".to_vec();
    let d = Algorithm::Sha256.digest_of(&layer);
    let push = client
        .post(format!(
            "{}/v2/team/app/blobs/uploads/?digest={d}",
            served.url
        ))
        .basic_auth("alice", Some(password))
        .body(layer)
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), StatusCode::CREATED);
    let anonymous = client
        .get(format!("{}/v2/", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = client
        .get(format!("{}/v2/", served.url))
        .basic_auth("mallory", Some("guess-not-logged"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let metrics = client
        .get(format!("{}/metrics", served.url))
        .basic_auth("alice", Some(password))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Metrics first: the lockout refuses every login from this address.
    // (alice's sign-in reset the count.)
    let mut last = StatusCode::OK;
    for _ in 0..3 {
        last = client
            .get(format!("{}/v2/", served.url))
            .basic_auth("mallory", Some("guess-not-logged"))
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "the third failure locks out"
    );
    sigterm(&served.child);
    wait_exit(&mut served.child);
    let log = served.stderr.join().unwrap();
    assert!(
        !log.contains(password) && !log.contains("guess-not-logged"),
        "{log}"
    );
    let access = access_lines(&log);
    let line = |status: u64, user: &str, refusal: &str| {
        access.iter().any(|v| {
            v["fields"]["status"] == status
                && v["fields"]["user"] == user
                && v["fields"]["refusal"] == refusal
        })
    };
    assert!(line(201, "alice", "-"), "{log}");
    assert!(line(401, "anonymous", "unauthenticated"), "{log}");
    assert!(line(401, "anonymous", "credentials"), "{log}");
    assert!(
        log.contains("failed login") && log.contains("mallory"),
        "the failed login names the user tried:\n{log}"
    );
    let lockout = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("locked out"))
        });
    let lockout = lockout.unwrap_or_else(|| panic!("the lockout is not logged:\n{log}"));
    assert_eq!(lockout["level"], "WARN", "{lockout}");
    assert_eq!(lockout["fields"]["user"], "mallory", "{lockout}");
    assert_eq!(
        sample(
            &metrics,
            r#"marina_auth_refusals_total{reason="credentials"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// A server issuing its own tokens on PostgreSQL metadata (a database several
/// servers can share) without a shared signing key says at start that its
/// tokens verify nowhere else; with a key it says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_signing_without_a_shared_key_is_warned_about_on_postgres() {
    let Some(url) = crate::support::postgres_metadata_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let key = dir.path().join("signing.pem");
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&key, pair.serialize_pem()).unwrap();
    for (with_key, warned) in [(false, true), (true, false)] {
        let config = dir.path().join("marina.toml");
        let token = if with_key {
            format!(
                "[auth.token]\nsigning_key = {:?}\n",
                key.display().to_string()
            )
        } else {
            String::new()
        };
        std::fs::write(&config, token).unwrap();
        let mut served = serve(&[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--metadata-url",
            url.expose(),
            "--htpasswd",
            htpasswd.to_str().unwrap(),
            "--auth-scheme",
            "token",
        ]);
        sigterm(&served.child);
        wait_exit(&mut served.child);
        let log = served.stderr.join().unwrap();
        assert_eq!(
            log.contains("signing_key"),
            warned,
            "with_key={with_key}: {log}"
        );
    }
}

/// A request scoped by `?ns=` is logged under the repository it was served
/// from (the upstream's local name), not the name the client wrote.
#[tokio::test]
async fn the_access_log_names_the_local_repository_of_an_ns_request() {
    let up = crate::support::TestServer::start().await;
    up.push_image("team/app", "v1", "logged").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("marina.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nlog_format = \"json\"\n[[upstreams]]\nns = \"up.example\"\nprefix = \"cache/up/\"\nurl = \"{}\"\n",
            dir.path().join("data").display(),
            up.url
        ),
    )
    .unwrap();
    let mut served = serve(&["--config", config.to_str().unwrap()]);
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v2/team/app/manifests/v1?ns=up.example",
            served.url
        ))
        .header("X-Request-Id", "ns-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    sigterm(&served.child);
    wait_exit(&mut served.child);
    let log = served.stderr.join().unwrap();
    let line = access_lines(&log)
        .into_iter()
        .find(|v| v["fields"]["request_id"] == "ns-1")
        .unwrap_or_else(|| panic!("no line for ns-1:\n{log}"));
    assert_eq!(line["fields"]["repository"], "cache/up/team/app", "{log}");
}

/// The access log is written in batches, yet a line reaches stderr shortly after
/// its request while the server keeps running (not only at exit), in order with
/// the other lines, and a SIGKILL afterwards loses nothing already written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_reach_stderr_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let data = dir.path().join("data");
    let args: Vec<&std::ffi::OsStr> = vec!["--data-dir".as_ref(), data.as_os_str()];
    let (mut child, url) = crate::support::spawn_serve(&args, Stdio::from(log_file));
    let client = reqwest::Client::new();
    for i in 0..3 {
        let r = client
            .get(format!("{url}/v2/live/app/manifests/v{i}"))
            .header("X-Request-Id", format!("live-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    // Bounded wait: the batch goes out within milliseconds.
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains("request_id=live-2 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("INFO marina::access: request request_id=live-"))
        .collect();
    assert_eq!(lines.len(), 3, "three access lines while running:\n{log}");
    for (i, line) in lines.iter().enumerate() {
        assert!(line.contains(&format!("request_id=live-{i} ")), "{line}");
        assert!(
            line.contains(" method=\"GET\" route=\"/v2/{name}/manifests/{reference}\" repository=\"live/app\" status=404 "),
            "{line}"
        );
        assert!(
            line.ends_with(" client=127.0.0.1 user=\"anonymous\" refusal=\"-\""),
            "{line}"
        );
    }
}
