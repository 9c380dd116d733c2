//! A tolerant, read-only view of a pushed manifest, used to validate it and to index
//! what it points at. The stored bytes stay the truth: nothing here is ever
//! serialised back.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::media_types;
use super::Digest;

/// Longest media type (RFC 6838: type and subtype of at most 127 characters).
pub const MAX_MEDIA_TYPE_LEN: usize = 255;

/// What a manifest said its `schemaVersion` was, for an error message.
fn schema_version_found(v: &Option<i64>) -> String {
    match v {
        Some(v) => format!("unsupported schemaVersion {v}"),
        None => "schemaVersion is missing".to_string(),
    }
}

/// Why a manifest body is rejected before its references are even looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not a JSON object, or a field has the wrong JSON type.
    #[error("manifest is not valid JSON: {0}")]
    NotJson(String),
    /// `schemaVersion` is missing or not 2.
    #[error("{}; only 2 is accepted", schema_version_found(.0))]
    SchemaVersion(Option<i64>),
    /// The Content-Type of the request disagrees with the `mediaType` field.
    #[error(
        "Content-Type {content_type:?} does not match the manifest's mediaType {media_type:?}"
    )]
    MediaTypeMismatch {
        /// The request's Content-Type, without parameters.
        content_type: String,
        /// The document's own `mediaType`.
        media_type: String,
    },
    /// A descriptor carries an invalid digest or a negative size.
    #[error("invalid descriptor: {0}")]
    Descriptor(String),
    /// A string the registry records (artifact type, annotation key or value)
    /// holds a NUL character, which no text column of a database can keep.
    #[error("the manifest's {0} contains a NUL character (\\u0000)")]
    NulCharacter(&'static str),
    /// The artifact type (explicit, or the config's media type) is longer than
    /// a media type can be (RFC 6838: 127 characters for type and subtype each).
    #[error("the manifest's artifact type is {0} characters long; a media type has at most 255")]
    ArtifactTypeLength(usize),
    /// A descriptor's size differs from that of the content it names, which
    /// the registry holds: clients that check sizes would fail to pull it.
    #[error("descriptor of {digest} says {declared} bytes, but that content is {held} bytes")]
    SizeMismatch {
        /// The descriptor's digest.
        digest: String,
        /// The size the descriptor gives.
        declared: i64,
        /// The size of the content the registry holds under that digest.
        held: u64,
    },
    /// Neither an image manifest nor an index could be recognised.
    #[error("document is neither an image manifest nor an index")]
    UnknownShape,
    /// The request's Content-Type is not a manifest media type (a manifest is
    /// served back with the type it was pushed with, so it must be one).
    #[error(
        "Content-Type {0:?} is not a manifest media type; send the manifest's mediaType \
         (application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
         or a Docker v2 manifest or manifest list type)"
    )]
    ContentType(String),
}

/// A content descriptor as it appears inside a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: i64,
    /// Alternative download locations (non-distributable content).
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// Artifact type of the referenced content (index entries).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Annotations on the descriptor.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    blobs: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// What the registry needs to know about a manifest: its type, what it references,
/// and the fields the referrers API reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestView {
    /// The media type the manifest is served with (request Content-Type, else `mediaType`).
    pub media_type: String,
    /// True for indexes and manifest lists.
    pub is_index: bool,
    /// `artifactType` as the referrers API reports it: the field itself, else the
    /// config media type for image manifests, else none (indexes).
    pub artifact_type: Option<String>,
    /// The config descriptor of an image manifest.
    pub config: Option<Descriptor>,
    /// Layer (and artifact `blobs`) descriptors.
    pub layers: Vec<Descriptor>,
    /// Child manifests of an index.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    pub subject: Option<Descriptor>,
    /// Top-level annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ManifestView {
    /// Parses `body` pushed with `content_type` (parameters already removed, may be empty).
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        // JSON is UTF-8 throughout; the parser checks only the strings it keeps.
        if let Err(e) = std::str::from_utf8(body) {
            return Err(ManifestError::NotJson(format!("not UTF-8: {e}")));
        }
        let raw: RawManifest = serde_json::from_slice(body).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("digest") {
                ManifestError::Descriptor(msg)
            } else {
                ManifestError::NotJson(msg)
            }
        })?;
        let content_type = content_type.filter(|c| !c.is_empty());
        if let Some(ct) = content_type.filter(|ct| !is_manifest_type(ct)) {
            return Err(ManifestError::ContentType(ct.to_string()));
        }
        if let (Some(ct), Some(mt)) = (content_type, raw.media_type.as_deref()) {
            if ct != mt && is_manifest_type(ct) {
                return Err(ManifestError::MediaTypeMismatch {
                    content_type: ct.to_string(),
                    media_type: mt.to_string(),
                });
            }
        }
        if raw.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion(raw.schema_version));
        }
        let media_type = content_type
            .map(str::to_string)
            .or(raw.media_type.clone())
            .unwrap_or_else(|| {
                if raw.manifests.is_some() {
                    media_types::OCI_INDEX.to_string()
                } else {
                    media_types::OCI_MANIFEST.to_string()
                }
            });
        let declared = raw.media_type.as_deref().unwrap_or(&media_type);
        let is_index =
            media_types::is_index(declared) || (raw.manifests.is_some() && raw.config.is_none());
        if !is_index && raw.config.is_none() && raw.blobs.is_none() {
            return Err(ManifestError::UnknownShape);
        }
        let mut layers = raw.layers.unwrap_or_default();
        layers.extend(raw.blobs.unwrap_or_default());
        let all = raw
            .config
            .iter()
            .chain(&layers)
            .chain(raw.manifests.iter().flatten())
            .chain(&raw.subject);
        if let Some(bad) = all.into_iter().find(|d| d.size < 0) {
            return Err(ManifestError::Descriptor(format!(
                "negative size for {}",
                bad.digest
            )));
        }
        // Empty counts as missing: an image manifest's artifact type is then
        // its config's media type, an index has none (spec, "Listing
        // referrers").
        let artifact_type = raw
            .artifact_type
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                if is_index {
                    None
                } else {
                    raw.config.as_ref().map(|c| c.media_type.clone())
                }
            })
            .filter(|t| !t.is_empty());
        // Stored and indexed as text by the metadata stores (PostgreSQL refuses
        // NUL in text): refused here, the same on every backend.
        if let Some(t) = &artifact_type {
            if t.contains('\0') {
                return Err(ManifestError::NulCharacter("artifact type"));
            }
            if t.len() > MAX_MEDIA_TYPE_LEN {
                return Err(ManifestError::ArtifactTypeLength(t.len()));
            }
        }
        let annotations = raw.annotations.unwrap_or_default();
        if annotations.keys().any(|k| k.contains('\0')) {
            return Err(ManifestError::NulCharacter("annotation key"));
        }
        if annotations.values().any(|v| v.contains('\0')) {
            return Err(ManifestError::NulCharacter("annotation value"));
        }
        Ok(ManifestView {
            media_type,
            is_index,
            artifact_type,
            config: raw.config,
            layers,
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            annotations,
        })
    }

    /// Blobs that must already be in the repository for the manifest to be accepted.
    /// Non-distributable layers (foreign media types or `urls`) are exempt.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(
            self.layers
                .iter()
                .filter(|d| !media_types::is_non_distributable(&d.media_type) && d.urls.is_none()),
        )
    }
}

/// Media types that name a manifest document (used to decide whether a
/// Content-Type/`mediaType` disagreement is a real conflict).
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        media_types::OCI_MANIFEST
            | media_types::OCI_INDEX
            | media_types::DOCKER_MANIFEST
            | media_types::DOCKER_MANIFEST_LIST
    )
}

/// Strips parameters (`; charset=…`) and surrounding whitespace from a Content-Type.
pub fn bare_content_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const L1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{L1}","size":0}}]{extra}}}"#,
            media_types::OCI_MANIFEST
        )
    }

    #[test]
    fn image_manifest_falls_back_to_config_media_type() {
        let v = ManifestView::parse(image("").as_bytes(), Some(media_types::OCI_MANIFEST)).unwrap();
        assert!(!v.is_index);
        assert_eq!(
            v.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(v.required_blobs().count(), 2);
    }

    /// NUL in what the stores keep as text is refused, whatever the backend
    /// (PostgreSQL answered 500 for it).
    #[test]
    fn a_nul_in_an_artifact_type_or_annotation_is_refused() {
        for (extra, field) in [
            (r#","artifactType":"x/y\u0000""#, "artifact type"),
            (r#","annotations":{"k\u0000":"v"}"#, "annotation key"),
            (r#","annotations":{"k":"a\u0000b"}"#, "annotation value"),
        ] {
            let e = ManifestView::parse(image(extra).as_bytes(), None).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("the manifest's {field} contains a NUL character (\\u0000)")
            );
        }
        assert!(
            ManifestView::parse(image(r#","annotations":{"k":"a\u0001b"}"#).as_bytes(), None)
                .is_ok()
        );
    }

    #[test]
    fn explicit_artifact_type_wins() {
        let v = ManifestView::parse(
            image(r#","artifactType":"application/x-sbom""#).as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(v.artifact_type.as_deref(), Some("application/x-sbom"));
    }

    /// Regression: `"artifactType": ""` was listed by the referrers API as
    /// `""` instead of the config's media type (image) or nothing (index).
    #[test]
    fn an_empty_artifact_type_counts_as_missing() {
        let v = ManifestView::parse(image(r#","artifactType":"""#).as_bytes(), None).unwrap();
        assert_eq!(
            v.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"","manifests":[]}}"#,
            media_types::OCI_INDEX
        );
        let v = ManifestView::parse(body.as_bytes(), None).unwrap();
        assert_eq!(v.artifact_type, None);
    }

    #[test]
    fn schema_version_errors_read_as_text() {
        for (body, said) in [
            (
                r#"{"schemaVersion":1}"#,
                "unsupported schemaVersion 1; only 2 is accepted",
            ),
            (
                r#"{"layers":[]}"#,
                "schemaVersion is missing; only 2 is accepted",
            ),
        ] {
            let e = ManifestView::parse(body.as_bytes(), None).unwrap_err();
            assert_eq!(e.to_string(), said);
        }
    }

    #[test]
    fn index_without_artifact_type_has_none() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media_types::OCI_INDEX
        );
        let v = ManifestView::parse(body.as_bytes(), Some(media_types::OCI_INDEX)).unwrap();
        assert!(v.is_index);
        assert_eq!(v.artifact_type, None);
    }

    #[test]
    fn rejections() {
        assert!(matches!(
            ManifestView::parse(b"[]", None),
            Err(ManifestError::NotJson(_))
        ));
        assert!(matches!(
            ManifestView::parse(b"{\"schemaVersion\":1}", None),
            Err(ManifestError::SchemaVersion(Some(1)))
        ));
        assert!(matches!(
            ManifestView::parse(image("").as_bytes(), Some(media_types::OCI_INDEX)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        let bad_digest = image("").replace(CFG, "sha256:nothex");
        assert!(matches!(
            ManifestView::parse(bad_digest.as_bytes(), None),
            Err(ManifestError::Descriptor(_))
        ));
    }

    #[test]
    fn non_distributable_layers_are_not_required() {
        let body = image("").replace(
            r#""mediaType":"application/vnd.oci.image.layer.v1.tar","#,
            r#""mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","urls":["https://example.com/l"],"#,
        );
        let v = ManifestView::parse(body.as_bytes(), None).unwrap();
        assert_eq!(v.required_blobs().count(), 1);
    }

    #[test]
    fn content_type_parameters_are_stripped() {
        assert_eq!(
            bare_content_type("application/json; charset=utf-8"),
            "application/json"
        );
    }
}
