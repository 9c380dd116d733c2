//! Storage: where metadata and blob bytes live, behind two narrow interfaces.
//!
//! The store knows nothing of HTTP or of the spec's status codes. [`MetadataStore`]
//! holds repositories, blob links, manifests (byte for byte), tags and the subject
//! index, every list paged by keyset. [`BlobStore`] holds verified blob bytes by
//! digest and the staging areas uploads write into. The registry layer composes one
//! of each. Shipped backends: SQLite ([`SqliteMetaStore`], also in memory) and the
//! filesystem ([`FsBlobStore`]) for production, [`MemoryBlobStore`] for tests; the
//! [`contract`] module checks any backend against the behaviour the registry relies on.

mod clock;
pub mod contract;
mod embedded;
mod file_chunks;
pub(crate) mod fs;
mod group_commit;
pub mod listing;
pub(crate) mod memory;
pub(crate) mod meta;
pub mod migrate;
mod open_blobs;
pub(crate) mod pg;
mod read_cache;
pub(crate) mod s3;
mod schema;
mod small_blobs;
mod space;
pub(crate) use space::reserve_kept;
mod sqlite_db;
mod uploads;
mod wal_frames;

use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

use crate::oci::Digest;

/// The attribute the store traits are declared with: implement [`BlobStore`]
/// (or [`MetadataStore`]) under `#[marina::store::async_trait]`.
pub use async_trait::async_trait;
pub use clock::{Clock, SystemClock, TestClock};
pub(crate) use embedded::{off_runtime, offload, wait};
pub use fs::FsBlobStore;
pub use memory::MemoryBlobStore;
pub use meta::{
    CatalogPage, ManifestRecord, NewManifest, Page, ReferrerRecord, SqliteMetaStore, StoreError,
};
pub use pg::PgMetaStore;
pub use s3::{S3BlobStore, S3Location};
pub use uploads::{UploadRecord, UploadStore};

/// Whether an I/O error of a store says that its backend cannot be reached
/// or did not answer in time (refused, reset or timed-out connections), as
/// opposed to a failure of the operation itself. The S3 store reports an
/// endpoint that does not answer this way.
pub fn is_unavailable(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(
        e.kind(),
        K::TimedOut
            | K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::HostUnreachable
            | K::NetworkUnreachable
    )
}

/// A staging area reopened after a restart, with the note it was created with.
pub type ResumedStaging = (Box<dyn Staging>, Vec<u8>);

/// A function run inside one write of the stores
/// ([`BlobStore::write_together_queued`]).
pub type Together = Box<dyn FnOnce() + Send>;

/// Streams a stored blob (or a range of it).
pub type BlobReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// A stored blob (or a range of it) as a stream of byte chunks, ready to be sent.
pub type BlobChunks = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Chunk size of [`BlobStore::open_chunks`]'s default implementation.
pub const DEFAULT_CHUNK: usize = 256 << 10;

/// An upload's staging area: bytes appended in order, truncatable (to roll back a
/// failed chunk), readable back (to re-hash under another algorithm), and published
/// under a digest the caller has verified.
pub trait Staging: Send + 'static {
    /// Bytes held.
    fn size(&self) -> u64;
    /// Appends bytes at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Shrinks to `size` bytes.
    fn truncate(&mut self, size: u64) -> io::Result<()>;
    /// Reads back everything held, from the start.
    fn read_back(&self) -> io::Result<Box<dyn io::Read + Send>>;
    /// Reads back what is held from `offset` on: the bytes an upload's
    /// recorded hash has not covered yet. The default reads from the start
    /// and skips.
    fn read_from(&self, offset: u64) -> io::Result<Box<dyn io::Read + Send>> {
        let mut reader = self.read_back()?;
        let skipped = io::copy(&mut io::Read::take(&mut reader, offset), &mut io::sink())?;
        if skipped < offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the staging area holds fewer bytes than asked",
            ));
        }
        Ok(reader)
    }
    /// Whether the bytes are where every server sharing the store reads them
    /// as they are written (a file): [`Staging::seal`] then does nothing and
    /// blocks on nothing, and [`Staging::read_from`] is cheap, so an upload
    /// may be recorded before its hash has caught up with its bytes (whoever
    /// resumes it hashes the rest from here). False (the default) makes every
    /// record wait for the hash, and seals on a blocking thread.
    fn in_place(&self) -> bool {
        false
    }
    /// Keeps other processes from writing this staging area until
    /// [`Staging::unlock`] (or until this handle is dropped), for a store that
    /// several servers share: a writer locks, reads the session's record,
    /// writes, records, unlocks. Once locked, [`Staging::size`] is what the
    /// store holds now, whoever wrote it (a crashed writer may have left bytes
    /// that were never recorded). The default does nothing, which is right
    /// for a store only one process uses (the registry serialises its own
    /// writers).
    fn lock(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Ends [`Staging::lock`].
    fn unlock(&self) {}
    /// Makes everything held readable by every server sharing the store, before
    /// the registry records the new size, and returns the descriptor to record
    /// with it (`UploadRecord::staging`), which [`Staging::adopt`] is later
    /// given. The default returns an empty descriptor: the bytes are where any
    /// server sharing the store finds them by the session's id (a staging file
    /// on a shared disk).
    fn seal(&mut self) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
    /// Brings this handle in step with a recorded state (`size` bytes, the
    /// descriptor [`Staging::seal`] returned): bytes held beyond it (a chunk
    /// that was never recorded) are dropped. False when the handle holds fewer
    /// and cannot reach the rest (they are on another server's disk).
    fn adopt(&mut self, size: u64, _descriptor: &[u8]) -> io::Result<bool> {
        if self.size() < size {
            return Ok(false);
        }
        if self.size() > size {
            self.truncate(size)?;
        }
        Ok(true)
    }
    /// Lets go of what only this handle can name before the session's staging
    /// area is discarded (an object store's unfinished multipart upload). The
    /// default does nothing.
    fn abandon(self: Box<Self>) {}
    /// Makes the content durable and visible as blob `digest`. If that blob is
    /// already stored (an identical concurrent push won), the staging area is
    /// simply discarded. The caller has verified that the bytes match `digest`.
    /// (A store that keeps small blobs in the metadata database makes them
    /// durable with the next durable write there: the link that names them.)
    fn publish(self: Box<Self>, digest: &Digest) -> io::Result<()>;
}

/// Blob bytes by digest, and the staging areas of uploads.
///
/// Reading, removing and checking are async: an object store answers them over
/// the network, and the registry awaits them without holding a thread. The
/// staging areas stay blocking: an upload's bytes are written by a blocking
/// task fed from the request, one batch while the next arrives.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts an empty staging area for upload session `id`, keeping `note`
    /// (what the registry needs to resume the session after a restart).
    fn create_staging(&self, id: &str, note: &[u8]) -> io::Result<Box<dyn Staging>>;
    /// Reopens a staging area left by an earlier process, with its note; `None`
    /// when there is no such session.
    fn reopen_staging(&self, id: &str) -> io::Result<Option<ResumedStaging>>;
    /// Removes a staging area and its note (no error if absent).
    fn discard_staging(&self, id: &str);
    /// Sessions whose staging area was last written before `before`.
    fn stale_staging(&self, before: SystemTime) -> Vec<String>;
    /// Stored blobs whose hex digest begins with the two hex digits of
    /// `prefix` and whose bytes were last written before `before`, with their
    /// sizes: the garbage collector's candidates for bytes that no metadata
    /// record names (a crash between publishing a blob and recording it).
    /// Asked for one prefix at a time, so no listing holds every blob. The
    /// default (a store that cannot list cheaply) finds none.
    fn blobs_written_before(&self, prefix: u8, before: SystemTime) -> Vec<(Digest, u64)> {
        let _ = (prefix, before);
        Vec::new()
    }
    /// Publishes a whole blob held in memory (a small single-request upload),
    /// as [`Staging::publish`] would; the caller has verified `bytes` against
    /// `digest`. The default stages the bytes first (under a staging area
    /// named `id`, unique to this call); a store that can write them directly
    /// overrides it.
    fn publish_bytes(&self, id: &str, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        stage_and_publish(self, id, digest, bytes)
    }
    /// Runs `f` once, so that what it writes to this store and to the metadata
    /// database commits as one write when the two share a database (small
    /// blobs kept in `meta.db`): one transaction and one sync for a small
    /// upload's close, publish and link. `f` should do little besides those
    /// writes, since it holds the database's writer. The default just runs it.
    fn write_together(&self, f: &mut dyn FnMut()) -> io::Result<()> {
        f();
        Ok(())
    }
    /// [`BlobStore::write_together`] for a caller on the async runtime, when
    /// the store has a writer of its own to hand `f` to (the embedded store:
    /// its database's writer thread, where `f` joins the writes queued
    /// meanwhile), so the caller needs no blocking thread. Gives `f` back,
    /// not run, otherwise (the default): the caller then runs it with
    /// [`BlobStore::write_together`] where it may block.
    async fn write_together_queued(&self, f: Together) -> Result<io::Result<()>, Together> {
        Err(f)
    }
    /// Size of a stored blob, or `None` when it is not stored.
    async fn size_of(&self, digest: &Digest) -> io::Result<Option<u64>>;
    /// Streams `len` bytes of a stored blob from `offset`.
    async fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobReader>;
    /// Streams `len` bytes of a stored blob from `offset` as chunks, which is how the
    /// registry serves blobs (it only asks for ranges within the blob's size). The
    /// default reads [`BlobStore::open`] in chunks of [`DEFAULT_CHUNK`] bytes; a
    /// backend that can hand out larger chunks, or its own buffers without a copy,
    /// overrides it. The stream is polled on the async runtime.
    async fn open_chunks(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobChunks> {
        let reader = self.open(digest, offset, len).await?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader,
            DEFAULT_CHUNK,
        )))
    }
    /// Deletes a stored blob (garbage collection); no error if absent.
    async fn remove(&self, digest: &Digest) -> io::Result<()>;
    /// A cheap call that proves the store answers, for `/readyz`.
    async fn ping(&self) -> io::Result<()> {
        Ok(())
    }
    /// A URL from which a client may `GET` the blob directly for `ttl`, for
    /// stores that can sign one (object storage); `None` (the default) when
    /// the registry must serve the bytes itself.
    async fn presigned_get(
        &self,
        _digest: &Digest,
        _ttl: std::time::Duration,
    ) -> io::Result<Option<String>> {
        Ok(None)
    }
}

/// [`BlobStore::publish_bytes`] through a staging area named `id`.
fn stage_and_publish<S: BlobStore + ?Sized>(
    store: &S,
    id: &str,
    digest: &Digest,
    bytes: &[u8],
) -> io::Result<()> {
    let mut staging = store.create_staging(id, b"")?;
    if let Err(e) = staging.append(bytes) {
        staging.abandon();
        store.discard_staging(id);
        return Err(e);
    }
    staging
        .publish(digest)
        .inspect_err(|_| store.discard_staging(id))
}

/// A question a metadata store asks the caller, and awaits, inside one of its
/// transactions: whether a blob's bytes are still there, or to remove them.
pub type Probe<'a, T> = &'a (dyn Fn() -> futures_util::future::BoxFuture<'a, T> + Send + Sync);

/// Repositories, blob links, manifests, tags and the subject index.
///
/// Every method is async, so a network backend (PostgreSQL) waits without
/// holding a thread; an embedded one (SQLite) decides itself which calls are
/// quick enough to run in place and which move off the async workers.
/// Digests, names and tags arrive validated, as strings.
#[async_trait::async_trait]
pub trait MetadataStore: listing::ListingStore + UploadStore + Send + Sync + 'static {
    /// Records a verified blob and links it into `repo` (creating the repository),
    /// the link dated now. `present` is asked, inside the same transaction, whether
    /// the blob's bytes are in the blob store: if a collector removed them in the
    /// meantime this fails with [`StoreError::Vanished`] and links nothing, so a
    /// link never points at missing bytes.
    async fn link_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        present: Probe<'_, bool>,
    ) -> Result<(), StoreError>;
    /// Size of a blob if `repo` links it.
    async fn blob_in_repo(&self, repo: &str, digest: &str) -> Result<Option<u64>, StoreError>;
    /// Size of a blob if any repository links it.
    async fn blob_anywhere(&self, digest: &str) -> Result<Option<u64>, StoreError>;
    /// Unlinks a blob from a repository; false when it was not linked.
    async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError>;
    /// Garbage collection, step 1: removes up to `limit` blob links that no
    /// manifest of their repository references and that were made at or before `cutoff`
    /// (milliseconds since the epoch). Returns how many went.
    async fn prune_links(&self, cutoff: i64, limit: u32) -> Result<u64, StoreError>;
    /// Step 2: up to `limit` blobs that no repository links and no manifest of any
    /// repository references, with their sizes.
    async fn unreferenced_blobs(&self, limit: u32) -> Result<Vec<(String, u64)>, StoreError>;
    /// Step 3: forgets one unreferenced blob, calling `remove` (which deletes its
    /// bytes) inside the same transaction. Returns false, without calling
    /// `remove`, when a link or a reference appeared meanwhile; an error of
    /// `remove` leaves the blob recorded.
    async fn collect_blob(
        &self,
        digest: &str,
        remove: Probe<'_, std::io::Result<()>>,
    ) -> Result<bool, StoreError>;
    /// Garbage collection of bytes no record names: calls `remove` inside a
    /// write transaction in which `digest` has no blob record, and returns
    /// true. Returns false, without calling `remove`, when the blob is
    /// recorded (a publish that got its record meanwhile keeps its bytes; one
    /// that records it later finds them gone and fails, as against
    /// [`MetadataStore::collect_blob`]).
    async fn collect_unrecorded(
        &self,
        digest: &str,
        remove: Probe<'_, std::io::Result<()>>,
    ) -> Result<bool, StoreError>;
    /// Retention: the tags of `repo` with their push times (milliseconds since the
    /// epoch), newest first.
    async fn tags_by_age(&self, repo: &str) -> Result<Vec<(String, i64)>, StoreError>;
    /// Retention: deletes a tag if it still points where it did at `pushed_at`
    /// (a tag pushed again meanwhile stays).
    async fn delete_tag_pushed_at(
        &self,
        repo: &str,
        tag: &str,
        pushed_at: i64,
    ) -> Result<bool, StoreError>;
    /// Retention: untagged manifests of `repo` pushed at or before `cutoff` that no
    /// manifest of the repository references (index children stay) and whose
    /// subject is not in the repository (referrers of a live subject stay).
    async fn expendable_untagged(&self, repo: &str, cutoff: i64)
        -> Result<Vec<String>, StoreError>;
    /// Retention: deletes one manifest if it still is what
    /// [`MetadataStore::expendable_untagged`] selects.
    async fn delete_expendable(
        &self,
        repo: &str,
        digest: &str,
        cutoff: i64,
    ) -> Result<bool, StoreError>;
    /// Usage: the bytes of the blobs `repo` holds (links, or references of its
    /// manifests), and of those no other repository holds.
    async fn repository_usage(&self, repo: &str) -> Result<RepositoryUsage, StoreError>;
    /// Usage: the blobs held by the repositories under `namespace` (all of them for
    /// `""`), each counted once, and their bytes.
    async fn namespace_usage(&self, namespace: &str) -> Result<NamespaceUsage, StoreError>;
    /// Step 4: forgets repositories holding no manifest and no blob link.
    async fn prune_repositories(&self) -> Result<u64, StoreError>;
    /// What a collection at `cutoff` would remove, without removing anything.
    async fn garbage_preview(&self, cutoff: i64) -> Result<GarbagePreview, StoreError>;
    /// Gives space freed by deletions back to the filesystem (the default does
    /// nothing).
    async fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether the repository has ever been written to.
    async fn repo_exists(&self, repo: &str) -> Result<bool, StoreError>;
    /// Stores a manifest and points its tags at it, atomically, after checking that
    /// every required blob and child manifest is in the repository
    /// ([`StoreError::MissingReferences`] otherwise, and nothing changes).
    async fn put_manifest(&self, manifest: &NewManifest<'_>) -> Result<(), StoreError>;
    /// A manifest by tag or by digest (a reference containing `:` is a digest).
    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestRecord>, StoreError>;
    /// Deletes a manifest by digest, with its tags and its subject-index entry.
    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool, StoreError>;
    /// Deletes a tag; the manifest stays.
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError>;
    /// Tags after `last` in byte order, at most `n`; `None` if the repository is unknown.
    async fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        n: u32,
    ) -> Result<Option<Page<String>>, StoreError>;
    /// Referrers of `subject` in digest order after `last`, at most `n`, optionally
    /// of one artifact type.
    async fn referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: u32,
    ) -> Result<Page<ReferrerRecord>, StoreError>;
    /// Repositories holding at least one manifest, after `last`, at most `n`.
    async fn catalog(&self, last: Option<&str>, n: u32) -> Result<CatalogPage, StoreError>;
    /// What the store holds, for `/metrics`; `None` when a backend cannot count
    /// cheaply (the default).
    async fn totals(&self) -> Result<Option<StoreTotals>, StoreError> {
        Ok(None)
    }
    /// A cheap query that proves the store answers and its schema is current,
    /// for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError> {
        self.repo_exists("").await.map(|_| ())
    }
}

/// The blob bytes a repository holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepositoryUsage {
    /// Bytes of every blob it holds.
    pub bytes: u64,
    /// Bytes of the blobs no other repository holds: what deleting it gives back.
    pub unique_bytes: u64,
}

/// The blobs held under a namespace, each counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceUsage {
    /// Repositories under it holding something.
    pub repositories: u64,
    /// Distinct blobs.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What a garbage collection would remove.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GarbagePreview {
    /// Blob links no manifest of their repository references, older than the grace.
    pub links: u64,
    /// Blobs that would then be referenced and linked nowhere.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Counts of what a metadata store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Blobs recorded.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Manifests (one per repository holding it).
    pub manifests: u64,
}
