//! Garbage collection by reachability: what a deleted image gives back, what a
//! push in progress keeps, `marina gc`, and a collector racing writers that reuse
//! layers the way real clients do (HEAD, skip the upload, PUT the manifest).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use marina::oci::{Algorithm, Digest};
use marina::testing::TestRegistry;
use marina::Registry;
use serde_json::json;

use crate::support::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST};

/// A registry on disk whose collector runs only when a test asks.
async fn registry(grace: Duration) -> (TestRegistry, std::path::PathBuf) {
    registry_on(grace, None).await
}

/// The same with its metadata at `metadata_url` (PostgreSQL) when given.
pub(crate) async fn registry_on(
    grace: Duration,
    metadata_url: Option<&marina::config::SecretUrl>,
) -> (TestRegistry, std::path::PathBuf) {
    registry_with(grace, metadata_url, None).await
}

/// The same with blobs at `blob_url` (S3) when given.
pub(crate) async fn registry_with(
    grace: Duration,
    metadata_url: Option<&marina::config::SecretUrl>,
    blob_url: Option<&str>,
) -> (TestRegistry, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut builder = Registry::builder()
        .data_dir(dir.path())
        .gc_interval(None)
        .gc_grace(grace);
    if let Some(url) = metadata_url {
        builder = builder.metadata_url(url.expose());
    }
    if let Some(url) = blob_url {
        builder = builder.blob_url(url);
    }
    (TestRegistry::start_with(builder, Some(dir)).await, path)
}

/// Bytes of every blob stored under `data` (files and small blobs).
fn blob_bytes(data: &Path) -> u64 {
    crate::support::stored_blobs(data)
        .iter()
        .map(|(_, bytes)| bytes.len() as u64)
        .sum()
}

pub(crate) struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    pub(crate) fn new(reg: &TestRegistry) -> Http {
        Http {
            base: reg.url().to_string(),
            client: reqwest::Client::new(),
        }
    }

    pub(crate) async fn status(&self, method: reqwest::Method, path: &str) -> u16 {
        self.client
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Pushes a blob in one POST; the status.
    pub(crate) async fn push_blob(&self, repo: &str, bytes: &[u8]) -> (Digest, u16) {
        let d = Algorithm::Sha256.digest_of(bytes);
        let r = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/?digest={d}", self.base))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        (d, r.status().as_u16())
    }

    pub(crate) async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> (u16, String) {
        let r = self
            .client
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// The length of a manifest held (a descriptor of it must give it).
    pub(crate) async fn manifest_len(&self, repo: &str, d: &Digest) -> usize {
        let r = self
            .client
            .get(format!("{}/v2/{repo}/manifests/{d}", self.base))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET manifest {d}");
        r.bytes().await.unwrap().len()
    }

    pub(crate) async fn blob(&self, repo: &str, d: &Digest) -> Option<Vec<u8>> {
        let r = self
            .client
            .get(format!("{}/v2/{repo}/blobs/{d}", self.base))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => Some(r.bytes().await.unwrap().to_vec()),
            404 => {
                // NAME_UNKNOWN once the emptied repository itself is forgotten.
                let body: serde_json::Value = r.json().await.unwrap();
                let code = body["errors"][0]["code"].as_str().unwrap_or("").to_string();
                assert!(code == "BLOB_UNKNOWN" || code == "NAME_UNKNOWN", "{body}");
                None
            }
            s => panic!("GET blob {d}: unexpected {s}"),
        }
    }
}

pub(crate) fn manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0.to_string(), "size": config.1},
        "layers": layers.iter().map(|(d, n)| json!({"mediaType": OCI_LAYER, "digest": d.to_string(), "size": n})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

#[tokio::test]
async fn deleting_an_image_gives_back_exactly_its_unique_blobs() {
    let (reg, data) = registry(Duration::ZERO).await;
    let http = Http::new(&reg);
    let shared = vec![7u8; 40_000];
    let (unique_a, unique_b) = (vec![1u8; 100_000], vec![2u8; 30_000]);
    let (config_a, config_b) = (br#"{"a":1}"#.to_vec(), br#"{"b":2}"#.to_vec());
    let mut digests = BTreeMap::new();
    for (name, bytes, repo) in [
        ("shared-a", &shared, "team/a"),
        ("shared-b", &shared, "team/b"),
        ("unique-a", &unique_a, "team/a"),
        ("unique-b", &unique_b, "team/b"),
        ("config-a", &config_a, "team/a"),
        ("config-b", &config_b, "team/b"),
    ] {
        let (d, s) = http.push_blob(repo, bytes).await;
        assert_eq!(s, 201);
        digests.insert(name, d);
    }
    let ma = manifest(
        (&digests["config-a"], config_a.len()),
        &[
            (&digests["shared-a"], shared.len()),
            (&digests["unique-a"], unique_a.len()),
        ],
    );
    let mb = manifest(
        (&digests["config-b"], config_b.len()),
        &[
            (&digests["shared-b"], shared.len()),
            (&digests["unique-b"], unique_b.len()),
        ],
    );
    assert_eq!(
        http.put_manifest("team/a", "v1", OCI_MANIFEST, &ma).await.0,
        201
    );
    assert_eq!(
        http.put_manifest("team/b", "v1", OCI_MANIFEST, &mb).await.0,
        201
    );

    // Nothing is garbage while both images live.
    let before = blob_bytes(&data);
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!((report.blobs, report.bytes), (0, 0), "{report:?}");
    assert_eq!(blob_bytes(&data), before);

    // Deleting a tag leaves the manifest, and so its blobs.
    assert_eq!(
        http.status(reqwest::Method::DELETE, "/v2/team/a/manifests/v1")
            .await,
        202
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(report.blobs, 0, "{report:?}");
    assert!(http.blob("team/a", &digests["unique-a"]).await.is_some());

    // Deleting the manifest by digest releases what only it referenced.
    let da = Algorithm::Sha256.digest_of(&ma);
    assert_eq!(
        http.status(
            reqwest::Method::DELETE,
            &format!("/v2/team/a/manifests/{da}")
        )
        .await,
        202
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    let unique = (unique_a.len() + config_a.len()) as u64;
    assert_eq!((report.blobs, report.bytes), (2, unique), "{report:?}");
    assert_eq!(
        blob_bytes(&data),
        before - unique,
        "disk usage drops by the unique blobs"
    );
    for name in ["unique-a", "config-a", "shared-a"] {
        assert_eq!(
            http.blob("team/a", &digests[name]).await,
            None,
            "{name} in team/a"
        );
    }
    assert_eq!(http.blob("team/b", &digests["unique-a"]).await, None);
    assert_eq!(
        http.blob("team/b", &digests["shared-b"]).await.as_deref(),
        Some(&shared[..])
    );
    assert_eq!(
        http.blob("team/b", &digests["unique-b"]).await.as_deref(),
        Some(&unique_b[..])
    );
    // The emptied repository is forgotten.
    assert_eq!(report.repositories, 1, "{report:?}");
    assert_eq!(
        http.status(reqwest::Method::GET, "/v2/team/a/tags/list")
            .await,
        404
    );
}

#[tokio::test]
async fn bytes_a_crash_left_without_a_record_are_collected() {
    let (reg, data) = registry(Duration::ZERO).await;
    let http = Http::new(&reg);
    // A blob file published just before a kill, its record never committed.
    let lost = vec![4u8; 100_000];
    let lost_digest = Algorithm::Sha256.digest_of(&lost);
    let hex = lost_digest.hex();
    let path = data.join("blobs/sha256").join(&hex[..2]).join(hex);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &lost).unwrap();
    // A blob pushed and kept by a manifest.
    let kept = vec![5u8; 100_000];
    let (kept_digest, status) = http.push_blob("team/app", &kept).await;
    assert_eq!(status, 201);
    let m = manifest((&kept_digest, kept.len()), &[]);
    assert_eq!(
        http.put_manifest("team/app", "v1", OCI_MANIFEST, &m)
            .await
            .0,
        201
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(
        report.blobs, 0,
        "reachability alone does not see it: {report:?}"
    );
    let preview = reg.registry().unrecorded_bytes_preview().await.unwrap();
    assert_eq!(preview, (1, 100_000));
    assert!(path.exists(), "a preview removes nothing");
    let collected = reg.registry().collect_unrecorded_bytes().await.unwrap();
    assert_eq!(collected, (1, 100_000));
    assert!(!path.exists(), "the unrecorded file is gone");
    assert_eq!(http.blob("team/app", &kept_digest).await, Some(kept));
}

#[tokio::test]
async fn an_index_keeps_its_children_and_their_blobs() {
    let (reg, _data) = registry(Duration::ZERO).await;
    let http = Http::new(&reg);
    let (c, _) = http.push_blob("multi", b"{}").await;
    let (l, _) = http.push_blob("multi", b"amd64 layer").await;
    let m = manifest((&c, 2), &[(&l, 11)]);
    let dm = Algorithm::Sha256.digest_of(&m);
    assert_eq!(
        http.put_manifest("multi", &dm.to_string(), OCI_MANIFEST, &m)
            .await
            .0,
        201
    );
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": dm.to_string(), "size": m.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    assert_eq!(
        http.put_manifest("multi", "v1", OCI_INDEX, &index).await.0,
        201
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(report.blobs, 0, "{report:?}");
    assert_eq!(
        http.blob("multi", &l).await.as_deref(),
        Some(&b"amd64 layer"[..])
    );
    assert_eq!(
        http.status(reqwest::Method::GET, &format!("/v2/multi/manifests/{dm}"))
            .await,
        200
    );
}

#[tokio::test]
async fn blobs_of_a_push_in_progress_live_through_the_grace_period() {
    let (reg, _data) = registry(Duration::from_secs(3600)).await;
    let http = Http::new(&reg);
    let (d, s) = http
        .push_blob("wip", b"a layer whose manifest comes later")
        .await;
    assert_eq!(s, 201);
    let preview = reg.registry().garbage_preview().await.unwrap();
    assert_eq!((preview.links, preview.blobs), (0, 0), "{preview:?}");
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!((report.links, report.blobs), (0, 0), "{report:?}");
    assert!(http.blob("wip", &d).await.is_some());
}

#[tokio::test]
async fn an_unreferenced_upload_past_its_grace_is_collected_everywhere() {
    let (reg, _data) = registry(Duration::ZERO).await;
    let http = Http::new(&reg);
    let (d, _) = http.push_blob("one", b"orphan").await;
    let mount = reqwest::Client::new()
        .post(format!(
            "{}/v2/two/blobs/uploads/?mount={d}&from=one",
            reg.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(mount.status().as_u16(), 201);
    let preview = reg.registry().garbage_preview().await.unwrap();
    assert_eq!(
        (preview.links, preview.blobs, preview.bytes),
        (2, 1, 6),
        "{preview:?}"
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(
        (report.links, report.blobs, report.bytes),
        (2, 1, 6),
        "{report:?}"
    );
    for repo in ["one", "two"] {
        assert_eq!(http.blob(repo, &d).await, None, "{repo}");
    }
}

/// `marina gc` on the data directory of a running server: the dry run removes
/// nothing, the real run removes what the server no longer references.
#[tokio::test]
async fn marina_gc_collects_beside_a_running_server() {
    let (reg, data) = registry(Duration::ZERO).await;
    let http = Http::new(&reg);
    let (keep, _) = http.push_blob("app", b"kept").await;
    let (drop_me, _) = http.push_blob("app", b"dropped").await;
    let m = manifest((&keep, 4), &[]);
    assert_eq!(
        http.put_manifest("app", "v1", OCI_MANIFEST, &m).await.0,
        201
    );
    // Bytes a kill left without a record.
    let lost = vec![6u8; 100_000];
    let hex = Algorithm::Sha256.digest_of(&lost).hex().to_string();
    let lost_path = data.join("blobs/sha256").join(&hex[..2]).join(&hex);
    std::fs::create_dir_all(lost_path.parent().unwrap()).unwrap();
    std::fs::write(&lost_path, &lost).unwrap();
    let bin = env!("CARGO_BIN_EXE_marina");
    let dir = data.clone();
    let run = move |dry: bool| {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["gc", "--data-dir"])
            .arg(&dir)
            .args(["--gc-grace-secs", "0"]);
        if dry {
            cmd.arg("--dry-run");
        }
        cmd.output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || (run(true), run(false)))
        .await
        .unwrap();
    let (dry, real) = out;
    let dry_text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{dry:?}");
    assert!(dry_text.contains("then 1 blobs (7 B)"), "{dry_text}");
    assert!(
        dry_text.contains("would remove 1 stored blobs (") && dry_text.contains("no record names"),
        "{dry_text}"
    );
    let real_text = String::from_utf8_lossy(&real.stdout);
    assert!(real.status.success(), "{real:?}");
    // The unreferenced blob and the unrecorded bytes.
    assert!(real_text.contains("2 blobs ("), "{real_text}");
    assert!(!lost_path.exists(), "the unrecorded bytes are gone");
    assert_eq!(http.blob("app", &drop_me).await, None);
    assert_eq!(http.blob("app", &keep).await.as_deref(), Some(&b"kept"[..]));

    let out = std::process::Command::new(bin)
        .args(["gc", "--data-dir", "/nonexistent/marina-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no registry"));
}

/// `marina gc` runs beside a server, perhaps of the release before: it
/// leaves a database of an earlier schema as it is (converting it would break
/// that server) and says how to convert it; a database of a later release is
/// refused too.
#[tokio::test]
async fn marina_gc_converts_no_database_and_refuses_a_newer_one() {
    let data = tempfile::tempdir().unwrap();
    drop(
        marina::Registry::builder()
            .data_dir(data.path())
            .build()
            .unwrap(),
    );
    let db = data.path().join("meta.db");
    let version = |set: Option<i64>| {
        let c = rusqlite::Connection::open(&db).unwrap();
        if let Some(v) = set {
            c.pragma_update(None, "user_version", v).unwrap();
        }
        c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let current = version(None);
    let gc = |dry: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_marina"));
        cmd.args(["gc", "--data-dir"]).arg(data.path());
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    version(Some(current - 1));
    for dry in [true, false] {
        let (ok, err) = gc(dry);
        assert!(!ok, "gc ran on an older schema (dry run: {dry})");
        assert!(
            err.contains(&format!(
                "schema version {}, and this build needs {current}",
                current - 1
            )) && err.contains("start `marina serve`"),
            "{err}"
        );
        assert_eq!(version(None), current - 1, "gc converted the database");
    }
    version(Some(current + 1));
    let (ok, err) = gc(true);
    assert!(!ok && err.contains("newer than this build's"), "{err}");
    version(Some(current));
    assert!(gc(true).0, "gc refused a database of its own schema");
}

/// Writers reuse a pool of layers as real clients do (HEAD; upload only when
/// missing; PUT the manifest; on MANIFEST_BLOB_UNKNOWN upload again), a deleter
/// deletes acknowledged manifests by digest as they come, and the collector runs
/// continuously with a one-second grace, for three seconds. No request may fail
/// with a 5xx other than the documented 503 retry, and every manifest
/// acknowledged and not deleted must have every blob, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_racing_writers_never_leaves_a_manifest_without_its_blobs() {
    collector_races_writers(None, None, 1).await;
}

/// The race above on the metadata store at `metadata_url` (SQLite when
/// `None`) and the blobs at `blob_url`, over `replicas` servers sharing them:
/// each collects, writer `w` pushes through server `w % replicas`, the deleter
/// through the last one.
pub(crate) async fn collector_races_writers(
    metadata_url: Option<&marina::config::SecretUrl>,
    blob_url: Option<&str>,
    replicas: usize,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    type Pushed = (String, Digest, Vec<u8>, Vec<Vec<u8>>);
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let (reg, _data) = registry_with(Duration::from_secs(1), metadata_url, blob_url).await;
        servers.push(Arc::new(reg));
    }
    let reg = servers[0].clone();
    let pool: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("pooled layer {i}").into_bytes())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let pushed: Arc<std::sync::Mutex<Vec<Pushed>>> = Arc::default();
    let deleted: Arc<std::sync::Mutex<Vec<Pushed>>> = Arc::default();
    let collectors: Vec<_> = servers
        .iter()
        .map(|reg| {
            let (reg, stop) = (reg.clone(), stop.clone());
            tokio::spawn(async move {
                let mut runs = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    reg.registry().collect_garbage().await.unwrap();
                    runs += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                runs
            })
        })
        .collect();
    let deleter = {
        let reg = servers[replicas - 1].clone();
        let (stop, pushed, deleted) = (stop.clone(), pushed.clone(), deleted.clone());
        tokio::spawn(async move {
            let http = Http::new(&reg);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let victim = {
                    let mut p = pushed.lock().unwrap();
                    n += 1;
                    let len = p.len();
                    (n.is_multiple_of(3) && len > 0).then(|| p.remove(n % len))
                };
                if let Some(v) = victim {
                    let s = http
                        .status(
                            reqwest::Method::DELETE,
                            &format!("/v2/{}/manifests/{}", v.0, v.1),
                        )
                        .await;
                    assert_eq!(s, 202, "delete {}@{}", v.0, v.1);
                    deleted.lock().unwrap().push(v);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut writers = Vec::new();
    for w in 0..4usize {
        let reg = servers[w % replicas].clone();
        let (pool, pushed) = (pool.clone(), pushed.clone());
        writers.push(tokio::spawn(async move {
            let http = Http::new(&reg);
            let repo = format!("race/w{}", w % 2);
            let mut i = 0usize;
            while tokio::time::Instant::now() < deadline {
                i += 1;
                let layers: Vec<Vec<u8>> = (0..2)
                    .map(|k| pool[(w + i + k * 3) % pool.len()].clone())
                    .collect();
                let config = format!("{{\"w\":{w},\"i\":{i}}}").into_bytes();
                let cd = Algorithm::Sha256.digest_of(&config);
                let ld: Vec<Digest> = layers
                    .iter()
                    .map(|l| Algorithm::Sha256.digest_of(l))
                    .collect();
                let m = manifest(
                    (&cd, config.len()),
                    &[(&ld[0], layers[0].len()), (&ld[1], layers[1].len())],
                );
                let mut done = false;
                for _attempt in 0..20 {
                    for bytes in layers.iter().chain([&config]) {
                        let d = Algorithm::Sha256.digest_of(bytes);
                        let head = http
                            .status(reqwest::Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
                            .await;
                        if head != 200 {
                            let (_, s) = http.push_blob(&repo, bytes).await;
                            assert!(s == 201 || s == 503, "blob push answered {s}");
                        }
                    }
                    let (s, body) = http
                        .put_manifest(&repo, &format!("w{w}-{i}"), OCI_MANIFEST, &m)
                        .await;
                    match s {
                        201 => {
                            done = true;
                            break;
                        }
                        400 if body.contains("MANIFEST_BLOB_UNKNOWN") => continue,
                        _ => panic!("manifest PUT answered {s}: {body}"),
                    }
                }
                assert!(
                    done,
                    "writer {w} could not push manifest {i} in 20 attempts"
                );
                pushed.lock().unwrap().push((
                    repo.clone(),
                    Algorithm::Sha256.digest_of(&m),
                    config,
                    layers,
                ));
            }
            i
        }));
    }
    let mut manifests = 0;
    for w in writers {
        manifests += w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    deleter.await.unwrap();
    let mut runs = 0;
    for c in collectors {
        let n = c.await.unwrap();
        assert!(n > 10, "a collector ran only {n} times");
        runs += n;
    }
    assert!(
        runs > 10 && manifests > 20,
        "too little happened: {runs} collections, {manifests} manifests"
    );
    assert!(
        !deleted.lock().unwrap().is_empty(),
        "the deleter deleted nothing"
    );
    // Past the grace, a last collection takes what the deletions released.
    reg.clock().advance(Duration::from_millis(1100));
    reg.registry().collect_garbage().await.unwrap();
    let http = Http::new(&reg);
    let kept = pushed.lock().unwrap().clone();
    for (repo, digest, config, layers) in kept {
        assert_eq!(
            http.status(
                reqwest::Method::GET,
                &format!("/v2/{repo}/manifests/{digest}")
            )
            .await,
            200
        );
        let cd = Algorithm::Sha256.digest_of(&config);
        assert_eq!(
            http.blob(&repo, &cd).await.as_deref(),
            Some(&config[..]),
            "config of {repo}@{digest}"
        );
        for l in layers {
            let d = Algorithm::Sha256.digest_of(&l);
            assert_eq!(
                http.blob(&repo, &d).await.as_deref(),
                Some(&l[..]),
                "layer {d} of {repo}@{digest}"
            );
        }
    }
    // What only deleted manifests referenced is gone.
    let gone = deleted.lock().unwrap().clone();
    for (repo, _, config, _) in &gone {
        let cd = Algorithm::Sha256.digest_of(config);
        assert_eq!(
            http.blob(repo, &cd).await,
            None,
            "config {cd} of a deleted manifest"
        );
    }
}

/// A blob DELETE unlinks it from one repository; while a manifest still
/// references the blob, its bytes stay (that manifest's pull would break otherwise).
#[tokio::test]
async fn a_blob_a_manifest_references_keeps_its_bytes_after_a_blob_delete() {
    let (reg, data) = registry(Duration::ZERO).await;
    let http = Http::new(&reg);
    let (c, _) = http.push_blob("app", b"{}").await;
    let (l, _) = http.push_blob("app", b"still needed").await;
    let m = manifest((&c, 2), &[(&l, 12)]);
    assert_eq!(
        http.put_manifest("app", "v1", OCI_MANIFEST, &m).await.0,
        201
    );
    assert_eq!(
        http.status(reqwest::Method::DELETE, &format!("/v2/app/blobs/{l}"))
            .await,
        202
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(report.blobs, 0, "{report:?}");
    assert_eq!(
        crate::support::stored_blob(&data, &l).as_deref(),
        Some(&b"still needed"[..])
    );
    // Once the manifest goes, so do the bytes.
    let dm = Algorithm::Sha256.digest_of(&m);
    assert_eq!(
        http.status(reqwest::Method::DELETE, &format!("/v2/app/manifests/{dm}"))
            .await,
        202
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(report.blobs, 2, "{report:?}");
    assert_eq!(crate::support::stored_blob(&data, &l), None);
}

/// A registry with one retention rule, collecting with no grace.
async fn with_retention(rule: marina::config::RetentionRule) -> TestRegistry {
    let dir = tempfile::tempdir().unwrap();
    let builder = Registry::builder()
        .data_dir(dir.path())
        .gc_interval(None)
        .gc_grace(Duration::ZERO)
        .retention(rule);
    TestRegistry::start_with(builder, Some(dir)).await
}

fn rule(repositories: &str) -> marina::config::RetentionRule {
    marina::config::RetentionRule {
        repositories: repositories.into(),
        keep_tags: None,
        tag_max_age_secs: None,
        untagged_max_age_secs: None,
        protect_tags: vec![],
    }
}

/// Pushes a one-layer image whose layer is unique to it; returns (manifest, layer).
async fn image(reg: &TestRegistry, http: &Http, repo: &str, tag: &str) -> (Digest, Digest) {
    let (c, _) = http
        .push_blob(repo, format!("{{\"tag\":\"{tag}\"}}").as_bytes())
        .await;
    let layer = format!("layer of {repo}:{tag}");
    let (l, _) = http.push_blob(repo, layer.as_bytes()).await;
    let m = manifest((&c, tag.len() + 10), &[(&l, layer.len())]);
    assert_eq!(http.put_manifest(repo, tag, OCI_MANIFEST, &m).await.0, 201);
    // Distinct push times (milliseconds), so "most recent" is well defined.
    reg.clock().advance(Duration::from_millis(3));
    (Algorithm::Sha256.digest_of(&m), l)
}

#[tokio::test]
async fn retention_keeps_the_newest_tags_and_the_protected_ones() {
    let reg = with_retention(marina::config::RetentionRule {
        keep_tags: Some(2),
        untagged_max_age_secs: Some(0),
        protect_tags: vec!["latest".into()],
        ..rule("keep/*")
    })
    .await;
    let http = Http::new(&reg);
    let mut pushed = Vec::new();
    for tag in ["latest", "v1", "v2", "v3", "v4"] {
        pushed.push(image(&reg, &http, "keep/app", tag).await);
    }
    // Another repository, outside the rule: nothing of it goes.
    let other = image(&reg, &http, "elsewhere/app", "v1").await;
    let plan = reg.registry().retention_plan().await.unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");
    let planned: Vec<&str> = plan[0].tags.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(planned, ["v2", "v1"]);

    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!((report.tags, report.manifests), (2, 2), "{report:?}");
    for (tag, want) in [
        ("latest", 200),
        ("v1", 404),
        ("v2", 404),
        ("v3", 200),
        ("v4", 200),
    ] {
        let s = http
            .status(
                reqwest::Method::GET,
                &format!("/v2/keep/app/manifests/{tag}"),
            )
            .await;
        assert_eq!(s, want, "keep/app:{tag}");
    }
    // The deleted images' unique layers went with them.
    assert_eq!(http.blob("keep/app", &pushed[1].1).await, None);
    assert_eq!(http.blob("keep/app", &pushed[2].1).await, None);
    assert!(http.blob("keep/app", &pushed[3].1).await.is_some());
    assert!(http.blob("elsewhere/app", &other.1).await.is_some());
}

#[tokio::test]
async fn retention_never_breaks_an_index_nor_orphans_a_live_subject_s_referrers() {
    let reg = with_retention(marina::config::RetentionRule {
        untagged_max_age_secs: Some(0),
        ..rule("**")
    })
    .await;
    let http = Http::new(&reg);
    // A multi-arch image: its children are untagged, its index is tagged.
    let (child, child_layer) = image(&reg, &http, "multi", "child").await;
    assert_eq!(
        http.status(reqwest::Method::DELETE, "/v2/multi/manifests/child")
            .await,
        202
    );
    let child_len = http.manifest_len("multi", &child).await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.to_string(), "size": child_len}],
    }))
    .unwrap();
    assert_eq!(
        http.put_manifest("multi", "v1", OCI_INDEX, &index).await.0,
        201
    );
    // A tagged subject with an untagged signature.
    let (subject, _) = image(&reg, &http, "signed", "v1").await;
    let (c, _) = http.push_blob("signed", b"{}").await;
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": c.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": c.to_string(), "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": 1},
    }))
    .unwrap();
    let sig_digest = Algorithm::Sha256.digest_of(&sig);
    assert_eq!(
        http.put_manifest("signed", &sig_digest.to_string(), OCI_MANIFEST, &sig)
            .await
            .0,
        201
    );

    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(report.manifests, 0, "{report:?}");
    assert_eq!(
        http.status(
            reqwest::Method::GET,
            &format!("/v2/multi/manifests/{child}")
        )
        .await,
        200
    );
    assert!(http.blob("multi", &child_layer).await.is_some());
    assert_eq!(
        http.status(
            reqwest::Method::GET,
            &format!("/v2/signed/manifests/{sig_digest}")
        )
        .await,
        200
    );

    // Untag the subject: it goes, and then its signature does.
    assert_eq!(
        http.status(reqwest::Method::DELETE, "/v2/signed/manifests/v1")
            .await,
        202
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(report.manifests, 2, "{report:?}");
    for d in [subject, sig_digest] {
        assert_eq!(
            http.status(reqwest::Method::GET, &format!("/v2/signed/manifests/{d}"))
                .await,
            404
        );
    }
}

/// After a large deletion, the collector gives the metadata's freed pages back:
/// `meta.db` shrinks, and so does its log, unless the log is written out in
/// advance (then it keeps exactly that size).
#[tokio::test]
async fn the_metadata_file_shrinks_after_a_large_deletion() {
    for preallocated in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let builder = Registry::builder()
            .data_dir(&data)
            .gc_interval(None)
            .gc_grace(Duration::ZERO)
            .preallocate_log(preallocated);
        let reg = TestRegistry::start_with(builder, Some(dir)).await;
        let http = Http::new(&reg);
        let (c, _) = http.push_blob("big", b"{}").await;
        let filler = "x".repeat(20_000);
        let mut digests = Vec::new();
        for i in 0..150 {
            let m = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": c.to_string(), "size": 2},
                "layers": [],
                "annotations": {"filler": filler, "i": i.to_string()},
            }))
            .unwrap();
            let (s, body) = http
                .put_manifest("big", &format!("t{i}"), OCI_MANIFEST, &m)
                .await;
            assert_eq!(s, 201, "{body}");
            digests.push(Algorithm::Sha256.digest_of(&m));
        }
        let size = |f: &str| {
            std::fs::metadata(data.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let log_written_out = size("meta.db-wal");
        reg.registry().collect_garbage().await.unwrap();
        let (db, log) = (size("meta.db"), size("meta.db-wal"));
        assert!(
            db + log > 3_000_000,
            "the manifests take room: {db} + {log} bytes"
        );
        for d in &digests {
            assert_eq!(
                http.status(reqwest::Method::DELETE, &format!("/v2/big/manifests/{d}"))
                    .await,
                202
            );
        }
        reg.registry().collect_garbage().await.unwrap();
        let (db_after, log_after) = (size("meta.db"), size("meta.db-wal"));
        if preallocated {
            assert!(log_written_out > 80_000_000, "{log_written_out}");
            assert_eq!((log, log_after), (log_written_out, log_written_out));
            assert!(
                db_after < db / 4,
                "meta.db went from {db} to {db_after} bytes"
            );
        } else {
            assert!(
                db_after + log_after < (db + log) / 4,
                "meta.db and its WAL went from {} to {} bytes",
                db + log,
                db_after + log_after
            );
        }
    }
}
