//! The vocabulary of the OCI Distribution Specification, independent of HTTP and storage.
//!
//! Everything here is pure: newtypes that validate when built (`RepoName`, `Tag`,
//! `Digest`, `Reference`), the spec's error codes, media types, a tolerant view of
//! manifests used to validate and index them, and the referrers tag schema. Every
//! other layer (store, registry, api, harness) speaks these types.

pub(crate) mod digest;
pub(crate) mod error_code;
pub(crate) mod manifest;
pub(crate) mod media_types;
pub(crate) mod name;
pub(crate) mod reference;
pub mod referrers_tag;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use error_code::{ErrorCode, ErrorEnvelope, ErrorInfo};
pub use manifest::{Descriptor, ManifestError, ManifestView};
pub use name::{NameError, RepoName, Tag};
pub use reference::Reference;

#[cfg(test)]
mod pattern_tests;
