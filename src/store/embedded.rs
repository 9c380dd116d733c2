//! How the SQLite store answers the async store traits.
//!
//! Its work is blocking, and most of it is short: a read of a few pages from
//! SQLite's cache takes microseconds, less than a move to another thread.
//! Such reads run in place, on the task that asked. Writes (which wait for the
//! disk) and scans over whole tables move off the async workers with
//! [`offload`], so they never stall the requests sharing a worker.

use tokio::runtime::{Handle, RuntimeFlavor};

use super::listing::{
    ListingStore, ManifestFilter, ManifestSummary, PageRequest, RepositoryRecord, TagRecord,
};
use super::meta::{CatalogPage, ManifestRecord, NewManifest, Page, ReferrerRecord};
use super::{
    GarbagePreview, MetadataStore, NamespaceUsage, Probe, RepositoryUsage, SqliteMetaStore,
    StoreError, StoreTotals, UploadRecord, UploadStore,
};

/// Runs a short read in place.
fn quick<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Runs blocking work where it may block: on a multi-threaded runtime the
/// worker hands its other tasks to another thread first
/// ([`tokio::task::block_in_place`]); elsewhere (a single-threaded runtime, a
/// plain thread) in place.
pub(crate) fn offload<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Awaits a probe from blocking code: inside [`offload`], on a plain thread,
/// or in place (the filesystem's probes are ready at once; the object store's
/// run on its own runtime).
fn wait<T>(fut: futures_util::future::BoxFuture<'_, T>) -> T {
    futures_executor::block_on(fut)
}

/// Implements an async trait for [`SqliteMetaStore`], each method calling the
/// blocking method of the same name through `quick` or `offload`.
macro_rules! delegate {
    ($trait:ident { $( $how:ident fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )* }) => {
        #[async_trait::async_trait]
        impl $trait for SqliteMetaStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    $how(|| SqliteMetaStore::$name(self $(, $arg)*))
                }
            )*
        }
    };
}

delegate!(ListingStore {
    quick fn list_repositories(&self, namespace: &str, req: &PageRequest)
        -> Result<Page<RepositoryRecord>, StoreError>;
    quick fn list_tag_records(&self, repo: &str, digest: Option<&str>, filter: &ManifestFilter, req: &PageRequest)
        -> Result<Option<Page<TagRecord>>, StoreError>;
    quick fn list_manifest_summaries(&self, repo: &str, subject: Option<&str>, filter: &ManifestFilter, req: &PageRequest)
        -> Result<Option<Page<ManifestSummary>>, StoreError>;
});

delegate!(UploadStore {
    offload fn create_upload(&self, upload: &UploadRecord) -> Result<(), StoreError>;
    quick fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError>;
    offload fn advance_upload(&self, upload: &UploadRecord, from_size: u64) -> Result<bool, StoreError>;
    offload fn remove_upload(&self, id: &str) -> Result<bool, StoreError>;
    offload fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError>;
});

/// The methods of [`MetadataStore`] without a probe.
macro_rules! metadata_store {
    ($( $how:ident fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        #[async_trait::async_trait]
        impl MetadataStore for SqliteMetaStore {
            async fn link_blob(
                &self,
                repo: &str,
                digest: &str,
                size: u64,
                present: Probe<'_, bool>,
            ) -> Result<(), StoreError> {
                offload(|| SqliteMetaStore::link_blob(self, repo, digest, size, &|| wait(present())))
            }

            async fn collect_blob(
                &self,
                digest: &str,
                remove: Probe<'_, std::io::Result<()>>,
            ) -> Result<bool, StoreError> {
                offload(|| SqliteMetaStore::collect_blob(self, digest, &mut || wait(remove())))
            }

            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    $how(|| SqliteMetaStore::$name(self $(, $arg)*))
                }
            )*
        }
    };
}

metadata_store! {
    quick fn blob_in_repo(&self, repo: &str, digest: &str) -> Result<Option<u64>, StoreError>;
    quick fn blob_anywhere(&self, digest: &str) -> Result<Option<u64>, StoreError>;
    offload fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError>;
    offload fn prune_links(&self, cutoff: i64, limit: u32) -> Result<u64, StoreError>;
    offload fn unreferenced_blobs(&self, limit: u32) -> Result<Vec<(String, u64)>, StoreError>;
    offload fn tags_by_age(&self, repo: &str) -> Result<Vec<(String, i64)>, StoreError>;
    offload fn delete_tag_pushed_at(&self, repo: &str, tag: &str, pushed_at: i64) -> Result<bool, StoreError>;
    offload fn expendable_untagged(&self, repo: &str, cutoff: i64) -> Result<Vec<String>, StoreError>;
    offload fn delete_expendable(&self, repo: &str, digest: &str, cutoff: i64) -> Result<bool, StoreError>;
    offload fn repository_usage(&self, repo: &str) -> Result<RepositoryUsage, StoreError>;
    offload fn namespace_usage(&self, namespace: &str) -> Result<NamespaceUsage, StoreError>;
    offload fn prune_repositories(&self) -> Result<u64, StoreError>;
    offload fn garbage_preview(&self, cutoff: i64) -> Result<GarbagePreview, StoreError>;
    offload fn compact(&self) -> Result<(), StoreError>;
    offload fn totals(&self) -> Result<Option<StoreTotals>, StoreError>;
    quick fn ping(&self) -> Result<(), StoreError>;
    quick fn repo_exists(&self, repo: &str) -> Result<bool, StoreError>;
    offload fn put_manifest(&self, manifest: &NewManifest<'_>) -> Result<(), StoreError>;
    quick fn get_manifest(&self, repo: &str, reference: &str) -> Result<Option<ManifestRecord>, StoreError>;
    offload fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool, StoreError>;
    offload fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError>;
    quick fn list_tags(&self, repo: &str, last: Option<&str>, n: u32) -> Result<Option<Page<String>>, StoreError>;
    quick fn referrers(&self, repo: &str, subject: &str, artifact_type: Option<&str>, last: Option<&str>, n: u32)
        -> Result<Page<ReferrerRecord>, StoreError>;
    quick fn catalog(&self, last: Option<&str>, n: u32) -> Result<CatalogPage, StoreError>;
}
