//! Content the checks push: random blobs, image manifests, artifacts and indexes,
//! built as exact bytes (the harness compares what comes back byte for byte).

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::oci::{media_types, Algorithm, Digest};

/// Media type of the configs the harness pushes for "images".
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the layers the harness pushes.
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Config media type of artifacts without `artifactType` (to test its derivation).
pub const ARTIFACT_CONFIG_TYPE: &str = "application/vnd.marina.check.config.v1+json";

/// A descriptor of content the harness pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

impl Desc {
    /// Describes `bytes` with the given media type and sha256.
    pub fn of(media_type: &str, bytes: &[u8]) -> Desc {
        Desc {
            media_type: media_type.to_string(),
            digest: Algorithm::Sha256.digest_of(bytes),
            size: bytes.len() as u64,
        }
    }

    /// The descriptor as JSON.
    pub fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.size})
    }
}

/// Deterministic pseudo-random bytes (splitmix64), so failures can be reproduced.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A config blob unique to `label`.
pub fn config_blob(label: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "marina-check": label}))
            .expect("json"),
    )
}

/// Optional parts of a manifest.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `artifactType`.
    pub artifact_type: Option<String>,
    /// `subject`.
    pub subject: Option<Desc>,
    /// `annotations`.
    pub annotations: Vec<(String, String)>,
}

fn add_extras(m: &mut Map<String, Value>, extras: &Extras) {
    if let Some(a) = &extras.artifact_type {
        m.insert("artifactType".into(), json!(a));
    }
    if let Some(s) = &extras.subject {
        m.insert("subject".into(), s.to_json());
    }
    if !extras.annotations.is_empty() {
        let a: Map<String, Value> = extras
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("annotations".into(), Value::Object(a));
    }
}

/// An OCI image manifest.
pub fn image_manifest(config: &Desc, layers: &[Desc], extras: &Extras) -> Bytes {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), json!(2));
    m.insert("mediaType".into(), json!(media_types::OCI_MANIFEST));
    m.insert("config".into(), config.to_json());
    m.insert(
        "layers".into(),
        Value::Array(layers.iter().map(Desc::to_json).collect()),
    );
    add_extras(&mut m, extras);
    Bytes::from(serde_json::to_vec(&Value::Object(m)).expect("json"))
}

/// An OCI image index.
pub fn index_manifest(manifests: &[Desc], extras: &Extras) -> Bytes {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), json!(2));
    m.insert("mediaType".into(), json!(media_types::OCI_INDEX));
    m.insert(
        "manifests".into(),
        Value::Array(manifests.iter().map(Desc::to_json).collect()),
    );
    add_extras(&mut m, extras);
    Bytes::from(serde_json::to_vec(&Value::Object(m)).expect("json"))
}

/// The `Accept` header the harness sends on manifest requests.
pub fn manifest_accept() -> String {
    [
        media_types::OCI_MANIFEST,
        media_types::OCI_INDEX,
        media_types::DOCKER_MANIFEST,
        media_types::DOCKER_MANIFEST_LIST,
    ]
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_carry_extras() {
        let c = Desc::of(CONFIG_TYPE, &config_blob("x"));
        let subject = Desc::of(media_types::OCI_MANIFEST, b"s");
        let m = image_manifest(
            &c,
            &[],
            &Extras {
                artifact_type: Some("application/x".into()),
                subject: Some(subject.clone()),
                annotations: vec![("k".into(), "v".into())],
            },
        );
        let v = crate::oci::ManifestView::parse(&m, Some(media_types::OCI_MANIFEST)).unwrap();
        assert_eq!(v.artifact_type.as_deref(), Some("application/x"));
        assert_eq!(v.subject.unwrap().digest, subject.digest);
        assert_eq!(v.annotations.get("k").map(String::as_str), Some("v"));
        let i = index_manifest(&[c], &Extras::default());
        assert!(crate::oci::ManifestView::parse(&i, None).unwrap().is_index);
    }

    #[test]
    fn pseudo_random_is_deterministic() {
        assert_eq!(pseudo_random(7, 33), pseudo_random(7, 33));
        assert_ne!(pseudo_random(7, 33), pseudo_random(8, 33));
        assert_eq!(pseudo_random(1, 5).len(), 5);
    }
}
