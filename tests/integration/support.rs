//! Test fixtures: an in-process server on an ephemeral port with a temporary data
//! directory, a thin HTTP client, content builders, and transcript normalisation for
//! snapshots (digests, session ids and dates redacted).

use std::path::PathBuf;
use std::sync::Arc;

use marina::config::Config;
use marina::oci::{Algorithm, Digest};
use marina::server::ServerHandle;
use marina::testing::TestClock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A running reference server, stopped and its directory removed when dropped.
pub struct TestServer {
    pub handle: Option<ServerHandle>,
    /// The registry's clock: advanced instead of sleeping.
    pub clock: Arc<TestClock>,
    pub url: String,
    pub dir: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
}

impl TestServer {
    /// Default configuration.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Default configuration, adjusted by `f`.
    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::ephemeral(dir.path());
        config.registry.sparse_manifests = false;
        f(&mut config);
        Self::start_in(dir, config).await
    }

    /// Starts on an existing directory (restart tests).
    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> TestServer {
        let clock = Arc::new(TestClock::new());
        let listen = config.listen.clone();
        let registry = marina::Registry::builder()
            .config(config)
            .clock(clock.clone())
            .build()
            .expect("the stores open");
        let handle = marina::server::serve(&registry, &listen)
            .await
            .expect("server starts");
        let url = handle.url();
        TestServer {
            handle: Some(handle),
            clock,
            url,
            dir: Some(dir),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    /// Stops the server and hands back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(h) = self.handle.take() {
            h.stop().await;
        }
        self.dir.take().expect("directory")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.as_ref().expect("directory").path().to_path_buf()
    }

    /// Sends a request; `path` may be absolute (`/v2/…`) or a full URL.
    pub async fn req(&self, method: Method, path: &str) -> Req<'_> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.url, path)
        };
        Req {
            server: self,
            inner: self.client.request(method.clone(), url),
            method,
            path: path.to_string(),
            sent_headers: vec![],
            body_len: 0,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path).await.send().await
    }

    pub async fn head(&self, path: &str) -> Resp {
        self.req(Method::HEAD, path).await.send().await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.req(Method::DELETE, path).await.send().await
    }

    /// Pushes a blob in one POST; asserts 201.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Algorithm::Sha256.digest_of(bytes);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            )
            .await
            .body(bytes.to_vec())
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.describe());
        d
    }

    /// PUTs `body` to `path` as `media_type`, whatever the answer.
    pub async fn put_manifest(&self, path: &str, media_type: &str, body: Vec<u8>) -> Resp {
        self.req(Method::PUT, path)
            .await
            .header("Content-Type", media_type)
            .body(body)
            .send()
            .await
    }

    /// Pushes a manifest; asserts 201 and returns the response.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Resp {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self.put_manifest(&path, media_type, body.to_vec()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.describe());
        r
    }

    /// Pushes a small image (config + one layer + manifest) and returns the
    /// manifest bytes and digest.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Vec<u8>, Digest) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let layer = format!("layer of {seed}");
        let c = self.push_blob(repo, config.as_bytes()).await;
        let l = self.push_blob(repo, layer.as_bytes()).await;
        let m = image_manifest(&c, config.len(), &[(&l, layer.len())], None, None);
        let d = Algorithm::Sha256.digest_of(&m);
        self.push_manifest(repo, tag, OCI_MANIFEST, &m).await;
        (m, d)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            // Stop in the background; the runtime of the test may already be ending.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(h.stop());
            }
        }
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image manifest over already pushed blobs.
pub fn image_manifest(
    config: &Digest,
    config_len: usize,
    layers: &[(&Digest, usize)],
    artifact_type: Option<&str>,
    subject: Option<(&Digest, usize)>,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.to_string(), "size": config_len},
        "layers": layers.iter().map(|(d, n)| json!({"mediaType": OCI_LAYER, "digest": d.to_string(), "size": n})).collect::<Vec<_>>(),
    });
    if let Some(a) = artifact_type {
        m["artifactType"] = json!(a);
    }
    if let Some((d, n)) = subject {
        m["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": n});
    }
    serde_json::to_vec(&m).unwrap()
}

/// A request being built, remembering what it sends for the transcript.
pub struct Req<'a> {
    server: &'a TestServer,
    inner: reqwest::RequestBuilder,
    method: Method,
    path: String,
    sent_headers: Vec<(String, String)>,
    body_len: usize,
}

impl<'a> Req<'a> {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.inner = self.inner.header(k, v);
        self.sent_headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn body(mut self, b: Vec<u8>) -> Self {
        self.body_len = b.len();
        self.inner = self.inner.body(b);
        self
    }

    /// A body sent with chunked transfer encoding (no Content-Length).
    pub fn stream_body(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.body_len = chunks.iter().map(Vec::len).sum();
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        self.inner = self.inner.body(reqwest::Body::wrap_stream(stream));
        self
    }

    pub async fn send(self) -> Resp {
        let _ = self.server;
        let resp = self.inner.send().await.expect("request reaches the server");
        let status = resp.status();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or("<binary>").to_string(),
                )
            })
            .collect();
        let body = resp.bytes().await.expect("body").to_vec();
        Resp {
            request: format!("{} {}", self.method, self.path),
            sent_headers: self.sent_headers,
            sent_len: self.body_len,
            status,
            headers,
            body,
        }
    }
}

/// A response with everything needed to explain a failure.
#[derive(Debug, Clone)]
pub struct Resp {
    pub request: String,
    pub sent_headers: Vec<(String, String)>,
    pub sent_len: usize,
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.describe()))
    }

    /// The OCI error code of a 4xx body, asserting the envelope's shape.
    pub fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.describe()
        );
        let v = self.json();
        let errors = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors array: {}", self.describe()));
        assert!(!errors.is_empty(), "{}", self.describe());
        let code = errors[0]["code"]
            .as_str()
            .expect("code is a string")
            .to_string();
        assert!(
            marina::oci::ErrorCode::parse(&code).is_some(),
            "code {code} is not one of the spec's"
        );
        assert!(errors[0]["message"].is_string(), "{}", self.describe());
        code
    }

    /// Asserts status and, for errors, the OCI code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.describe());
        if let Some(c) = code {
            assert_eq!(self.error_code(), c, "{}", self.describe());
        }
        self
    }

    /// Request and response, for failure messages.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(2000).collect();
        format!(
            "\n> {}\n> {:?} ({} bytes)\n< {}\n< {:?}\n< {}\n",
            self.request, self.sent_headers, self.sent_len, self.status, self.headers, body
        )
    }

    /// A normalised transcript for snapshots: volatile headers dropped, digests,
    /// session ids and dates redacted, JSON bodies pretty-printed.
    pub fn transcript(&self) -> String {
        let mut out = format!("> {}\n", redact(&self.request));
        for (k, v) in &self.sent_headers {
            out.push_str(&format!("> {}: {}\n", k.to_lowercase(), redact(v)));
        }
        if self.sent_len > 0 {
            out.push_str(&format!("> [{} bytes]\n", self.sent_len));
        }
        out.push_str(&format!("< {}\n", self.status));
        let mut headers: Vec<_> = self.headers.iter().filter(|(k, _)| k != "date").collect();
        headers.sort();
        for (k, v) in headers {
            // Request ids are random per request.
            let v = if k == "x-request-id" {
                "<request-id>".to_string()
            } else {
                redact(v)
            };
            out.push_str(&format!("< {k}: {v}\n"));
        }
        if !self.body.is_empty() {
            match serde_json::from_slice::<Value>(&self.body) {
                Ok(v) => out.push_str(&redact(&serde_json::to_string_pretty(&v).unwrap())),
                Err(_) => out.push_str(&format!("[{} bytes]", self.body.len())),
            }
            out.push('\n');
        }
        out
    }
}

/// Replaces digests and upload session ids with stable placeholders.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest
            .strip_prefix("sha256:")
            .filter(|r| r.len() >= 64 && r[..64].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            out.push_str("sha256:<digest>");
            rest = &r[64..];
        } else if let Some(r) = rest
            .strip_prefix("sha512:")
            .filter(|r| r.len() >= 128 && r[..128].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            out.push_str("sha512:<digest>");
            rest = &r[128..];
        } else if let Some(n) = session_id_at(out.as_bytes().last().copied(), rest) {
            out.push_str("<session>");
            rest = &rest[n..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The length of the upload session id `rest` starts with: a standalone
/// lowercase hex token of 64 characters (signed) or 32 (an earlier version's),
/// the previous character not part of it.
fn session_id_at(prev: Option<u8>, rest: &str) -> Option<usize> {
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    let b = rest.as_bytes();
    if prev.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    [64, 32].into_iter().find(|&n| {
        b.len() >= n
            && b[..n].iter().all(hex)
            && b.get(n).is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// Asserts a transcript snapshot stored in the top-level `snapshots/` directory.
#[macro_export]
macro_rules! assert_transcript {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

/// Starts the `marina` binary as `marina serve --listen 127.0.0.1:0 ARGS` with its
/// stderr going to `stderr`, and returns it with the URL of its banner's first line.
pub fn spawn_serve(
    args: &[&std::ffi::OsStr],
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_marina"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("marina starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    let url = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "unexpected first line {line:?}"
    );
    (child, url)
}

/// Says that a test's tool is missing: under CI (`CI` set) that fails the test, since
/// `.ci/run` installs every tool; elsewhere it prints why the test returns early.
pub fn missing_tool(what: &str, install: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing under CI ({install}); .ci/run must install it"
    );
    eprintln!("skipped: {what} is not installed ({install}); .ci/run installs it");
}

/// Runs the `marina` binary; returns (exit code, stdout, stderr).
pub async fn run_marina(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let shown = format!("marina {}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_marina"))
            .args(&args)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Debian's docker-registry (distribution 2.8) on a loopback port with its own
/// temporary root, killed when dropped: the one fixture of every test that
/// compares with it. It cannot take a listener from us, so a port is picked by
/// binding `:0`, and a start that loses the port to another process is retried
/// on a new one.
pub struct DockerRegistry {
    child: std::process::Child,
    pub url: String,
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts one; `None` (after [`missing_tool`]) when the binary is absent.
    pub async fn start() -> Option<DockerRegistry> {
        use std::process::{Command, Stdio};
        let installed = Command::new("docker-registry")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !installed {
            missing_tool("`docker-registry`", "apt-get install docker-registry");
            return None;
        }
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    dir.path().join("root").display()
                ),
            )
            .unwrap();
            let log = dir.path().join("registry.log");
            let out = std::fs::File::create(&log).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .env(
                    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                    dir.path().join("root"),
                )
                .stdout(Stdio::from(out.try_clone().unwrap()))
                .stderr(Stdio::from(out))
                .spawn()
                .expect("docker-registry starts");
            let mut reg = DockerRegistry {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
                _dir: dir,
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            loop {
                if let Ok(r) = reqwest::get(format!("{}/v2/", reg.url)).await {
                    if r.status().is_success() {
                        return Some(reg);
                    }
                }
                let log = std::fs::read_to_string(&reg.log).unwrap_or_default();
                if reg.child.try_wait().unwrap().is_some() && log.contains("address already in use")
                {
                    break; // lost the port: try another
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "docker-registry did not start:\n{log}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        panic!("docker-registry lost its port three times");
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL server of the PostgreSQL tests (`MARINA_TEST_POSTGRES_URL`);
/// `None` (after [`missing_tool`], which fails under CI) when unset.
pub fn postgres_url() -> Option<String> {
    match std::env::var("MARINA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            missing_tool(
                "a PostgreSQL server (MARINA_TEST_POSTGRES_URL)",
                "apt-get install postgresql; .ci/run starts a private cluster",
            );
            None
        }
    }
}

/// A schema name no other test uses, for [`marina::store::PgMetaStore::open_in_schema`].
pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// A `metadata_url` for a registry of its own on the test PostgreSQL server: a
/// fresh schema (created here), selected through libpq's `options`. `None`
/// when no server is configured (see [`postgres_url`]).
pub fn postgres_metadata_url() -> Option<marina::config::SecretUrl> {
    let base = postgres_url()?;
    let schema = fresh_schema();
    drop(marina::store::PgMetaStore::open_in_schema(&base, &schema).expect("PostgreSQL answers"));
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(marina::config::SecretUrl::new(format!(
        "{base}{sep}options=-c%20search_path%3D{schema}"
    )))
}

/// The bucket of the S3 tests (`MARINA_TEST_S3_URL`, credentials in the AWS
/// variables) under a fresh prefix; `None` (after [`missing_tool`], which fails
/// under CI) when unset.
pub fn s3_url() -> Option<String> {
    match std::env::var("MARINA_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => {
            let (base, query) = url.split_once('?').unwrap_or((&url, ""));
            Some(format!(
                "{}/{}?{query}",
                base.trim_end_matches('/'),
                fresh_schema()
            ))
        }
        _ => {
            missing_tool(
                "an S3 bucket (MARINA_TEST_S3_URL)",
                "cargo install garage --locked; .ci/run starts a one-node Garage",
            );
            None
        }
    }
}

/// The official suite binary `variable` names, or `None` with a message. The
/// suites are opt-in everywhere, CI included: CI cannot build them (no Go
/// module proxy), so an unset variable is not a missing tool.
pub fn suite_binary(variable: &str, purpose: &str) -> Option<std::ffi::OsString> {
    let bin = std::env::var_os(variable).filter(|b| !b.is_empty());
    if bin.is_none() {
        eprintln!("not run: set {variable} to run the official suite {purpose}");
    }
    bin
}

/// Runs an official suite binary against `url`, strict; the current suite
/// (`current`) with the dev profile and sparse manifests on. Whoever calls it
/// has checked that the binary is named (the suites are opt-in: CI cannot
/// build them).
pub async fn official_suite(
    bin: std::ffi::OsString,
    url: &str,
    current: bool,
) -> marina::conformance::RunReport {
    let out = tempfile::tempdir().unwrap();
    let mut o = marina::conformance::Options::new(PathBuf::from(bin));
    o.registry = Some(marina::conformance::Endpoint::parse(url).unwrap());
    if current {
        o.profile = marina::conformance::Profile::Dev;
        o.switches = vec![marina::conformance::Switch::parse("data.sparse", true).unwrap()];
    }
    o.out = Some(out.path().to_path_buf());
    o.progress = false;
    o.strict = true;
    marina::conformance::run(o).await
}

/// Every blob stored under a data directory, with its bytes: the blob files
/// and the small blobs kept in `meta.db`, read as an operator's tools would,
/// beside or after the server.
pub fn stored_blobs(data: &std::path::Path) -> Vec<(Digest, Vec<u8>)> {
    let mut found = Vec::new();
    if let Ok(algorithms) = std::fs::read_dir(data.join("blobs")) {
        for alg_dir in algorithms {
            let alg_dir = alg_dir.unwrap();
            let alg: Algorithm = alg_dir.file_name().to_string_lossy().parse().unwrap();
            for prefix in std::fs::read_dir(alg_dir.path()).unwrap() {
                for f in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
                    let f = f.unwrap();
                    let name = f.file_name().to_string_lossy().into_owned();
                    let digest = format!("{}:{name}", alg.as_str()).parse().unwrap();
                    found.push((digest, std::fs::read(f.path()).unwrap()));
                }
            }
        }
    }
    let small = data.join("meta.db");
    if small.exists() {
        let db = rusqlite::Connection::open_with_flags(
            &small,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut rows = db.prepare("SELECT digest, bytes FROM small_blobs").unwrap();
        let rows = rows
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .unwrap();
        for row in rows {
            let (digest, bytes) = row.unwrap();
            found.push((digest.parse().unwrap(), bytes));
        }
    }
    found
}

/// The stored bytes of one blob (a file or a small blob), if stored.
pub fn stored_blob(data: &std::path::Path, digest: &Digest) -> Option<Vec<u8>> {
    stored_blobs(data)
        .into_iter()
        .find(|(d, _)| d == digest)
        .map(|(_, bytes)| bytes)
}
