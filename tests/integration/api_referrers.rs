//! The referrers API: exact sets, artifactType derivation, filters, pagination,
//! the switch, and the referrers tag schema upgrade.

use std::collections::BTreeSet;

use marina::oci::Algorithm;
use serde_json::json;

use crate::assert_transcript;
use crate::support::{image_manifest, TestServer, OCI_INDEX, OCI_MANIFEST};

fn digests(v: &serde_json::Value) -> BTreeSet<String> {
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn referrers_are_listed_with_derived_artifact_types() {
    let s = TestServer::start().await;
    let (subject, sd) = s.push_image("app", "v1", "subject").await;
    let empty = s.push_blob("app", b"{}").await;
    // An artifact with artifactType, one without (config media type), an index with and without.
    let sig = image_manifest(
        &empty,
        2,
        &[],
        Some("application/vnd.example.signature"),
        Some((&sd, subject.len())),
    );
    let mut sig_v: serde_json::Value = serde_json::from_slice(&sig).unwrap();
    sig_v["annotations"] = json!({"org.example.signed-by": "alice"});
    let sig = serde_json::to_vec(&sig_v).unwrap();
    let sbom = image_manifest(&empty, 2, &[], None, Some((&sd, subject.len())));
    let idx_typed = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,"artifactType":"application/vnd.example.bundle","manifests":[],"subject":{"mediaType":OCI_MANIFEST,"digest":sd.to_string(),"size":subject.len()}})).unwrap();
    let idx_plain = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[],"subject":{"mediaType":OCI_MANIFEST,"digest":sd.to_string(),"size":subject.len()}})).unwrap();
    let mut want = BTreeSet::new();
    for (body, mt) in [
        (&sig, OCI_MANIFEST),
        (&sbom, OCI_MANIFEST),
        (&idx_typed, OCI_INDEX),
        (&idx_plain, OCI_INDEX),
    ] {
        let d = Algorithm::Sha256.digest_of(body);
        let r = s.push_manifest("app", &d.to_string(), mt, body).await;
        assert_eq!(r.header("oci-subject"), Some(sd.to_string().as_str()));
        want.insert(d.to_string());
    }
    let r = s.get(&format!("/v2/app/referrers/{sd}")).await;
    r.expect(200, None);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    assert_eq!(digests(&v), want);
    for m in v["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        let body = s.get(&format!("/v2/app/manifests/{d}")).await.body;
        assert_eq!(m["size"], body.len());
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(m["mediaType"], doc["mediaType"]);
        let expected_type = doc
            .get("artifactType")
            .cloned()
            .or_else(|| doc.get("config").map(|c| c["mediaType"].clone()));
        assert_eq!(
            m.get("artifactType").cloned(),
            expected_type,
            "artifactType of {d}"
        );
        assert_eq!(
            m.get("annotations").cloned(),
            doc.get("annotations").cloned()
        );
    }
    assert_transcript!("referrers_list", r.transcript());
}

#[tokio::test]
async fn filter_empty_list_bad_digest_and_missing_subject() {
    let s = TestServer::start().await;
    let ghost = Algorithm::Sha256.digest_of(b"subject never pushed");
    let empty = s.push_blob("app", b"{}").await;
    let a = image_manifest(&empty, 2, &[], Some("application/a"), Some((&ghost, 10)));
    let b = image_manifest(&empty, 2, &[], Some("application/b"), Some((&ghost, 10)));
    let da = Algorithm::Sha256.digest_of(&a);
    s.push_manifest("app", &da.to_string(), OCI_MANIFEST, &a)
        .await;
    s.push_manifest("app", "b-artifact", OCI_MANIFEST, &b).await;
    let r = s
        .get(&format!(
            "/v2/app/referrers/{ghost}?artifactType=application/a"
        ))
        .await;
    r.expect(200, None);
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(digests(&r.json()), BTreeSet::from([da.to_string()]));
    assert_transcript!("referrers_filtered", r.transcript());
    let r = s
        .get(&format!(
            "/v2/app/referrers/{ghost}?artifactType=application/none"
        ))
        .await;
    assert_eq!(r.json()["manifests"], json!([]));
    let r = s
        .get(&format!(
            "/v2/app/referrers/{}",
            Algorithm::Sha256.digest_of(b"nobody")
        ))
        .await;
    r.expect(200, None);
    assert_eq!(r.json()["manifests"], json!([]));
    assert!(r.header("oci-filters-applied").is_none());
    // Unknown repository: still an empty index, never a 404.
    s.get(&format!("/v2/never/pushed/referrers/{ghost}"))
        .await
        .expect(200, None);
    s.get("/v2/app/referrers/sha256:nothex")
        .await
        .expect(400, Some("DIGEST_INVALID"));
    // Deleting a referrer removes it from the list.
    s.delete(&format!("/v2/app/manifests/{da}"))
        .await
        .expect(202, None);
    assert_eq!(
        digests(&s.get(&format!("/v2/app/referrers/{ghost}")).await.json()).len(),
        1
    );
}

#[tokio::test]
async fn many_referrers_are_paged_with_link() {
    let s = TestServer::start_with(|c| c.registry.referrers_page_size = 7).await;
    let (subject, sd) = s.push_image("app", "v1", "s").await;
    let empty = s.push_blob("app", b"{}").await;
    let mut want = BTreeSet::new();
    for i in 0..30 {
        let t = if i % 2 == 0 {
            "application/even"
        } else {
            "application/odd"
        };
        let mut m: serde_json::Value = serde_json::from_slice(&image_manifest(
            &empty,
            2,
            &[],
            Some(t),
            Some((&sd, subject.len())),
        ))
        .unwrap();
        m["annotations"] = json!({"i": i.to_string()});
        let body = serde_json::to_vec(&m).unwrap();
        let d = Algorithm::Sha256.digest_of(&body);
        s.push_manifest("app", &d.to_string(), OCI_MANIFEST, &body)
            .await;
        if i % 2 == 0 {
            want.insert(d.to_string());
        }
    }
    for (filter, expect_total) in [("", 30usize), ("?artifactType=application/even", 15)] {
        let mut seen = Vec::new();
        let mut next = Some(format!("/v2/app/referrers/{sd}{filter}"));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            assert!(pages <= 10);
            let r = s.get(&path).await;
            r.expect(200, None);
            let v = r.json();
            seen.extend(digests(&v));
            next = r
                .header("link")
                .map(|l| l[1..l.find('>').unwrap()].to_string());
        }
        let unique: BTreeSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "no duplicates across pages");
        assert_eq!(seen.len(), expect_total);
        if !filter.is_empty() {
            assert_eq!(unique, want);
        }
    }
}

#[tokio::test]
async fn referrers_switch_off_gives_404_and_no_subject_header() {
    let s = TestServer::start_with(|c| c.registry.referrers = false).await;
    let (subject, sd) = s.push_image("app", "v1", "s").await;
    let empty = s.push_blob("app", b"{}").await;
    let sig = image_manifest(
        &empty,
        2,
        &[],
        Some("application/sig"),
        Some((&sd, subject.len())),
    );
    let r = s.push_manifest("app", "sig", OCI_MANIFEST, &sig).await;
    assert!(r.header("oci-subject").is_none(), "{}", r.describe());
    s.get(&format!("/v2/app/referrers/{sd}"))
        .await
        .expect(404, None);
}

/// A client that found no referrers API keeps a tag-schema index; once the API is
/// enabled, the referrers listed there (which carry a subject) are reported.
#[tokio::test]
async fn enabling_referrers_includes_what_the_tag_schema_recorded() {
    let s = TestServer::start_with(|c| c.registry.referrers = false).await;
    let (subject, sd) = s.push_image("app", "v1", "s").await;
    let empty = s.push_blob("app", b"{}").await;
    let sig = image_manifest(
        &empty,
        2,
        &[],
        Some("application/sig"),
        Some((&sd, subject.len())),
    );
    let sig_d = Algorithm::Sha256.digest_of(&sig);
    s.push_manifest("app", &sig_d.to_string(), OCI_MANIFEST, &sig)
        .await;
    let schema_tag = marina::oci::referrers_tag::referrers_tag_for(&sd);
    let fallback = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[{"mediaType":OCI_MANIFEST,"digest":sig_d.to_string(),"size":sig.len(),"artifactType":"application/sig"}]})).unwrap();
    s.push_manifest("app", &schema_tag, OCI_INDEX, &fallback)
        .await;
    let config = {
        let mut c = marina::config::Config::ephemeral(&s.data_dir());
        c.registry.sparse_manifests = false;
        c
    };
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, config).await;
    let r = s.get(&format!("/v2/app/referrers/{sd}")).await;
    r.expect(200, None);
    assert_eq!(digests(&r.json()), BTreeSet::from([sig_d.to_string()]));
}
