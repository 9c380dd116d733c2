//! Manifests: push by tag, by digest, with tag parameters; exact bytes and
//! Content-Type; references; sparse; limits; deletes.

use marina::oci::Algorithm;
use reqwest::Method;
use serde_json::json;

use crate::assert_transcript;
use crate::support::{image_manifest, TestServer, OCI_INDEX, OCI_MANIFEST};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[tokio::test]
async fn push_by_tag_then_pull_byte_for_byte() {
    let s = TestServer::start().await;
    let (m, d) = s.push_image("org/app", "v1", "one").await;
    for reference in ["v1".to_string(), d.to_string()] {
        let r = s.get(&format!("/v2/org/app/manifests/{reference}")).await;
        r.expect(200, None);
        assert_eq!(r.body, m);
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(
            r.header("docker-content-digest"),
            Some(d.to_string().as_str())
        );
        let h = s.head(&format!("/v2/org/app/manifests/{reference}")).await;
        h.expect(200, None);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-length"),
            Some(m.len().to_string().as_str())
        );
        assert_eq!(h.header("content-type"), Some(OCI_MANIFEST));
    }
    let r = s.get("/v2/org/app/manifests/v1").await;
    assert_transcript!("manifest_get", r.transcript());
}

#[tokio::test]
async fn put_response_headers() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let m = image_manifest(&c, 2, &[], None, None);
    let r = s.push_manifest("app", "latest", OCI_MANIFEST, &m).await;
    let d = Algorithm::Sha256.digest_of(&m);
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/app/manifests/{d}").as_str())
    );
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_transcript!("manifest_put", r.transcript());
}

#[tokio::test]
async fn tag_parameters_tag_a_digest_push_and_are_echoed() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let m = image_manifest(&c, 2, &[], None, None);
    let d = Algorithm::Sha256.digest_of(&m);
    let tags: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
    let r = s
        .req(
            Method::PUT,
            &format!("/v2/app/manifests/{d}?{}", query.join("&")),
        )
        .await
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await;
    r.expect(201, None);
    let echoed: Vec<String> = r
        .header_all("oci-tag")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .collect();
    let mut sorted = echoed.clone();
    sorted.sort();
    let mut want = tags.clone();
    want.sort();
    assert_eq!(sorted, want);
    for t in &tags {
        assert_eq!(s.get(&format!("/v2/app/manifests/{t}")).await.body, m);
    }
    // An invalid tag parameter rejects the whole push.
    let r = s
        .req(
            Method::PUT,
            &format!("/v2/app/manifests/{d}?tag=ok&tag=-bad"),
        )
        .await
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await;
    r.expect(400, None);
    r.error_code();
    s.get("/v2/app/manifests/ok")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
}

#[tokio::test]
async fn sha512_manifests_by_digest() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let m = image_manifest(&c, 2, &[], None, None);
    let d = Algorithm::Sha512.digest_of(&m);
    s.push_manifest("app", &format!("{d}?tag=five12"), OCI_MANIFEST, &m)
        .await;
    let r = s.get(&format!("/v2/app/manifests/{d}")).await;
    assert_eq!(r.body, m);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(s.get("/v2/app/manifests/five12").await.body, m);
}

#[tokio::test]
async fn digest_mismatch_and_malformed_bodies_are_rejected() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let m = image_manifest(&c, 2, &[], None, None);
    let d = Algorithm::Sha256.digest_of(&m);
    let mut tampered = m.clone();
    tampered.extend_from_slice(b"  ");
    let r = s
        .put_manifest(&format!("/v2/app/manifests/{d}"), OCI_MANIFEST, tampered)
        .await;
    r.expect(400, Some("DIGEST_INVALID"));
    let r = s
        .put_manifest(
            "/v2/app/manifests/sha256:baddigeststring",
            OCI_MANIFEST,
            m.clone(),
        )
        .await;
    r.expect(400, Some("DIGEST_INVALID"));
    s.get("/v2/app/manifests/sha256:baddigeststring")
        .await
        .expect(400, Some("DIGEST_INVALID"));
    for body in [
        &b"not json"[..],
        b"[]",
        b"{\"schemaVersion\":1}",
        b"{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:x\",\"size\":1}}",
    ] {
        let r = s
            .put_manifest("/v2/app/manifests/bad", OCI_MANIFEST, body.to_vec())
            .await;
        r.expect(400, Some("MANIFEST_INVALID"));
    }
    // Content-Type that contradicts mediaType.
    let r = s
        .put_manifest("/v2/app/manifests/bad", OCI_INDEX, m.clone())
        .await;
    r.expect(400, Some("MANIFEST_INVALID"));
    assert_transcript!("manifest_media_type_mismatch", r.transcript());
    // Invalid tags: 400 on PUT, 404 on GET (no such tag can exist).
    s.put_manifest("/v2/app/manifests/.bad", OCI_MANIFEST, m.clone())
        .await
        .expect(400, None);
    s.get("/v2/app/manifests/.INVALID_MANIFEST_NAME")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
}

#[tokio::test]
async fn missing_references_give_manifest_blob_unknown() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let missing = Algorithm::Sha256.digest_of(b"missing layer");
    let m = image_manifest(&c, 2, &[(&missing, 13)], None, None);
    let r = s
        .put_manifest("/v2/app/manifests/v1", OCI_MANIFEST, m)
        .await;
    r.expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
    assert_transcript!("manifest_blob_unknown", r.transcript());
    s.get("/v2/app/manifests/v1")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    // A missing config is refused the same way.
    let m = image_manifest(&missing, 13, &[], None, None);
    s.put_manifest("/v2/app/manifests/v1", OCI_MANIFEST, m)
        .await
        .expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
    // An index whose child is missing.
    let idx = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[{"mediaType":OCI_MANIFEST,"digest":missing.to_string(),"size":13}]})).unwrap();
    s.put_manifest("/v2/app/manifests/i", OCI_INDEX, idx)
        .await
        .expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
    // A blob from another repository does not count.
    let other = s.push_blob("other", b"layer elsewhere").await;
    let m = image_manifest(&c, 2, &[(&other, 15)], None, None);
    s.put_manifest("/v2/app/manifests/v1", OCI_MANIFEST, m)
        .await
        .expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
}

#[tokio::test]
async fn descriptor_sizes_must_match_the_content_held() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let l = s.push_blob("app", b"fourteen bytes").await;
    for (config_size, layer_size) in [(2, 999_999), (2, 0), (3, 14)] {
        let m = image_manifest(&c, config_size, &[(&l, layer_size)], None, None);
        s.put_manifest("/v2/app/manifests/bad", OCI_MANIFEST, m)
            .await
            .expect(400, Some("MANIFEST_INVALID"));
    }
    s.get("/v2/app/manifests/bad")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    let good = image_manifest(&c, 2, &[(&l, 14)], None, None);
    let good_digest = Algorithm::Sha256.digest_of(&good);
    let good_len = good.len();
    s.put_manifest("/v2/app/manifests/good", OCI_MANIFEST, good)
        .await
        .expect(201, None);
    // An index's child descriptors are checked against the child's bytes.
    let index = |size: usize| {
        serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,
            "manifests":[{"mediaType":OCI_MANIFEST,"digest":good_digest.to_string(),"size":size}]}))
        .unwrap()
    };
    s.put_manifest("/v2/app/manifests/i", OCI_INDEX, index(good_len + 1))
        .await
        .expect(400, Some("MANIFEST_INVALID"));
    s.put_manifest("/v2/app/manifests/i", OCI_INDEX, index(good_len))
        .await
        .expect(201, None);
}

#[tokio::test]
async fn a_manifest_that_is_not_utf8_is_refused() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let mut m = image_manifest(&c, 2, &[], None, None);
    // An unknown field whose string holds bytes that are not UTF-8.
    let end = m.iter().rposition(|&b| b == b'}').unwrap();
    m.splice(end..end, b",\"x\":\"\xff\xfe\"".iter().copied());
    s.put_manifest("/v2/app/manifests/v1", OCI_MANIFEST, m)
        .await
        .expect(400, Some("MANIFEST_INVALID"));
}

#[tokio::test]
async fn non_distributable_layers_need_not_be_pushed() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let foreign = Algorithm::Sha256.digest_of(b"foreign");
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": foreign.to_string(), "size": 7, "urls": ["https://example.invalid/layer"]}]
    })).unwrap();
    s.push_manifest("app", "foreign", OCI_MANIFEST, &m).await;
}

#[tokio::test]
async fn sparse_manifests_when_allowed() {
    let s = TestServer::start_with(|c| c.registry.sparse_manifests = true).await;
    let missing = Algorithm::Sha256.digest_of(b"never pushed");
    let m = image_manifest(&missing, 12, &[(&missing, 12)], None, None);
    s.push_manifest("app", "sparse", OCI_MANIFEST, &m).await;
    let idx = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[{"mediaType":OCI_MANIFEST,"digest":missing.to_string(),"size":12}]})).unwrap();
    s.push_manifest("app", "sparse-index", OCI_INDEX, &idx)
        .await;
}

#[tokio::test]
async fn docker_schema2_manifests_and_lists() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{\"architecture\":\"amd64\"}").await;
    let l = s.push_blob("app", b"docker layer").await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": c.to_string(), "size": 24},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": l.to_string(), "size": 12}]
    })).unwrap();
    s.push_manifest("app", "docker", DOCKER_MANIFEST, &m).await;
    let md = Algorithm::Sha256.digest_of(&m);
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": md.to_string(), "size": m.len(), "platform": {"architecture": "amd64", "os": "linux"}}]
    })).unwrap();
    s.push_manifest("app", "list", DOCKER_LIST, &list).await;
    let r = s.get("/v2/app/manifests/list").await;
    assert_eq!(r.header("content-type"), Some(DOCKER_LIST));
    assert_eq!(r.body, list);
}

#[tokio::test]
async fn content_type_parameters_on_put_are_ignored() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let m = image_manifest(&c, 2, &[], None, None);
    let r = s
        .put_manifest(
            "/v2/app/manifests/p",
            &format!("{OCI_MANIFEST}; charset=utf-8"),
            m.clone(),
        )
        .await;
    r.expect(201, None);
    assert_eq!(
        s.get("/v2/app/manifests/p").await.header("content-type"),
        Some(OCI_MANIFEST)
    );
}

#[tokio::test]
async fn size_limit_gives_413_and_4mb_manifests_fit() {
    let s = TestServer::start().await;
    let c = s.push_blob("app", b"{}").await;
    let big_annotation = "x".repeat(4 * 1024 * 1024 - 600);
    let mut m: serde_json::Value =
        serde_json::from_slice(&image_manifest(&c, 2, &[], None, None)).unwrap();
    m["annotations"] = json!({"big": big_annotation});
    let body = serde_json::to_vec(&m).unwrap();
    assert!(body.len() <= 4 * 1024 * 1024 && body.len() > 4 * 1024 * 1024 - 1024);
    s.push_manifest("app", "big", OCI_MANIFEST, &body).await;
    m["annotations"] = json!({"big": "y".repeat(4 * 1024 * 1024 + 10)});
    let r = s
        .put_manifest(
            "/v2/app/manifests/huge",
            OCI_MANIFEST,
            serde_json::to_vec(&m).unwrap(),
        )
        .await;
    r.expect(413, Some("SIZE_INVALID"));
    s.get("/v2/app/manifests/huge").await.expect(404, None);
}

#[tokio::test]
async fn retagging_moves_the_tag() {
    let s = TestServer::start().await;
    let (_, d1) = s.push_image("app", "latest", "first").await;
    let (_, d2) = s.push_image("app", "latest", "second").await;
    assert_ne!(d1, d2);
    let r = s.get("/v2/app/manifests/latest").await;
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d2.to_string().as_str())
    );
    s.get(&format!("/v2/app/manifests/{d1}"))
        .await
        .expect(200, None);
}

#[tokio::test]
async fn deleting_by_digest_removes_tags_and_deleting_a_tag_keeps_the_manifest() {
    let s = TestServer::start().await;
    let (_, d) = s.push_image("app", "a", "x").await;
    s.push_manifest(
        "app",
        "b",
        OCI_MANIFEST,
        &s.get("/v2/app/manifests/a").await.body,
    )
    .await;
    let r = s.delete("/v2/app/manifests/a").await;
    r.expect(202, None);
    s.get("/v2/app/manifests/a")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    s.get(&format!("/v2/app/manifests/{d}"))
        .await
        .expect(200, None);
    let r = s.delete(&format!("/v2/app/manifests/{d}")).await;
    r.expect(202, None);
    assert_transcript!("manifest_delete", r.transcript());
    s.get("/v2/app/manifests/b")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    s.get(&format!("/v2/app/manifests/{d}"))
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    s.delete(&format!("/v2/app/manifests/{d}"))
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    s.delete("/v2/nowhere/manifests/latest")
        .await
        .expect(404, Some("NAME_UNKNOWN"));
    s.get("/v2/nowhere/manifests/latest")
        .await
        .expect(404, Some("NAME_UNKNOWN"));
}

#[tokio::test]
async fn deletion_switches_answer_405() {
    let s = TestServer::start_with(|c| {
        c.registry.delete.manifests = false;
        c.registry.delete.tags = false;
    })
    .await;
    let (_, d) = s.push_image("app", "keep", "x").await;
    for path in [
        "/v2/app/manifests/keep".to_string(),
        format!("/v2/app/manifests/{d}"),
    ] {
        let r = s.delete(&path).await;
        r.expect(405, Some("UNSUPPORTED"));
        // RFC 9110 §15.5.6: `Allow` lists what the resource supports now,
        // and the method just refused is not among them.
        assert_eq!(
            r.header("allow"),
            Some("GET, HEAD, PUT"),
            "{}",
            r.describe()
        );
    }
    s.get("/v2/app/manifests/keep").await.expect(200, None);
}

/// Regression: a manifest pushed with `Content-Type: text/plain` was stored (201)
/// and served back as `text/plain`.
#[tokio::test]
async fn a_manifest_pushed_with_a_non_manifest_content_type_is_refused_and_not_stored() {
    let s = TestServer::start().await;
    let c = s.push_blob("ct/app", b"{}").await;
    let m = image_manifest(&c, 2, &[], None, None);
    for content_type in ["text/plain", "application/json", "application/octet-stream"] {
        let r = s
            .put_manifest("/v2/ct/app/manifests/v1", content_type, m.clone())
            .await;
        r.expect(400, Some("MANIFEST_INVALID"));
        assert!(
            String::from_utf8_lossy(&r.body).contains(content_type),
            "{}",
            r.describe()
        );
        s.get("/v2/ct/app/manifests/v1")
            .await
            .expect(404, Some("MANIFEST_UNKNOWN"));
    }
    // The same bytes with the right type are accepted.
    s.push_manifest("ct/app", "v1", OCI_MANIFEST, &m).await;
}

/// Regression: a digest missing as both config and layer was listed twice,
/// with a count of 2.
#[tokio::test]
async fn a_missing_digest_referenced_twice_is_reported_once() {
    let s = TestServer::start().await;
    let gone = Algorithm::Sha256.digest_of(b"never pushed");
    let m = image_manifest(&gone, 12, &[(&gone, 12)], None, None);
    let r = s
        .put_manifest("/v2/twice/app/manifests/v1", OCI_MANIFEST, m)
        .await;
    r.expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let detail = &v["errors"][0]["detail"];
    assert_eq!(detail["count"], 1, "{v}");
    assert_eq!(
        detail["missing"],
        serde_json::json!([gone.to_string()]),
        "{v}"
    );
}

/// Regression: a manifest naming 20,000 missing layers got a 2.9 MB
/// `MANIFEST_BLOB_UNKNOWN` body listing every digest twice.
#[tokio::test]
async fn missing_blob_errors_are_bounded_by_a_few_digests_and_a_count() {
    let s = TestServer::start().await;
    let c = s.push_blob("many/app", b"{}").await;
    let layers: Vec<(marina::oci::Digest, usize)> = (0..20_000u32)
        .map(|i| (Algorithm::Sha256.digest_of(&i.to_be_bytes()), 4))
        .collect();
    let refs: Vec<(&marina::oci::Digest, usize)> = layers.iter().map(|(d, n)| (d, *n)).collect();
    let m = image_manifest(&c, 2, &refs, None, None);
    let r = s
        .put_manifest("/v2/many/app/manifests/v1", OCI_MANIFEST, m.clone())
        .await;
    r.expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
    assert!(
        r.body.len() < 4096,
        "{} bytes of error for a {} byte request",
        r.body.len(),
        m.len()
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let detail = &v["errors"][0]["detail"];
    assert_eq!(detail["count"], 20_000, "{v}");
    assert_eq!(detail["missing"].as_array().map(Vec::len), Some(10), "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("and 19990 more"),
        "{v}"
    );
}
