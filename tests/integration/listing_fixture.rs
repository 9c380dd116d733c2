//! The listing extension's scenario registry (the issue's example, plus artifacts
//! with subjects and annotations), built through the HTTP API so the push hook runs.

use marina::oci::{Algorithm, Digest};
use serde_json::{json, Value};

use crate::support::{image_manifest, TestServer, OCI_MANIFEST};

pub const SIGNATURE: &str = "application/vnd.example.signature.v1";
pub const SBOM: &str = "application/spdx+json";

/// Digests of the scenario's interesting manifests.
pub struct Scenario {
    /// `hello-world:latest` and `:v1`.
    pub hello: Digest,
    /// Its untagged image.
    pub hello_untagged: Digest,
    /// Signatures of `hello`, by alice (tagged `sig`) and bob.
    pub sig_alice: Digest,
    pub sig_bob: Digest,
    /// SBOM of `hello`.
    pub sbom: Digest,
    /// `org1/artifact-a:v1`, `:v2` and the untagged one.
    pub artifact_v1: Digest,
    pub artifact_v2: Digest,
    pub artifact_untagged: Digest,
}

/// The scenario's repositories in name order. In push-time order `hello-world`
/// comes last: its referrers are the last pushes.
pub const REPOS: [&str; 6] = [
    "hello-world",
    "org1/artifact-a",
    "org2/team-a/image-a1",
    "org2/team-a/image-a2",
    "org2/team-b/image-b1",
    "org3/team-c/image-c1",
];

/// Pushes an image by digest (untagged) and returns its digest.
pub async fn push_untagged(s: &TestServer, repo: &str, seed: &str) -> Digest {
    let (m, d) = build_image(s, repo, seed).await;
    s.push_manifest(repo, &d.to_string(), OCI_MANIFEST, &m)
        .await;
    tick(s);
    d
}

/// Moves the registry's clock on, so push-time order is the push order.
pub fn tick(s: &TestServer) {
    s.clock.advance(std::time::Duration::from_millis(3));
}

async fn build_image(s: &TestServer, repo: &str, seed: &str) -> (Vec<u8>, Digest) {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let layer = format!("layer of {seed}");
    let c = s.push_blob(repo, config.as_bytes()).await;
    let l = s.push_blob(repo, layer.as_bytes()).await;
    let m = image_manifest(&c, config.len(), &[(&l, layer.len())], None, None);
    let d = Algorithm::Sha256.digest_of(&m);
    (m, d)
}

/// Pushes an artifact (empty config, one small blob) under `reference` (a tag, or
/// `None` for by digest), with an artifact type, optional subject and annotations.
pub async fn push_artifact(
    s: &TestServer,
    repo: &str,
    tag: Option<&str>,
    artifact_type: &str,
    subject: Option<&Digest>,
    annotations: &[(&str, &str)],
) -> Digest {
    let empty = s.push_blob(repo, b"{}").await;
    let payload = format!("{artifact_type} payload {annotations:?}");
    let blob = s.push_blob(repo, payload.as_bytes()).await;
    let subject_len = match subject {
        Some(d) => s.get(&format!("/v2/{repo}/manifests/{d}")).await.body.len(),
        None => 0,
    };
    let m = image_manifest(
        &empty,
        2,
        &[(&blob, payload.len())],
        Some(artifact_type),
        subject.map(|d| (d, subject_len)),
    );
    let mut v: Value = serde_json::from_slice(&m).unwrap();
    v["config"]["mediaType"] = json!("application/vnd.oci.empty.v1+json");
    if !annotations.is_empty() {
        let map: serde_json::Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        v["annotations"] = Value::Object(map);
    }
    let m = serde_json::to_vec(&v).unwrap();
    let d = Algorithm::Sha256.digest_of(&m);
    let reference = tag.map(str::to_string).unwrap_or_else(|| d.to_string());
    s.push_manifest(repo, &reference, OCI_MANIFEST, &m).await;
    tick(s);
    d
}

/// Builds the issue's registry:
///
/// ```text
/// hello-world            latest, v1 -> one digest ; an untagged image ; referrers of latest:
///                        two signatures (alice, tagged `sig`; bob) and an SBOM
/// org1/artifact-a        v1, v2 ; untagged (annotated artifacts)
/// org2/team-a/image-a1   v1, v2 ; untagged
/// org2/team-a/image-a2   v1
/// org2/team-b/image-b1   v1, v2 ; untagged
/// org3/team-c/image-c1   v1 ; untagged
/// ```
pub async fn scenario(s: &TestServer) -> Scenario {
    let (_, hello) = s.push_image("hello-world", "latest", "hello").await;
    let (m, _) = build_image(s, "hello-world", "hello").await;
    s.push_manifest("hello-world", "v1", OCI_MANIFEST, &m).await;
    let hello_untagged = push_untagged(s, "hello-world", "hello-old").await;

    let a = |v: &'static str| {
        [
            ("org.opencontainers.image.version", v),
            ("org.example.team", "one"),
        ]
    };
    let artifact_v1 = push_artifact(
        s,
        "org1/artifact-a",
        Some("v1"),
        "application/vnd.example.chart",
        None,
        &a("1"),
    )
    .await;
    let artifact_v2 = push_artifact(
        s,
        "org1/artifact-a",
        Some("v2"),
        "application/vnd.example.chart",
        None,
        &a("2"),
    )
    .await;
    let artifact_untagged = push_artifact(
        s,
        "org1/artifact-a",
        None,
        "application/vnd.example.chart",
        None,
        &a("0"),
    )
    .await;

    s.push_image("org2/team-a/image-a1", "v1", "a1-1").await;
    s.push_image("org2/team-a/image-a1", "v2", "a1-2").await;
    push_untagged(s, "org2/team-a/image-a1", "a1-0").await;
    s.push_image("org2/team-a/image-a2", "v1", "a2-1").await;
    s.push_image("org2/team-b/image-b1", "v1", "b1-1").await;
    s.push_image("org2/team-b/image-b1", "v2", "b1-2").await;
    push_untagged(s, "org2/team-b/image-b1", "b1-0").await;
    s.push_image("org3/team-c/image-c1", "v1", "c1-1").await;
    push_untagged(s, "org3/team-c/image-c1", "c1-0").await;

    let sig_alice = push_artifact(
        s,
        "hello-world",
        Some("sig"),
        SIGNATURE,
        Some(&hello),
        &[
            ("org.example.signer", "alice"),
            ("org.opencontainers.image.created", "2024-01-01T00:00:00Z"),
        ],
    )
    .await;
    let sig_bob = push_artifact(
        s,
        "hello-world",
        None,
        SIGNATURE,
        Some(&hello),
        &[("org.example.signer", "bob")],
    )
    .await;
    let sbom = push_artifact(
        s,
        "hello-world",
        None,
        SBOM,
        Some(&hello),
        &[
            ("org.example.sbom.format", "spdx"),
            ("org.opencontainers.image.created", "2024-02-01T00:00:00Z"),
        ],
    )
    .await;
    Scenario {
        hello,
        hello_untagged,
        sig_alice,
        sig_bob,
        sbom,
        artifact_v1,
        artifact_v2,
        artifact_untagged,
    }
}
