//! Manifest push, pull and delete: validation against the spec, then one store
//! transaction.

use futures_util::{stream, StreamExt, TryStreamExt};

use super::{Registry, RegistryError};
use crate::oci::manifest::bare_content_type;
use crate::oci::{
    Algorithm, Descriptor, Digest, ManifestError, ManifestView, Reference, RepoName, Tag,
};
use crate::store::{ManifestRecord, NewManifest};

/// Size lookups a manifest push keeps in flight at once.
const SIZE_LOOKUPS_AT_ONCE: usize = 8;

/// What a successful manifest PUT reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// Every tag now pointing at it (for `OCI-Tag`).
    pub tags: Vec<Tag>,
    /// The subject, when the manifest has one and the referrers API is on (for `OCI-Subject`).
    pub subject: Option<Digest>,
}

impl Registry {
    /// Stores a manifest under `reference` plus any extra `tags` (the `?tag=` parameters).
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Vec<u8>,
        tags: Vec<Tag>,
    ) -> Result<PushedManifest, RegistryError> {
        self.writable(repo)?;
        let sparse = self.config.sparse_manifests;
        self.store_manifest(repo, reference, content_type, bytes, tags, sparse)
            .await
    }

    /// Validates and stores a manifest; with `sparse`, its blobs and children
    /// need not be held (the pull-through cache fetches them when asked).
    pub(super) async fn store_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Vec<u8>,
        tags: Vec<Tag>,
        sparse: bool,
    ) -> Result<PushedManifest, RegistryError> {
        let limit = self.config.max_manifest_bytes;
        if bytes.len() as u64 > limit {
            return Err(RegistryError::ManifestTooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = expected.algorithm().digest_of(&bytes);
                if &actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        expected: expected.to_string(),
                        actual: actual.to_string(),
                    });
                }
                actual
            }
            Reference::Tag(_) => Algorithm::Sha256.digest_of(&bytes),
        };
        let content_type = content_type.map(bare_content_type);
        let view = ManifestView::parse(&bytes, content_type)?;
        let mut all_tags = tags;
        if let Reference::Tag(t) = reference {
            all_tags.insert(0, t.clone());
        }
        let mut seen = std::collections::HashSet::new();
        all_tags.retain(|t| seen.insert(t.clone()));
        let (required_blobs, required_manifests) = if sparse {
            (vec![], vec![])
        } else {
            (
                view.required_blobs()
                    .map(|d| d.digest.to_string())
                    .collect(),
                view.manifests
                    .iter()
                    .map(|d| d.digest.to_string())
                    .collect(),
            )
        };
        self.check_sizes(repo, &view).await?;
        // What keeps blobs and child manifests alive for the garbage collector,
        // whether or not sparse manifests let them be missing now.
        let references: Vec<String> = view
            .config
            .iter()
            .chain(view.layers.iter())
            .chain(view.manifests.iter())
            .map(|d| d.digest.to_string())
            .collect();
        let annotations = (!view.annotations.is_empty())
            .then(|| serde_json::to_string(&view.annotations).unwrap_or_default());
        let subject = view.subject.as_ref().map(|s| s.digest.clone());
        let digest_s = digest.to_string();
        let tag_strings: Vec<String> = all_tags.iter().map(|t| t.to_string()).collect();
        let subject_s = subject.as_ref().map(|s| s.to_string());
        self.meta
            .put_manifest(&NewManifest {
                repo: repo.as_str(),
                digest: &digest_s,
                media_type: &view.media_type,
                artifact_type: view.artifact_type.as_deref(),
                subject: subject_s.as_deref(),
                annotations,
                bytes: &bytes,
                tags: &tag_strings,
                required_blobs,
                required_manifests,
                references,
            })
            .await?;
        Ok(PushedManifest {
            digest,
            tags: all_tags,
            subject: subject.filter(|_| self.config.referrers),
        })
    }

    /// Refuses a manifest whose blob or child descriptors give sizes other
    /// than those of the content this repository holds under their digests.
    /// Content not held is left to the presence check (or to sparse mode).
    /// The lookups run a few at a time: on PostgreSQL each is a round trip.
    async fn check_sizes(&self, repo: &RepoName, view: &ManifestView) -> Result<(), RegistryError> {
        let described: Vec<&Descriptor> = view.required_blobs().chain(&view.manifests).collect();
        let children = view.manifests.len();
        let mut lookups = Vec::with_capacity(described.len());
        for (i, d) in described.iter().enumerate() {
            let (meta, name) = (self.meta.clone(), repo.to_string());
            let (digest, child) = (d.digest.to_string(), i >= described.len() - children);
            lookups.push(async move {
                if child {
                    let m = meta.get_manifest(&name, &digest).await?;
                    Ok::<_, RegistryError>((i, m.map(|m| m.bytes.len() as u64)))
                } else {
                    Ok((i, meta.blob_in_repo(&name, &digest).await?))
                }
            });
        }
        let mut held = stream::iter(lookups).buffered(SIZE_LOOKUPS_AT_ONCE);
        while let Some((i, size)) = held.try_next().await? {
            let d = described[i];
            if let Some(size) = size.filter(|&s| s as i64 != d.size) {
                return Err(RegistryError::ManifestInvalid(
                    ManifestError::SizeMismatch {
                        digest: d.digest.to_string(),
                        declared: d.size,
                        held: size,
                    },
                ));
            }
        }
        Ok(())
    }

    /// A manifest by tag or digest.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestRecord, RegistryError> {
        let r = reference.to_string();
        match self.meta.get_manifest(repo.as_str(), &r).await? {
            Some(m) => Ok(m),
            None => {
                self.require_repo(repo).await?;
                Err(RegistryError::ManifestUnknown(reference.to_string()))
            }
        }
    }

    /// Deletes a manifest by digest (with its tags) or a single tag.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(), RegistryError> {
        let name = repo.as_str();
        self.writable(repo)?;
        let deleted = match reference {
            Reference::Digest(d) => {
                if !self.config.delete.manifests {
                    return Err(RegistryError::Unsupported(
                        "manifest deletion is disabled on this registry",
                    ));
                }
                self.meta.delete_manifest(name, &d.to_string()).await?
            }
            Reference::Tag(t) => {
                if !self.config.delete.tags {
                    return Err(RegistryError::Unsupported(
                        "tag deletion is disabled on this registry",
                    ));
                }
                self.meta.delete_tag(name, &t.to_string()).await?
            }
        };
        if deleted {
            Ok(())
        } else {
            self.require_repo(repo).await?;
            Err(RegistryError::ManifestUnknown(reference.to_string()))
        }
    }
}
