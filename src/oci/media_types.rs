//! Media types the registry recognises when validating and indexing manifests.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest (what docker, skopeo and podman push by default).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI empty descriptor's media type (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Every manifest media type a client pulling images asks for, as an `Accept` value.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// The name of Marina's registry extension (`/v2/_marina/…`, `/v2/<name>/_marina/…`).
pub const MARINA_EXTENSION: &str = "_marina";
/// `_marina`: a page of repositories.
pub const MARINA_REPOSITORIES_V1: &str = "application/vnd.marina.list.repositories.v1+json";
/// `_marina`: a page of tags.
pub const MARINA_TAGS_V1: &str = "application/vnd.marina.list.tags.v1+json";
/// `_marina`: a page of manifests.
pub const MARINA_MANIFESTS_V1: &str = "application/vnd.marina.list.manifests.v1+json";
/// `_marina`: a page of referrers.
pub const MARINA_REFERRERS_V1: &str = "application/vnd.marina.list.referrers.v1+json";

/// Layer media types whose blobs need not be in the registry (non-distributable).
pub fn is_non_distributable(media_type: &str) -> bool {
    media_type.contains(".nondistributable.") || media_type.contains(".foreign.")
}

/// Whether this media type names an index-like document (children are manifests).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}
