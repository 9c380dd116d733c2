//! How the SQLite store answers the async store traits.
//!
//! Its work is blocking, and most of it is short: a read of a few pages from
//! SQLite's cache takes microseconds, less than a move to another thread.
//! Such reads run in place, on the task that asked. Writes queue for SQLite's
//! one writing connection: they are handed to its writer thread ([`apart`],
//! with a clone of the store and owned arguments), which commits the writes
//! queued together as one batch, so a worker never waits for the connection
//! while requests it could serve wait for it. Scans over whole tables
//! (garbage collection, usage) and writes that call back into the caller run
//! where they are with [`offload`]. (Measured: writes in place or with
//! `block_in_place` pushed tags at 0.7–0.8× the rate of the blocking pool;
//! the writer thread pushed small blobs at 1.5× its rate.)

use std::cell::Cell;

use tokio::runtime::{Handle, RuntimeFlavor};

use super::listing::{
    ListingStore, ManifestFilter, ManifestSummary, PageRequest, RepositoryRecord, TagRecord,
};
use super::meta::{CatalogPage, ManifestRecord, NewManifest, Page, ReferrerRecord};
use super::{
    GarbagePreview, MetadataStore, NamespaceUsage, Probe, RepositoryUsage, SqliteMetaStore,
    StoreError, StoreTotals, UploadRecord, UploadStore,
};

thread_local! {
    /// Set while a thread runs work already moved off the async runtime.
    static OFF_RUNTIME: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` marked as off the async runtime (on a blocking-pool thread): the
/// store's blocking work inside it runs in place, instead of moving once more to
/// another thread. One hop can then carry a whole step (stage, publish, record).
pub(crate) fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            OFF_RUNTIME.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(OFF_RUNTIME.with(|c| c.replace(true)));
    f()
}

fn is_off_runtime() -> bool {
    OFF_RUNTIME.with(Cell::get)
}

/// Runs a short read in place.
fn quick<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Runs blocking work where it may block: on a multi-threaded runtime the
/// worker hands its other tasks to another thread first
/// ([`tokio::task::block_in_place`]); elsewhere (a single-threaded runtime, a
/// plain thread) in place.
pub(crate) fn offload<T>(f: impl FnOnce() -> T) -> T {
    if is_off_runtime() {
        return f();
    }
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Whether a write waits for the log's sync (see [`SqliteMetaStore::write`]).
const DURABLE: bool = true;
/// ... or only for its commit ([`SqliteMetaStore::write_transient`]).
const TRANSIENT: bool = false;

/// Runs a write on the database's writer thread, with a clone of the store
/// (the connections are shared): the store's own write inside `f` joins the
/// batch, which is synced when `durable`. In place outside a runtime or off
/// it already (the writer thread itself has none).
async fn apart<T: Send + 'static>(
    store: &SqliteMetaStore,
    durable: bool,
    f: impl FnOnce(&SqliteMetaStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if Handle::try_current().is_err() || is_off_runtime() {
        return f(store);
    }
    let s = store.clone();
    store.db().write_queued(move |_| f(&s), durable).await
}

/// Waits for a store's future from blocking code: inside [`offload`], on a
/// blocking-pool thread (where the runtime's context is at hand for the
/// store's connections and timers), or on a plain thread. The filesystem's
/// futures are ready at once; the object store's run on its own runtime.
///
/// Waits may nest (a blocking call that waits inside another, as a blob link
/// probes the blob store from inside the metadata store's write): each wait has
/// its own wake-up flag, so an inner one never takes the outer one's wake-up.
pub(crate) fn wait<T>(fut: impl std::future::Future<Output = T>) -> T {
    use std::sync::{Arc, Condvar, Mutex};
    use std::task::{Context, Poll, Wake, Waker};

    #[derive(Default)]
    struct Flag {
        woken: Mutex<bool>,
        ready: Condvar,
    }
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.ready.notify_one();
        }
    }

    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let mut woken = flag.woken.lock().unwrap_or_else(|e| e.into_inner());
        while !*woken {
            woken = flag.ready.wait(woken).unwrap_or_else(|e| e.into_inner());
        }
        *woken = false;
    }
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

#[async_trait::async_trait]
impl UploadStore for SqliteMetaStore {
    async fn create_upload(&self, upload: &UploadRecord) -> Result<(), StoreError> {
        let upload = upload.clone();
        apart(self, TRANSIENT, move |s| s.create_upload(&upload)).await
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError> {
        SqliteMetaStore::upload(self, id)
    }

    async fn advance_upload(
        &self,
        upload: &UploadRecord,
        from_size: u64,
    ) -> Result<bool, StoreError> {
        let upload = upload.clone();
        apart(self, TRANSIENT, move |s| {
            s.advance_upload(&upload, from_size)
        })
        .await
    }

    async fn remove_upload(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        apart(self, TRANSIENT, move |s| s.remove_upload(&id)).await
    }

    async fn take_empty_upload(&self, id: &str, repo: &str) -> Result<bool, StoreError> {
        let (id, repo) = (id.to_string(), repo.to_string());
        apart(self, TRANSIENT, move |s| s.take_empty_upload(&id, &repo)).await
    }

    async fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        offload(|| SqliteMetaStore::stale_uploads(self, before, limit))
    }

    async fn open_upload(&self, upload: &UploadRecord) -> Result<bool, StoreError> {
        let upload = upload.clone();
        apart(self, TRANSIENT, move |s| s.open_upload(&upload)).await
    }

    async fn upload_closed(&self, id: &str) -> Result<bool, StoreError> {
        offload(|| SqliteMetaStore::upload_closed(self, id))
    }

    async fn forget_closed_uploads(&self, before: i64) -> Result<u64, StoreError> {
        apart(self, TRANSIENT, move |s| s.forget_closed_uploads(before)).await
    }

    async fn upload_key(&self) -> Result<Vec<u8>, StoreError> {
        apart(self, DURABLE, move |s| s.upload_key()).await
    }
}

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

            async fn collect_unrecorded(
                &self,
                digest: &str,
                remove: Probe<'_, std::io::Result<()>>,
            ) -> Result<bool, StoreError> {
                offload(|| SqliteMetaStore::collect_unrecorded(self, digest, &mut || wait(remove())))
            }

            async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
                let (repo, digest) = (repo.to_string(), digest.to_string());
                apart(self, DURABLE, move |s| s.unlink_blob(&repo, &digest)).await
            }

            async fn put_manifest(&self, m: &NewManifest<'_>) -> Result<(), StoreError> {
                let m = OwnedManifest::from(m);
                apart(self, DURABLE, move |s| s.put_manifest(&m.as_new())).await
            }

            async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
                let (repo, digest) = (repo.to_string(), digest.to_string());
                apart(self, DURABLE, move |s| s.delete_manifest(&repo, &digest)).await
            }

            async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError> {
                let (repo, tag) = (repo.to_string(), tag.to_string());
                apart(self, DURABLE, move |s| s.delete_tag(&repo, &tag)).await
            }

            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    $how(|| SqliteMetaStore::$name(self $(, $arg)*))
                }
            )*
        }
    };
}

/// A [`NewManifest`] that owns its parts, to cross to the blocking pool.
struct OwnedManifest {
    repo: String,
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
    subject: Option<String>,
    annotations: Option<String>,
    bytes: Vec<u8>,
    tags: Vec<String>,
    required_blobs: Vec<String>,
    references: Vec<String>,
    required_manifests: Vec<String>,
}

impl From<&NewManifest<'_>> for OwnedManifest {
    fn from(m: &NewManifest<'_>) -> Self {
        OwnedManifest {
            repo: m.repo.to_string(),
            digest: m.digest.to_string(),
            media_type: m.media_type.to_string(),
            artifact_type: m.artifact_type.map(str::to_string),
            subject: m.subject.map(str::to_string),
            annotations: m.annotations.clone(),
            bytes: m.bytes.to_vec(),
            tags: m.tags.to_vec(),
            required_blobs: m.required_blobs.clone(),
            references: m.references.clone(),
            required_manifests: m.required_manifests.clone(),
        }
    }
}

impl OwnedManifest {
    fn as_new(&self) -> NewManifest<'_> {
        NewManifest {
            repo: &self.repo,
            digest: &self.digest,
            media_type: &self.media_type,
            artifact_type: self.artifact_type.as_deref(),
            subject: self.subject.as_deref(),
            annotations: self.annotations.clone(),
            bytes: &self.bytes,
            tags: &self.tags,
            required_blobs: self.required_blobs.clone(),
            references: self.references.clone(),
            required_manifests: self.required_manifests.clone(),
        }
    }
}

metadata_store! {
    quick fn blob_in_repo(&self, repo: &str, digest: &str) -> Result<Option<u64>, StoreError>;
    quick fn blob_anywhere(&self, digest: &str) -> Result<Option<u64>, StoreError>;
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
    quick fn get_manifest(&self, repo: &str, reference: &str) -> Result<Option<ManifestRecord>, StoreError>;
    quick fn list_tags(&self, repo: &str, last: Option<&str>, n: u32) -> Result<Option<Page<String>>, StoreError>;
    quick fn referrers(&self, repo: &str, subject: &str, artifact_type: Option<&str>, last: Option<&str>, n: u32)
        -> Result<Page<ReferrerRecord>, StoreError>;
    quick fn catalog(&self, last: Option<&str>, n: u32) -> Result<CatalogPage, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::wait;

    #[test]
    fn waits_nest_and_see_wake_ups_from_other_threads() {
        let inner_outer = wait(async { wait(async { 1 }) + 1 });
        assert_eq!(inner_outer, 2);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(wait(async { wait(async { 0 }) + rx.await.unwrap() }), 7);
        sender.join().unwrap();
    }
}
