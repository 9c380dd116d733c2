//! What survives: restarts, upload sessions across restarts, concurrent identical
//! pushes, and the expiry of idle uploads.

use std::time::Duration;

use marina::oci::Algorithm;
use reqwest::Method;

use crate::support::{image_manifest, TestServer, OCI_MANIFEST};

fn config_for(dir: &std::path::Path) -> marina::config::Config {
    let mut c = marina::config::Config::ephemeral(dir);
    c.registry.sparse_manifests = false;
    c
}

#[tokio::test]
async fn content_survives_a_restart() {
    let s = TestServer::start().await;
    let (m, d) = s.push_image("org/app", "v1", "persist").await;
    let config = config_for(&s.data_dir());
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, config).await;
    let r = s.get("/v2/org/app/manifests/v1").await;
    r.expect(200, None);
    assert_eq!(r.body, m);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(
        s.get("/v2/org/app/tags/list").await.json()["tags"],
        serde_json::json!(["v1"])
    );
}

/// Sends `before` as chunks of one upload, restarts the server, checks the
/// session's size, sends `after` and closes it; the blob must be all of them.
async fn upload_across_a_restart(before: &[&[u8]], after: &[u8]) {
    let s = TestServer::start().await;
    let r = s
        .req(Method::POST, "/v2/app/blobs/uploads/")
        .await
        .send()
        .await;
    let loc = r.header("location").unwrap().to_string();
    let mut from = 0;
    for chunk in before {
        patch(&s, &loc, from, chunk).await;
        from += chunk.len();
    }
    let config = config_for(&s.data_dir());
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, config).await;
    let st = s.get(&loc).await;
    st.expect(204, None);
    assert_eq!(st.header("range"), Some(format!("0-{}", from - 1).as_str()));
    patch(&s, &loc, from, after).await;
    let whole = [before.concat(), after.to_vec()].concat();
    let d = Algorithm::Sha256.digest_of(&whole);
    s.req(Method::PUT, &format!("{loc}?digest={d}"))
        .await
        .send()
        .await
        .expect(201, None);
    assert!(s.get(&format!("/v2/app/blobs/{d}")).await.body == whole);
}

/// A `PATCH` of `chunk` at `from`, which must be accepted.
async fn patch(s: &TestServer, loc: &str, from: usize, chunk: &[u8]) {
    s.req(Method::PATCH, loc)
        .await
        .header(
            "Content-Range",
            &format!("{from}-{}", from + chunk.len() - 1),
        )
        .body(chunk.to_vec())
        .send()
        .await
        .expect(202, None);
}

#[tokio::test]
async fn an_upload_session_resumes_after_a_restart() {
    upload_across_a_restart(&[b"hello"], b" world").await;
}

/// Chunks of a few MiB: the record of each is usually made before its hash
/// has caught up, and the restarted server hashes the rest from the staging
/// file.
#[tokio::test]
async fn an_upload_recorded_before_its_hash_caught_up_resumes_after_a_restart() {
    let whole: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect();
    let (first, rest) = whole.split_at(6_000_000);
    let (one, two) = first.split_at(3_000_000);
    upload_across_a_restart(&[one, two], rest).await;
}

#[tokio::test]
async fn identical_concurrent_pushes_are_safe() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let data: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 253) as u8).collect();
    let d = Algorithm::Sha256.digest_of(&data);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, data, d) = (s.clone(), data.clone(), d.clone());
        tasks.push(tokio::spawn(async move {
            let r = s
                .req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={d}"))
                .await
                .body(data)
                .send()
                .await;
            r.status.as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    assert_eq!(s.get(&format!("/v2/app/blobs/{d}")).await.body, data);
    let m = image_manifest(&d, data.len(), &[], None, None);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, m) = (s.clone(), m.clone());
        tasks.push(tokio::spawn(async move {
            let r = s
                .req(Method::PUT, "/v2/app/manifests/same")
                .await
                .header("Content-Type", OCI_MANIFEST)
                .body(m)
                .send()
                .await;
            r.status.as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    assert_eq!(s.get("/v2/app/manifests/same").await.body, m);
    let left = std::fs::read_dir(s.data_dir().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "no staging files are left behind");
}

#[tokio::test]
async fn a_blob_is_invisible_until_its_upload_is_verified() {
    let s = TestServer::start().await;
    let data = b"not yet".to_vec();
    let d = Algorithm::Sha256.digest_of(&data);
    let r = s
        .req(Method::POST, "/v2/app/blobs/uploads/")
        .await
        .send()
        .await;
    let loc = r.header("location").unwrap().to_string();
    s.req(Method::PATCH, &loc)
        .await
        .body(data.clone())
        .send()
        .await
        .expect(202, None);
    s.get(&format!("/v2/app/blobs/{d}")).await.expect(404, None);
    s.req(Method::POST, &format!("/v2/other/blobs/uploads/?mount={d}"))
        .await
        .send()
        .await
        .expect(202, None);
    s.req(Method::PUT, &format!("{loc}?digest={d}"))
        .await
        .send()
        .await
        .expect(201, None);
    s.get(&format!("/v2/app/blobs/{d}")).await.expect(200, None);
}

#[tokio::test]
async fn idle_uploads_expire_and_their_files_are_removed() {
    let s = TestServer::start_with(|c| c.registry.upload_expiry_secs = 1).await;
    let r = s
        .req(Method::POST, "/v2/app/blobs/uploads/")
        .await
        .send()
        .await;
    let loc = r.header("location").unwrap().to_string();
    s.req(Method::PATCH, &loc)
        .await
        .body(b"abandoned".to_vec())
        .send()
        .await
        .expect(202, None);
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if std::fs::read_dir(s.data_dir().join("uploads"))
            .unwrap()
            .count()
            == 0
        {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "staging files of the idle session were not removed within 10 s"
    );
    s.get(&loc).await.expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
}

#[tokio::test]
async fn garbage_collection_removes_only_unlinked_blob_files() {
    let s = TestServer::start_with(|c| c.registry.gc_interval_secs = 1).await;
    // One blob large enough to be a file, one small enough to be a row of
    // the small-blob database: both kinds go, and stay, as they should.
    let large = b"delete me".repeat(10_000);
    let gone = s.push_blob("a", &large).await;
    let shared = s.push_blob("a", b"shared blob").await;
    s.push_blob("b", b"shared blob").await;
    let stored = |d: &marina::oci::Digest| crate::support::stored_blob(&s.data_dir(), d).is_some();
    // Whether `d` is collected within 10 s (the collector runs every second).
    let collected = |d: marina::oci::Digest| async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if !stored(&d) {
                return true;
            }
        }
        false
    };
    assert!(stored(&gone) && stored(&shared));
    s.delete(&format!("/v2/a/blobs/{gone}"))
        .await
        .expect(202, None);
    s.delete(&format!("/v2/a/blobs/{shared}"))
        .await
        .expect(202, None);
    assert!(
        collected(gone.clone()).await,
        "the unlinked blob's file was not collected within 10 s"
    );
    assert!(
        stored(&shared),
        "a blob still linked elsewhere was collected"
    );
    assert_eq!(
        s.get(&format!("/v2/b/blobs/{shared}")).await.body,
        b"shared blob"
    );
    // Unlinked everywhere, the small one goes too.
    s.delete(&format!("/v2/b/blobs/{shared}"))
        .await
        .expect(202, None);
    assert!(
        collected(shared.clone()).await,
        "the small blob was not collected within 10 s"
    );
    // Pushing the collected content again works.
    s.push_blob("a", &large).await;
    assert_eq!(s.get(&format!("/v2/a/blobs/{gone}")).await.body, large);
}
