//! The registry on PostgreSQL metadata (`metadata_url`), each test in a schema
//! of its own on the server `MARINA_TEST_POSTGRES_URL` names (CI starts one;
//! without it these tests fail under CI and say so elsewhere): the whole
//! harness passes with the same verdicts as on SQLite, garbage collection and
//! retention work, and a bad URL stops the start with one line.

use crate::support::postgres_metadata_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_on_postgres_with_the_sqlite_verdicts() {
    let Some(url) = postgres_metadata_url() else {
        return;
    };
    crate::harness_reference::every_check_passes(|c| c.registry.metadata_url = Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_url_that_does_not_answer_stops_the_start_with_one_line() {
    for (url, says) in [
        (
            "postgres://marina:s3cret@127.0.0.1:1/marina",
            "Connection refused",
        ),
        (
            "mysql://marina@127.0.0.1/marina",
            "is not a postgres:// URL",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (code, stdout, stderr) = crate::support::run_marina(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--metadata-url",
            url,
        ])
        .await;
        assert_ne!(code, 0, "{stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("s3cret"), "the password shows: {stderr}");
    }
}

/// Every listing (the `_marina` extension with its filters, sorts and pages,
/// tag lists, the catalog, referrers) answers the same on PostgreSQL as on
/// SQLite for the same pushes, push times aside; including an annotation
/// value too long to be an index key as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_answers_as_on_sqlite() {
    use crate::listing_fixture::{push_artifact, scenario};
    use crate::support::TestServer;

    let Some(url) = postgres_metadata_url() else {
        return;
    };
    let sqlite = TestServer::start().await;
    let pg = TestServer::start_with(|c| c.registry.metadata_url = Some(url)).await;
    // Long and incompressible (PostgreSQL compresses index entries, so a
    // repeated letter would fit).
    let noise = |seed: &str| -> String {
        (0..80)
            .map(|i| {
                marina::oci::Algorithm::Sha256
                    .digest_of(format!("{seed}{i}").as_bytes())
                    .hex()
                    .to_string()
            })
            .collect()
    };
    let long = noise("value");
    let long_key = format!("org.example.{}", noise("key"));
    let mut subjects = Vec::new();
    for s in [&sqlite, &pg] {
        let sc = scenario(s).await;
        push_artifact(
            s,
            "org1/artifact-a",
            Some("long"),
            "application/vnd.example.chart",
            None,
            &[
                ("org.example.long", long.as_str()),
                (long_key.as_str(), "v"),
            ],
        )
        .await;
        subjects.push(sc.hello.to_string());
    }
    assert_eq!(
        subjects[0], subjects[1],
        "the two scenarios pushed the same content"
    );
    let hello = &subjects[0];
    let queries = [
        "/v2/_catalog?n=2".to_string(),
        "/v2/_marina/list/repositories?n=2".into(),
        "/v2/_marina/list/repositories?sort=pushed&order=desc&n=2".into(),
        "/v2/_marina/list/repositories?namespace=org1&n=1".into(),
        "/v2/hello-world/tags/list?n=1".into(),
        "/v2/hello-world/_marina/list/tags?n=1".into(),
        "/v2/hello-world/_marina/list/tags?sort=pushed&order=desc&n=1".into(),
        format!("/v2/hello-world/_marina/list/tags?digest={hello}"),
        "/v2/org1/artifact-a/_marina/list/tags?annotation=org.opencontainers.image.version%3D2".into(),
        "/v2/hello-world/_marina/list/manifests?n=2".into(),
        "/v2/hello-world/_marina/list/manifests?tagged=false".into(),
        "/v2/hello-world/_marina/list/manifests?tagged=true&sort=pushed".into(),
        "/v2/org1/artifact-a/_marina/list/manifests?annotation=org.example.team&n=1".into(),
        "/v2/org1/artifact-a/_marina/list/manifests?artifactType=application%2Fvnd.example.chart&sort=pushed&order=desc".into(),
        format!("/v2/org1/artifact-a/_marina/list/manifests?annotation=org.example.long%3D{long}"),
        format!("/v2/org1/artifact-a/_marina/list/manifests?annotation={long_key}"),
        format!("/v2/org1/artifact-a/_marina/list/tags?annotation={long_key}%3Dv"),
        format!("/v2/hello-world/_marina/list/referrers?subject={hello}"),
        format!("/v2/hello-world/referrers/{hello}"),
        format!("/v2/hello-world/referrers/{hello}?artifactType=application%2Fspdx%2Bjson"),
        // NUL, which PostgreSQL text cannot hold, in cursors and filters.
        "/v2/hello-world/tags/list?last=%00".into(),
        "/v2/_catalog?last=hello%00".into(),
        "/v2/org1/artifact-a/_marina/list/manifests?annotation=org.example.team%3Don%00e".into(),
        "/v2/org1/artifact-a/_marina/list/tags?annotation=org.example%00".into(),
        "/v2/org1/artifact-a/_marina/list/manifests?artifactType=application%2Fvnd%00".into(),
        format!("/v2/hello-world/referrers/{hello}?artifactType=application%2Fspdx%00"),
    ];
    for q in &queries {
        let (a, b) = (pages(&sqlite, q).await, pages(&pg, q).await);
        assert!(!a.is_empty() || q.contains("never"), "{q}: nothing listed");
        assert_eq!(a, b, "{q}: SQLite and PostgreSQL differ");
    }
    let long_hits = pages(
        &pg,
        &format!("/v2/org1/artifact-a/_marina/list/manifests?annotation=org.example.long%3D{long}"),
    )
    .await;
    assert_eq!(
        long_hits[0]["manifests"].as_array().map(Vec::len),
        Some(1),
        "{long_hits:?}"
    );
    let key_hits = pages(
        &pg,
        &format!("/v2/org1/artifact-a/_marina/list/manifests?annotation={long_key}"),
    )
    .await;
    assert_eq!(
        key_hits[0]["manifests"].as_array().map(Vec::len),
        Some(1),
        "{key_hits:?}"
    );
}

/// Every page of a list from `first` on (following `Link`), as JSON bodies
/// with push times removed.
async fn pages(s: &crate::support::TestServer, first: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    for _ in 0..50 {
        let Some(path) = next.take() else { break };
        let r = s.get(&path).await;
        assert_eq!(
            r.status.as_u16(),
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let mut v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        strip_times(&mut v);
        out.push(v);
        next = r
            .header("link")
            .and_then(|l| l.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(target, _)| target.to_string());
    }
    out
}

fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.to_ascii_lowercase().contains("pushed") && k != "next");
            m.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// The collector racing pushes, deletes and mounts (`gc.rs`'s race) on
/// PostgreSQL: no acknowledged manifest loses a blob, no request gets a 5xx
/// other than the documented 503 retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collector_racing_writers_on_postgres_never_loses_a_blob() {
    let Some(url) = postgres_metadata_url() else {
        return;
    };
    crate::gc::collector_races_writers(Some(&url), None, 1).await;
}

/// PostgreSQL metadata and S3 blobs (`MARINA_TEST_S3_URL`, a Garage bucket in
/// CI): the whole harness passes with the same verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_on_postgres_and_s3() {
    let (Some(meta), Some(blobs)) = (postgres_metadata_url(), crate::support::s3_url()) else {
        return;
    };
    crate::harness_reference::every_check_passes(|c| {
        c.registry.metadata_url = Some(meta);
        c.registry.blob_url = Some(blobs);
    })
    .await;
}

/// SIGKILL mid-push on PostgreSQL and S3: every acknowledged blob and tag is
/// there after the restart, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_on_postgres_and_s3() {
    let (Some(meta), Some(blobs)) = (postgres_metadata_url(), crate::support::s3_url()) else {
        return;
    };
    crate::crash::survive_sigkill(&["--metadata-url", meta.expose(), "--blob-url", &blobs]).await;
}

/// A missing bucket or refused credentials stop the start with one line that
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_is_missing_or_refuses_stops_the_start_with_one_line() {
    let Some(url) = crate::support::s3_url() else {
        return;
    };
    let (_, query) = url.split_once('?').unwrap();
    for (blob_url, secret, says) in [
        (format!("s3://no-such-bucket?{query}"), None, "NoSuchBucket"),
        (url.clone(), Some("wrong-secret"), "AccessDenied"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_marina"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--blob-url", &blob_url]);
        if let Some(s) = secret {
            cmd.env("AWS_SECRET_ACCESS_KEY", s);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("blob store"),
            "{stderr}"
        );
    }
}

/// `marina gc` on PostgreSQL and S3 without `--data-dir` collects and
/// leaves no `./marina-data` behind (nothing of the registry goes there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marina_gc_on_postgres_and_s3_creates_no_data_directory() {
    let (Some(meta), Some(blobs)) = (postgres_metadata_url(), crate::support::s3_url()) else {
        return;
    };
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_marina"));
    cmd.current_dir(cwd.path())
        .env_remove("MARINA_DATA_DIR")
        .args(["gc", "--metadata-url", meta.expose(), "--blob-url", &blobs]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "created in the working directory: {left:?}"
    );
}

/// `--blob-redirect`: a blob GET answers 307 to a presigned URL of the bucket,
/// which serves the bytes (and ranges); HEAD stays with the registry; skopeo,
/// buildah and podman push and pull through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_gets_redirect_to_the_bucket_and_real_clients_follow() {
    use crate::support::TestServer;

    // A server of its own (schema and prefix) for each client run, since the
    // client tests check the catalog.
    async fn redirecting() -> Option<(TestServer, String)> {
        let (meta, blobs) = (postgres_metadata_url()?, crate::support::s3_url()?);
        let endpoint = blobs
            .split("endpoint=")
            .nth(1)
            .and_then(|e| e.split('&').next())
            .unwrap()
            .to_string();
        let s = TestServer::start_with(|c| {
            c.registry.metadata_url = Some(meta);
            c.registry.blob_url = Some(blobs);
            c.registry.blob_redirect = true;
        })
        .await;
        Some((s, endpoint))
    }
    let Some((s, endpoint)) = redirecting().await else {
        return;
    };
    let bytes = b"bytes served by the bucket".to_vec();
    let d = s.push_blob("redirect/app", &bytes).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain
        .get(format!("{}/v2/redirect/app/blobs/{d}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let got = plain.get(&location).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], &bytes[..]);
    let range = plain
        .get(&location)
        .header("Range", "bytes=6-11")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(&range.bytes().await.unwrap()[..], b"served");
    let head = plain
        .head(format!("{}/v2/redirect/app/blobs/{d}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    crate::clients::skopeo_round_trip(&s.url).await;
    let (other, _) = redirecting()
        .await
        .expect("the servers answered a moment ago");
    crate::clients::buildah_and_podman(&other).await;
}

/// `marina migrate` copies a SQLite + files registry into PostgreSQL + S3:
/// afterwards every listing answers as before, push times included, and every
/// blob reads back; a second run copies nothing and finds everything there; a
/// blob file whose bytes no longer match its digest is named and not copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_registry_to_postgres_and_s3() {
    use crate::listing_fixture::scenario;
    use crate::support::{run_marina, TestServer};

    let (Some(meta), Some(blobs)) = (postgres_metadata_url(), crate::support::s3_url()) else {
        return;
    };
    let before = TestServer::start().await;
    let sc = scenario(&before).await;
    // Large enough to be a file (small blobs are rows of a database).
    let broken = before
        .push_blob("org1/artifact-a", &b"bytes that will rot".repeat(5_000))
        .await;
    let dir = before.stop().await;
    let rotten = dir
        .path()
        .join("blobs/sha256")
        .join(&broken.hex()[..2])
        .join(broken.hex());
    std::fs::write(&rotten, b"bytes that have rotted").unwrap();
    let from = dir.path().to_str().unwrap().to_string();
    let args = [
        "migrate",
        "--from-data-dir",
        &from,
        "--metadata-url",
        meta.expose(),
        "--blob-url",
        &blobs,
    ];
    let (code, out, err) = run_marina(&args).await;
    assert_eq!(code, 1, "a rotten blob fails the run: {out}{err}");
    assert!(out.contains(&format!("not copied: {broken}")), "{out}");
    assert!(out.contains("metadata rows copied: repos "), "{out}");
    let (code, again, err) = run_marina(&args).await;
    assert_eq!(code, 1, "{again}{err}");
    assert!(again.contains("blobs: 0 copied (0 bytes)"), "{again}");
    assert!(!again.contains("already there, 0"), "{again}");
    // The old registry (restarted on its directory) and the new one answer alike.
    let old = TestServer::start_in(
        dir,
        marina::config::Config::ephemeral(std::path::Path::new(&from)),
    )
    .await;
    let new = TestServer::start_with(|c| {
        c.registry.metadata_url = Some(meta.clone());
        c.registry.blob_url = Some(blobs.clone());
    })
    .await;
    let hello = sc.hello.to_string();
    for q in [
        "/v2/_catalog".to_string(),
        "/v2/_marina/list/repositories?sort=pushed&order=desc".into(),
        "/v2/hello-world/_marina/list/tags?sort=pushed".into(),
        "/v2/hello-world/_marina/list/manifests?sort=pushed&order=desc".into(),
        "/v2/org1/artifact-a/_marina/list/manifests?annotation=org.example.team".into(),
        format!("/v2/hello-world/referrers/{hello}"),
    ] {
        assert_eq!(pages(&old, &q).await, pages(&new, &q).await, "{q}");
    }
    // Push times are kept: the listings agree with the times left in.
    for q in [
        "/v2/hello-world/_marina/list/tags",
        "/v2/_marina/list/repositories",
    ] {
        let (a, b) = (old.get(q).await, new.get(q).await);
        assert!(
            String::from_utf8_lossy(&a.body).contains("ushed"),
            "{q}: no times listed"
        );
        assert_eq!(a.body, b.body, "{q}");
    }
    let m = new.get(&format!("/v2/hello-world/manifests/{hello}")).await;
    assert_eq!(m.status.as_u16(), 200);
    let manifest: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let d = layer["digest"].as_str().unwrap();
        let (a, b) = (
            old.get(&format!("/v2/hello-world/blobs/{d}")).await,
            new.get(&format!("/v2/hello-world/blobs/{d}")).await,
        );
        assert_eq!(b.status.as_u16(), 200, "{d}");
        assert_eq!(a.body, b.body, "{d}");
    }
}

/// Servers and `marina gc` processes killed during sweeps on PostgreSQL and
/// S3: every live manifest keeps its blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sweeps_on_postgres_and_s3_loses_no_acknowledged_manifest() {
    let (Some(meta), Some(blobs)) = (postgres_metadata_url(), crate::support::s3_url()) else {
        return;
    };
    crate::crash::sweeps_under_sigkill(&["--metadata-url", meta.expose(), "--blob-url", &blobs])
        .await;
}

/// Garbage collection on PostgreSQL and S3 removes the objects of what only a
/// deleted image held, and keeps what another image shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collecting_on_postgres_and_s3_deletes_the_objects_only_a_deleted_image_held() {
    use crate::gc::{manifest, registry_with, Http};
    use crate::support::OCI_MANIFEST;

    let (Some(meta), Some(blobs)) = (postgres_metadata_url(), crate::support::s3_url()) else {
        return;
    };
    let (reg, _dir) = registry_with(std::time::Duration::ZERO, Some(&meta), Some(&blobs)).await;
    let http = Http::new(&reg);
    let (config, shared, unique) = (b"{\"c\":1}".to_vec(), vec![5u8; 20_000], vec![6u8; 30_000]);
    let mut d = Vec::new();
    for (repo, bytes) in [
        ("gc/a", &config),
        ("gc/a", &shared),
        ("gc/a", &unique),
        ("gc/b", &config),
        ("gc/b", &shared),
    ] {
        let (digest, status) = http.push_blob(repo, bytes).await;
        assert_eq!(status, 201);
        d.push(digest);
    }
    let ma = manifest(
        (&d[0], config.len()),
        &[(&d[1], shared.len()), (&d[2], unique.len())],
    );
    let mb = manifest((&d[0], config.len()), &[(&d[1], shared.len())]);
    assert_eq!(
        http.put_manifest("gc/a", "v1", OCI_MANIFEST, &ma).await.0,
        201
    );
    assert_eq!(
        http.put_manifest("gc/b", "v1", OCI_MANIFEST, &mb).await.0,
        201
    );
    let da = marina::oci::Algorithm::Sha256.digest_of(&ma);
    assert_eq!(
        http.status(reqwest::Method::DELETE, &format!("/v2/gc/a/manifests/{da}"))
            .await,
        202
    );
    let report = reg.registry().collect_garbage().await.unwrap();
    assert_eq!(
        (report.blobs, report.bytes),
        (1, unique.len() as u64),
        "{report:?}"
    );
    // The bucket itself no longer holds the object; the shared ones stay.
    let dir = tempfile::tempdir().unwrap();
    let bucket = marina::store::S3BlobStore::open(
        marina::store::S3Location::parse(&blobs).unwrap(),
        None,
        dir.path(),
    )
    .unwrap();
    use marina::store::BlobStore;
    assert_eq!(
        bucket.size_of(&d[2]).await.unwrap(),
        None,
        "the unique layer's object is gone"
    );
    assert_eq!(
        bucket.size_of(&d[1]).await.unwrap(),
        Some(shared.len() as u64)
    );
    assert_eq!(http.blob("gc/b", &d[1]).await.as_deref(), Some(&shared[..]));
}

/// Text PostgreSQL cannot hold (NUL) is refused with 400 MANIFEST_INVALID, not
/// a 500; other control characters are kept and filterable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_an_annotation_is_a_400_and_other_control_characters_are_kept() {
    use crate::support::{TestServer, OCI_MANIFEST};

    let Some(meta) = postgres_metadata_url() else {
        return;
    };
    let s = TestServer::start_with(|c| {
        c.registry.metadata_url = Some(meta);
        c.registry.sparse_manifests = true;
    })
    .await;
    let manifest = |value: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
            "layers": [],
            "annotations": {"k": value},
        }))
        .unwrap()
    };
    let put = |reference: &'static str, body: Vec<u8>| {
        let s = &s;
        async move {
            s.req(
                reqwest::Method::PUT,
                &format!("/v2/ctl/app/manifests/{reference}"),
            )
            .await
            .header("Content-Type", OCI_MANIFEST)
            .body(body)
            .send()
            .await
        }
    };
    let r = put("nul", manifest("a\u{0}b")).await;
    assert_eq!(
        r.status.as_u16(),
        400,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(String::from_utf8_lossy(&r.body).contains("MANIFEST_INVALID"));
    let r = put("soh", manifest("a\u{1}b")).await;
    assert_eq!(
        r.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let listed = s
        .get("/v2/ctl/app/_marina/list/manifests?annotation=k%3Da%01b")
        .await;
    assert_eq!(listed.status.as_u16(), 200);
    let v: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(v["manifests"].as_array().map(Vec::len), Some(1), "{v}");
}

/// schemathesis against a registry on PostgreSQL and S3: generated inputs
/// (NUL, long strings, odd cursors) meet PostgreSQL's text and index limits
/// here, and none may give a server error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_on_postgres_and_s3() {
    let (Some(meta), Some(blobs)) = (postgres_metadata_url(), crate::support::s3_url()) else {
        return;
    };
    let s = crate::support::TestServer::start_with(|c| {
        c.registry.metadata_url = Some(meta);
        c.registry.blob_url = Some(blobs);
    })
    .await;
    crate::openapi::schemathesis_against(&s).await;
}

/// A write given up on mid-way (its caller dropped it, as when a client
/// disconnects) must not leave its connection holding the repository's
/// advisory lock: nobody holds it once the writes are over, and later writes
/// into that repository, on every connection of the pool, go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_mid_way_leaves_no_lock_behind() {
    use marina::store::{MetadataStore, NewManifest};
    use std::time::Duration;
    let Some(url) = crate::support::postgres_url() else {
        return;
    };
    let store = std::sync::Arc::new(
        marina::store::PgMetaStore::open_in_schema(&url, &crate::support::fresh_schema())
            .expect("PostgreSQL answers"),
    );
    // A repository name of its own: its lock is no other test's.
    let repo: &'static str =
        Box::leak(format!("abandoned/{}", uuid::Uuid::new_v4().simple()).into_boxed_str());
    let digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let tags = vec!["latest".to_string()];
    let manifest = || NewManifest {
        repo,
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: None,
        subject: None,
        annotations: None,
        bytes: b"{}",
        tags: &tags,
        required_blobs: vec![],
        required_manifests: vec![],
        references: vec![],
    };
    // Cut off at every stage a write goes through: waiting for a connection,
    // taking the lock, inside the transaction, committing.
    for i in 0..400u64 {
        let _ = tokio::time::timeout(
            Duration::from_micros(i * 13 % 4000),
            store.put_manifest(&manifest()),
        )
        .await;
    }
    // Another session can take the repository's lock: nobody kept it.
    let (probe, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers");
    tokio::spawn(connection);
    let key = format!("repo:{repo}");
    let mut free = false;
    for _ in 0..50 {
        // A cut-off connection is closed; the server notices within moments.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let row = probe
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .unwrap();
        if row.get::<_, bool>(0) {
            probe
                .execute(
                    "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                    &[&key],
                )
                .await
                .unwrap();
            free = true;
            break;
        }
    }
    assert!(free, "an abandoned write left its repository locked");
    // Sixteen writers at once use every connection of the pool.
    let writers = (0..16).map(|_| {
        let m = manifest();
        let store = store.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(20), store.put_manifest(&m))
                .await
                .expect("no write waits for a lock nobody releases")
                .expect("the write succeeds")
        }
    });
    futures_util::future::join_all(writers).await;
    assert_eq!(
        store
            .get_manifest(repo, "latest")
            .await
            .unwrap()
            .map(|m| m.digest),
        Some(digest.to_string())
    );
}
