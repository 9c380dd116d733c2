//! Storage: content-addressed blobs on the filesystem and metadata in SQLite.
//!
//! The store knows nothing of HTTP or of the spec's status codes. It offers two
//! narrow pieces: [`BlobStore`] (bytes by digest, staging files for uploads, crash-safe
//! publication) and [`MetaStore`] (repositories, blob links, manifests, tags and the
//! subject index, every list paged by keyset). The registry layer composes them.

pub mod blobs;
pub mod meta;
mod schema;

pub use blobs::{BlobStore, StagedBlob};
pub use meta::{
    CatalogPage, ManifestRecord, MetaStore, NewManifest, Page, ReferrerRecord, StoreError,
};
