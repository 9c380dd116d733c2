//! What can go wrong in a registry operation, in the spec's terms but without HTTP.

use crate::oci::{DigestError, ManifestError, NameError};
use crate::store::StoreError;

/// A failed registry operation. The api layer maps each variant to a status code and
/// error code in one place (`api::error`).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The repository has never held anything.
    #[error("repository {0} is not known to this registry")]
    NameUnknown(String),
    /// A name, tag or reference breaks the spec's grammar.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A digest is malformed or of an unsupported algorithm.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Uploaded content does not match the digest the client gave.
    #[error("content digest {actual} does not match the requested digest {expected}")]
    DigestMismatch {
        /// What the client said.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The blob is not in this repository.
    #[error("blob {0} is not known in this repository")]
    BlobUnknown(String),
    /// The manifest (tag or digest) is not in this repository.
    #[error("manifest {0} is not known in this repository")]
    ManifestUnknown(String),
    /// No such upload session (never existed, finished, cancelled or expired).
    #[error("upload session {0} is not known")]
    UploadUnknown(String),
    /// A chunk does not start where the upload currently ends.
    #[error("chunk starts at {got} but the upload holds {size} bytes")]
    RangeNotSatisfiable {
        /// Bytes the session holds.
        size: u64,
        /// Where the chunk claimed to start.
        got: u64,
    },
    /// A chunk's Content-Range ends before it starts.
    #[error("Content-Range {start}-{end} ends before it starts")]
    RangeInverted {
        /// Bytes the session holds.
        size: u64,
        /// The range's first byte.
        start: u64,
        /// The range's last byte.
        end: u64,
    },
    /// Content-Length or Content-Range disagrees with the bytes received.
    #[error("{0}")]
    SizeInvalid(String),
    /// The request body ended early or could not be read.
    #[error("upload body could not be read: {0}")]
    BodyIncomplete(String),
    /// The manifest document is unacceptable.
    #[error(transparent)]
    ManifestInvalid(#[from] ManifestError),
    /// The manifest references content the repository does not hold.
    #[error("manifest references unknown blobs or manifests: {}", .0.join(", "))]
    ManifestBlobUnknown(Vec<String>),
    /// The manifest is larger than the configured limit.
    #[error("manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge {
        /// Bytes received (at least).
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The operation is switched off by the operator.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The referrers API is switched off (answered 404 so clients fall back).
    #[error("the referrers API is disabled on this registry")]
    ReferrersDisabled,
    /// The storage is full (no space, or over quota); nothing was stored. The
    /// client gets a 507 and may retry once space is freed.
    #[error("insufficient storage: {0}")]
    StorageFull(String),
    /// A push would have eaten into the free space kept for deletes and
    /// collection (`min_free_mib`); nothing was stored. Answered as a full
    /// disk is, saying which of the two it is.
    #[error("insufficient storage: {0}")]
    ReserveKept(String),
    /// The garbage collector removed a blob's bytes while an upload or mount of
    /// the same content was being linked (it had been unreferenced past its grace
    /// period); nothing was linked, and the client should push it again.
    #[error("blob {0} was garbage-collected while it was being stored; push it again")]
    Collected(String),
    /// A write to a name the operator made read-only (a pull-through cache).
    #[error("{0}")]
    Denied(String),
    /// A request's `?ns=` names no upstream of this pull-through cache.
    #[error("namespace {0} is not proxied by this registry")]
    NamespaceUnknown(String),
    /// The upstream of a pull-through cache could not supply what was asked.
    #[error("upstream {url}: {error}")]
    Upstream {
        /// The upstream's base URL.
        url: String,
        /// What went wrong.
        error: crate::upstream::UpstreamError,
    },
    /// The upstream sent content that is not what it claims (wrong digest or
    /// size, invalid manifest); nothing was stored.
    #[error("upstream {url} sent bad content: {why}")]
    UpstreamCorrupt {
        /// The upstream's base URL.
        url: String,
        /// What was wrong.
        why: String,
    },
    /// Storage failed; the cause is logged, the client gets a 500.
    #[error("storage failure: {0}")]
    Internal(String),
    /// A storage backend (the database, the bucket) cannot be reached or did
    /// not answer in time; the client gets a 503 and may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The process or the system ran out of file descriptors; nothing was
    /// stored. The client gets a 503 and may retry once load falls.
    #[error("out of file handles: {0}")]
    OutOfHandles(String),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::MissingReferences(v) => RegistryError::ManifestBlobUnknown(v),
            StoreError::Vanished(d) => RegistryError::Collected(d),
            StoreError::Unavailable(why) => RegistryError::Unavailable(why),
            e if e.is_full() => {
                RegistryError::StorageFull("the metadata database cannot grow".into())
            }
            other => RegistryError::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        if let Some(reserve) = crate::store::reserve_kept(&e) {
            RegistryError::ReserveKept(reserve.to_string())
        } else if is_storage_full(&e) {
            RegistryError::StorageFull(e.to_string())
        } else if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
            RegistryError::OutOfHandles(e.to_string())
        } else if crate::store::is_unavailable(&e) {
            RegistryError::Unavailable(e.to_string())
        } else {
            RegistryError::Internal(e.to_string())
        }
    }
}

/// Whether an I/O error says the disk is full or the quota used up.
pub(crate) fn is_storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
