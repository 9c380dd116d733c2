//! The listing extension's v1 response bodies, as OpenAPI schemas.
//!
//! Compatibility rule: within v1 fields are only ever added, never removed or
//! retyped, and clients ignore fields they do not know; a registry may add its own
//! fields to any object. A change that breaks this gets a new media type (`v2`),
//! which clients ask for with `Accept`.

use std::collections::BTreeMap;

use poem_openapi::Object;

use super::payload::MediaType;
use crate::oci::media_types;
use crate::registry::listing::{ManifestSummary, RepositoryRecord, TagRecord};
use crate::timefmt::rfc3339_millis as rfc3339;

/// Media type of a repository list.
pub struct RepositoriesV1;
impl MediaType for RepositoriesV1 {
    const MEDIA_TYPE: &'static str = media_types::MARINA_REPOSITORIES_V1;
}

/// Media type of a tag list.
pub struct TagsV1;
impl MediaType for TagsV1 {
    const MEDIA_TYPE: &'static str = media_types::MARINA_TAGS_V1;
}

/// Media type of a manifest list.
pub struct ManifestsV1;
impl MediaType for ManifestsV1 {
    const MEDIA_TYPE: &'static str = media_types::MARINA_MANIFESTS_V1;
}

/// Media type of a referrer list.
pub struct ReferrersV1;
impl MediaType for ReferrersV1 {
    const MEDIA_TYPE: &'static str = media_types::MARINA_REFERRERS_V1;
}

/// A repository (`application/vnd.marina.list.repositories.v1+json` entries).
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaRepositoryEntry", rename_all = "camelCase")]
pub struct RepositoryEntry {
    /// Full repository name.
    pub name: String,
    /// Last manifest push into the repository (RFC 3339, UTC).
    pub pushed_at: String,
    /// Bytes of the blobs it holds (layers and configs; a blob shared with other
    /// repositories counts in each).
    #[oai(skip_serializing_if_is_none)]
    pub bytes: Option<u64>,
    /// Bytes of the blobs no other repository holds: what deleting it gives back.
    #[oai(skip_serializing_if_is_none)]
    pub unique_bytes: Option<u64>,
}

/// The blobs held under the listed namespace (or the whole registry), each
/// counted once.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaUsage", rename_all = "camelCase")]
pub struct Usage {
    /// Repositories holding something.
    pub repositories: u64,
    /// Distinct blobs.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// One page of repositories.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaRepositoryList", rename_all = "camelCase")]
pub struct RepositoryList {
    /// The namespace listed (absent for the whole registry).
    #[oai(skip_serializing_if_is_none)]
    pub namespace: Option<String>,
    /// The repositories of this page.
    pub repositories: Vec<RepositoryEntry>,
    /// What the namespace (or registry) holds in all, each blob counted once;
    /// only for callers that may pull every repository.
    #[oai(skip_serializing_if_is_none)]
    pub usage: Option<Usage>,
}

/// A tag (`application/vnd.marina.list.tags.v1+json` entries).
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaTagEntry", rename_all = "camelCase")]
pub struct TagEntry {
    /// The tag.
    pub name: String,
    /// Digest of the manifest it points at.
    pub digest: String,
    /// When the tag was last pushed (RFC 3339, UTC).
    pub pushed_at: String,
}

/// One page of tags.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaTagList", rename_all = "camelCase")]
pub struct TagList {
    /// The repository.
    pub repository: String,
    /// Only tags pointing at this digest were listed (when asked).
    #[oai(skip_serializing_if_is_none)]
    pub digest: Option<String>,
    /// The tags of this page.
    pub tags: Vec<TagEntry>,
}

/// A manifest (entries of manifest and referrer lists).
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaManifestEntry", rename_all = "camelCase")]
pub struct ManifestEntry {
    /// Digest of the manifest.
    pub digest: String,
    /// Media type it is served with.
    pub media_type: String,
    /// Artifact type: the manifest's own, else its config's media type (absent for
    /// an index without one).
    #[oai(skip_serializing_if_is_none)]
    pub artifact_type: Option<String>,
    /// Size of the manifest in bytes.
    pub size: i64,
    /// Tags pointing at it, in lexical order (empty when untagged).
    pub tags: Vec<String>,
    /// Manifests of the repository that reference it (an index holding it; at
    /// most five): an untagged manifest listed here is part of an image.
    #[oai(skip_serializing_if_is_empty)]
    pub held_by: Vec<String>,
    /// When it was last pushed (RFC 3339, UTC).
    pub pushed_at: String,
    /// Digest of the manifest it refers to, if any.
    #[oai(skip_serializing_if_is_none)]
    pub subject: Option<String>,
    /// Its annotations.
    #[oai(skip_serializing_if_is_none)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One page of manifests.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaManifestList", rename_all = "camelCase")]
pub struct ManifestList {
    /// The repository.
    pub repository: String,
    /// The manifests of this page.
    pub manifests: Vec<ManifestEntry>,
}

/// One page of the referrers of a subject.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MarinaReferrerList", rename_all = "camelCase")]
pub struct ReferrerList {
    /// The repository.
    pub repository: String,
    /// Digest of the subject.
    pub subject: String,
    /// The referrers of this page.
    pub manifests: Vec<ManifestEntry>,
}

impl From<RepositoryRecord> for RepositoryEntry {
    fn from(r: RepositoryRecord) -> Self {
        RepositoryEntry {
            name: r.name,
            pushed_at: rfc3339(r.pushed_at),
            bytes: None,
            unique_bytes: None,
        }
    }
}

impl From<TagRecord> for TagEntry {
    fn from(t: TagRecord) -> Self {
        TagEntry {
            name: t.name,
            digest: t.digest,
            pushed_at: rfc3339(t.pushed_at),
        }
    }
}

impl From<ManifestSummary> for ManifestEntry {
    fn from(m: ManifestSummary) -> Self {
        ManifestEntry {
            digest: m.digest,
            media_type: m.media_type,
            artifact_type: m.artifact_type,
            size: m.size,
            tags: m.tags,
            held_by: m.held_by,
            pushed_at: rfc3339(m.pushed_at),
            subject: m.subject,
            annotations: m
                .annotations
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
        }
    }
}
