//! What the client lists, in the shapes of the listing extension's v1 bodies (which
//! it deserialises directly, ignoring fields it does not know). Fields the standard
//! API cannot provide (push times) are `None` in fallback answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// Full name.
    pub name: String,
    /// Last push (RFC 3339), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// The tag.
    pub name: String,
    /// Digest of the manifest it points at.
    pub digest: String,
    /// Last push (RFC 3339), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
}

/// A manifest (or referrer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Digest.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Artifact type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Size in bytes.
    pub size: i64,
    /// Tags pointing at it, when known.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Manifests of the repository holding it (an index), when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
    /// Last push (RFC 3339), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
    /// Subject digest, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Annotations, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A page of the repository list.
#[derive(Debug, Deserialize)]
pub(crate) struct RepositoryPage {
    pub repositories: Vec<Repository>,
}

/// A page of the tag list.
#[derive(Debug, Deserialize)]
pub(crate) struct TagPage {
    pub tags: Vec<Tag>,
}

/// A page of the manifest or referrer list.
#[derive(Debug, Deserialize)]
pub(crate) struct ManifestPage {
    pub manifests: Vec<Manifest>,
}
