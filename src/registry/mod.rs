//! The spec's semantics, independent of HTTP: push, pull, uploads, mounts, manifests,
//! tags, referrers and deletes over the store.
//!
//! Handlers in `api` call [`Registry`] with validated newtypes and byte streams; the
//! registry never sees an HTTP type, and answers with plain values or a
//! [`RegistryError`] that `api::error` maps to the spec's status and error code.

mod error;
mod gc;
mod hash_lane;
pub(crate) mod kept;
mod lane_thread;
pub(crate) mod listing;
mod manifests;
mod proxy;
mod session_ids;
mod staged;
mod stoppable;
pub(crate) mod uploads;
mod writer;

#[cfg(test)]
mod model_tests;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;
use globset::GlobMatcher;

pub use crate::upstream::UpstreamError;
pub use error::RegistryError;
pub(crate) use gc::UNRECORDED_PREFIXES_PER_RUN;
pub use gc::{GcReport, RetentionItem};
pub use proxy::{BlobWant, CacheStatus, Namespace, PulledBlob};

pub use uploads::{ChunkRange, UploadId};

use crate::config::RegistryConfig;
use crate::metrics::{Metrics, StorageTotals};
use crate::oci::{Algorithm, Digest, RepoName};
pub use crate::store::CatalogPage;
use crate::store::{
    BlobChunks, BlobStore, Clock, FsBlobStore, MetadataStore, Page, ReferrerRecord,
    SqliteMetaStore, SystemClock,
};
use uploads::UploadSessions;

/// Which repositories a caller may see, for the listings and mounts that
/// access control filters (the registry itself never sees identities).
pub type Visible<'a> = dyn Fn(&str) -> bool + Send + Sync + 'a;

/// The registry: configuration plus the two stores and the open upload sessions.
pub struct Registry {
    config: Arc<RegistryConfig>,
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    uploads: Arc<UploadSessions>,
    /// The upstreams this registry caches, and the cache's state.
    proxies: proxy::Proxies,
    warnings: Vec<(GlobMatcher, String)>,
    /// What "now" is for the collector's grace and retention's ages: the
    /// metadata store's clock, so the times it records compare with it.
    clock: Arc<dyn Clock>,
    /// Request and storage counters, for `/metrics`.
    metrics: Metrics,
    /// The digest prefix the collector's next look for unrecorded bytes
    /// starts at (each collection looks at a few, see `gc`).
    unrecorded_from: std::sync::atomic::AtomicUsize,
}

/// How a mount request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The blob is now linked in the target repository (201).
    Mounted,
    /// The blob could not be mounted; an upload session was opened instead (202).
    Started(String),
}

/// The metadata store `config` names: PostgreSQL at `metadata_url`, else
/// SQLite in `data_dir/meta.db`. A failure names the store (password hidden).
pub(crate) fn open_metadata(
    config: &RegistryConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn MetadataStore>, RegistryError> {
    match &config.metadata_url {
        Some(url) => match crate::store::PgMetaStore::open(url.expose()) {
            Ok(store) => Ok(Arc::new(store.with_clock(clock))),
            Err(e) => Err(RegistryError::Internal(format!(
                "cannot open the metadata store {url}: {e}"
            ))),
        },
        None => {
            std::fs::create_dir_all(&config.data_dir)?;
            Ok(Arc::new(open_sqlite(config)?.with_clock(clock)))
        }
    }
}

/// The SQLite metadata store in `config.data_dir`, its log written out when
/// `config.preallocate_log` asks (a full disk only leaves it growing, with a
/// warning).
fn open_sqlite(config: &RegistryConfig) -> Result<SqliteMetaStore, RegistryError> {
    let meta = SqliteMetaStore::open(&config.data_dir.join("meta.db"))?;
    if config.preallocate_log && !meta.preallocate_log()? {
        tracing::warn!(
            data_dir = %config.data_dir.display(),
            "no room to write out the SQLite log in advance; it grows as it is written"
        );
    }
    Ok(meta)
}

/// A metadata store and a blob store, as a registry composes them.
pub(crate) type Stores = (Arc<dyn MetadataStore>, Arc<dyn BlobStore>);

/// Both stores `config` names (see [`open_metadata`] and [`open_blobs`]).
/// With neither a metadata URL nor a blob URL (the embedded default), small
/// blobs are kept in the SQLite database beside the metadata
/// (`store::small_blobs`).
pub(crate) fn open_stores(
    config: &RegistryConfig,
    clock: Arc<dyn Clock>,
) -> Result<Stores, RegistryError> {
    if config.metadata_url.is_some() || config.blob_url.is_some() {
        return Ok((open_metadata(config, clock)?, open_blobs(config)?));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let meta = open_sqlite(config)?.with_clock(clock);
    let blobs = FsBlobStore::with_small_blobs(&config.data_dir, &meta)?
        .with_min_free(config.min_free_mib.saturating_mul(1 << 20));
    Ok((Arc::new(meta), Arc::new(blobs)))
}

/// The blob store `config` names: S3 at `blob_url` (staging uploads under
/// `data_dir`), else files under `data_dir`. A failure names the store.
pub(crate) fn open_blobs(config: &RegistryConfig) -> Result<Arc<dyn BlobStore>, RegistryError> {
    match &config.blob_url {
        Some(url) => {
            let location = crate::store::S3Location::parse(url).map_err(RegistryError::Internal)?;
            let credentials = match (&config.s3_access_key_id, &config.s3_secret_access_key) {
                (Some(id), Some(secret)) => Some((id.clone(), secret.expose().to_string())),
                _ => None,
            };
            crate::store::S3BlobStore::open(location, credentials, &config.data_dir)
                .map(|s| Arc::new(s) as Arc<dyn BlobStore>)
                .map_err(|e| {
                    RegistryError::Internal(format!("cannot open the blob store {url}: {e}"))
                })
        }
        None => Ok(Arc::new(
            FsBlobStore::open(&config.data_dir)?
                .with_min_free(config.min_free_mib.saturating_mul(1 << 20)),
        )),
    }
}

/// How long [`Registry::ready`] waits for each store to answer.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a presigned blob URL of [`Registry::blob_redirect`] is valid.
pub const REDIRECT_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs blocking store work off the async runtime.
async fn blocking<T, F>(f: F) -> Result<T, RegistryError>
where
    F: FnOnce() -> Result<T, RegistryError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || crate::store::off_runtime(f))
        .await
        .map_err(|e| RegistryError::Internal(format!("blocking task failed: {e}")))?
}

impl Registry {
    /// Opens the stores the configuration names: metadata in SQLite under
    /// `config.data_dir` or in PostgreSQL (`metadata_url`), blobs on the
    /// filesystem under `config.data_dir`.
    pub fn open(config: RegistryConfig) -> Result<Self, RegistryError> {
        let dir: &Path = &config.data_dir;
        std::fs::create_dir_all(dir)?;
        let (meta, blobs) = open_stores(&config, Arc::new(SystemClock))?;
        Self::with_stores(config, meta, blobs)
    }

    /// A registry over the given stores (`config.data_dir` holds only the
    /// pull-through cache's spool files); fails when an upstream cannot be set up.
    pub fn with_stores(
        config: RegistryConfig,
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self, RegistryError> {
        let warnings = config
            .warnings
            .iter()
            .filter_map(|w| {
                let glob = crate::oci::name::repository_glob(&w.repositories).ok()?;
                Some((glob, w.message.clone()))
            })
            .collect();
        Ok(Registry {
            uploads: Arc::new(UploadSessions::new(
                blobs.clone(),
                meta.clone(),
                Arc::new(SystemClock),
                Duration::from_secs(config.upload_expiry_secs),
            )),
            proxies: proxy::Proxies::new(&config)?,
            config: Arc::new(config),
            meta,
            blobs,
            warnings,
            clock: Arc::new(SystemClock),
            metrics: Metrics::new(),
            unrecorded_from: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Reads "now" from `clock`; give the metadata store the same one.
    pub(crate) fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.uploads = Arc::new(UploadSessions::new(
            self.blobs.clone(),
            self.meta.clone(),
            clock.clone(),
            Duration::from_secs(self.config.upload_expiry_secs),
        ));
        self.clock = clock;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Deprecation notices for a repository, from the operator's warning rules.
    pub fn warnings_for(&self, repo: &str) -> Vec<&str> {
        self.warnings
            .iter()
            .filter(|(m, _)| m.is_match(repo))
            .map(|(_, msg)| msg.as_str())
            .collect()
    }

    /// The registry's metrics, which the api layer adds its requests to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What the stores hold now, for a scrape; `None` when the metadata store
    /// cannot count.
    pub async fn storage_totals(&self) -> Option<StorageTotals> {
        let totals = match self.meta.totals().await {
            Ok(t) => t?,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: the metadata store cannot be counted");
                return None;
            }
        };
        let (uploads, upload_bytes) = self.uploads.in_progress();
        Some(StorageTotals {
            blobs: totals.blobs,
            blob_bytes: totals.blob_bytes,
            manifests: totals.manifests,
            uploads,
            upload_bytes,
        })
    }

    /// Whether both stores answer, each within [`READY_TIMEOUT`], and the
    /// schema is current; the error says which does not.
    pub async fn ready(&self) -> Result<(), String> {
        let late = || format!("no answer within {} s", READY_TIMEOUT.as_secs_f32());
        match tokio::time::timeout(READY_TIMEOUT, self.meta.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("metadata store: {e}")),
            Err(_) => return Err(format!("metadata store: {}", late())),
        }
        match tokio::time::timeout(READY_TIMEOUT, self.blobs.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("blob store: {e}")),
            Err(_) => Err(format!("blob store: {}", late())),
        }
    }

    /// Removes idle upload sessions; called periodically by the server.
    pub fn expire_uploads(&self) -> usize {
        self.uploads
            .expire(Duration::from_secs(self.config.upload_expiry_secs))
    }

    async fn require_repo(&self, repo: &RepoName) -> Result<(), RegistryError> {
        let exists = self.meta.repo_exists(repo.as_str()).await?;
        if exists {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// Size of a blob the repository may serve.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64, RegistryError> {
        let d = digest.to_string();
        match self.meta.blob_in_repo(repo.as_str(), &d).await? {
            Some(size) => Ok(size),
            None => {
                self.require_repo(repo).await?;
                Err(RegistryError::BlobUnknown(digest.to_string()))
            }
        }
    }

    /// Where a client may fetch the blob itself, when `blob_redirect` is on
    /// and the blob store signs URLs: a presigned `GET` valid [`REDIRECT_TTL`].
    pub async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>, RegistryError> {
        if !self.config.blob_redirect {
            return Ok(None);
        }
        Ok(self.blobs.presigned_get(digest, REDIRECT_TTL).await?)
    }

    /// Streams `len` bytes of a blob from `offset` (the caller checked the size), in
    /// the chunks the blob store hands out ([`BlobStore::open_chunks`]).
    pub async fn read_blob(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<BlobChunks, RegistryError> {
        Ok(self.blobs.open_chunks(digest, offset, len).await?)
    }

    /// Unlinks a blob from a repository.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), RegistryError> {
        if !self.config.delete.blobs {
            return Err(RegistryError::Unsupported(
                "blob deletion is disabled on this registry",
            ));
        }
        self.writable(repo)?;
        let d = digest.to_string();
        if self.meta.unlink_blob(repo.as_str(), &d).await? {
            Ok(())
        } else {
            self.require_repo(repo).await?;
            Err(RegistryError::BlobUnknown(digest.to_string()))
        }
    }

    /// Opens an upload session (`POST /blobs/uploads/`).
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
    ) -> Result<String, RegistryError> {
        self.writable(repo)?;
        self.uploads.create(repo, algorithm).await
    }

    /// Cross-repository (or, without `from`, anonymous) mount; falls back to a new
    /// upload session when the blob is not available. With `visible` (access
    /// control: the repositories the caller may pull), the source must be one it
    /// admits: a named source it does not admit opens a session, and an anonymous
    /// mount looks only in admitted repositories.
    pub async fn mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
        visible: Option<&Visible<'_>>,
        algorithm: Algorithm,
    ) -> Result<MountOutcome, RegistryError> {
        self.writable(repo)?;
        let size = match (from, visible) {
            (Some(src), Some(v)) if !v(src.as_str()) => None,
            (Some(src), _) => self.size_in(src.to_string(), digest).await?,
            (None, None) => self.meta.blob_anywhere(&digest.to_string()).await?,
            (None, Some(v)) => self.size_in_visible(digest, v).await?,
        };
        match size {
            Some(size) if self.blobs.size_of(digest).await?.is_some() => {
                self.link(repo, digest, size).await?;
                Ok(MountOutcome::Mounted)
            }
            _ => Ok(MountOutcome::Started(
                self.start_upload(repo, algorithm).await?,
            )),
        }
    }

    /// The size of `digest` when `repo` links it.
    async fn size_in(&self, repo: String, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        Ok(self.meta.blob_in_repo(&repo, &digest.to_string()).await?)
    }

    /// The size of `digest` in the first repository `visible` admits that links
    /// it, examining at most [`kept::SCAN_LIMIT`] repositories.
    async fn size_in_visible(
        &self,
        digest: &Digest,
        visible: &Visible<'_>,
    ) -> Result<Option<u64>, RegistryError> {
        let mut last = None;
        let mut scanned = 0;
        while scanned < kept::SCAN_LIMIT {
            let page = self.catalog(last.take(), 1000).await?;
            scanned += page.items.len().max(1);
            last = page.items.last().cloned();
            for name in page.items.into_iter().filter(|n| visible(n)) {
                if let Some(size) = self.size_in(name, digest).await? {
                    return Ok(Some(size));
                }
            }
            if !page.more || last.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// [`Registry::linker`] from async code.
    async fn link(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<(), RegistryError> {
        let link = self.linker(repo, digest);
        blocking(move || link(size)).await
    }

    /// Records a published blob in `repo` (checking, under the metadata
    /// store's write, that its bytes are still there): for blocking code, so an
    /// upload runs it in the same blocking call that published the blob.
    fn linker(&self, repo: &RepoName, digest: &Digest) -> uploads::Link {
        let (meta, blobs) = (self.meta.clone(), self.blobs.clone());
        let (repo, digest) = (repo.to_string(), digest.clone());
        Box::new(move |size| {
            let present = || -> BoxFuture<'_, bool> {
                Box::pin(async { matches!(blobs.size_of(&digest).await, Ok(Some(_))) })
            };
            let d = digest.to_string();
            Ok(crate::store::wait(
                meta.link_blob(&repo, &d, size, &present),
            )?)
        })
    }

    /// Bytes an upload session holds (`GET <location>`).
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<u64, RegistryError> {
        self.uploads.status(repo, id).await
    }

    /// Appends a chunk (`PATCH <location>`); returns the new size.
    pub async fn upload_chunk<S>(
        &self,
        repo: &RepoName,
        id: &str,
        range: Option<ChunkRange>,
        length: Option<u64>,
        body: S,
    ) -> Result<u64, RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    {
        self.uploads.append(repo, id, range, length, body).await
    }

    /// Closes an upload (`PUT <location>?digest=`), with an optional last chunk.
    pub async fn finish_upload<S>(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        range: Option<ChunkRange>,
        length: Option<u64>,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let link = self.linker(repo, digest);
        self.uploads
            .finish(repo, id, digest, range, length, body, link)
            .await?;
        Ok(())
    }

    /// Single-request upload (`POST ?digest=` with a body).
    pub async fn upload_monolithic<S>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        length: Option<u64>,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    {
        self.writable(repo)?;
        let link = self.linker(repo, digest);
        self.uploads.monolithic(digest, length, body, link).await?;
        Ok(())
    }

    /// Cancels an upload session (`DELETE <location>`).
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<(), RegistryError> {
        self.uploads.cancel(repo, id).await
    }

    /// One page of tags; the repository must exist.
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<String>,
        n: u32,
    ) -> Result<Page<String>, RegistryError> {
        let n = n.min(self.config.max_list_page);
        self.meta
            .list_tags(repo.as_str(), last.as_deref(), n)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(repo.to_string()))
    }

    /// One page of referrers of `subject`, optionally filtered by artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<String>,
        last: Option<String>,
    ) -> Result<Page<ReferrerRecord>, RegistryError> {
        if !self.config.referrers {
            return Err(RegistryError::ReferrersDisabled);
        }
        let s = subject.to_string();
        let n = self.config.referrers_page_size;
        Ok(self
            .meta
            .referrers(
                repo.as_str(),
                &s,
                artifact_type.as_deref(),
                last.as_deref(),
                n,
            )
            .await?)
    }

    /// A page of the catalog holding only repositories `visible` admits, whose
    /// cursor names only such a repository (see `registry::kept`).
    pub async fn visible_catalog(
        &self,
        n: u32,
        start: Option<String>,
        visible: impl Fn(&str) -> bool,
    ) -> Result<kept::KeptPage<String, String>, RegistryError> {
        let max = self.config.max_list_page;
        let page = kept::kept_page(
            n as usize,
            start,
            |after| self.catalog(after, max),
            String::clone,
            |name: &String| visible(name),
        )
        .await?;
        if page.truncated {
            tracing::warn!(
                limit = kept::SCAN_LIMIT,
                "catalog shortened: the caller may see too few of the repositories examined"
            );
        }
        Ok(page)
    }

    /// One page of repository names.
    pub async fn catalog(
        &self,
        last: Option<String>,
        n: u32,
    ) -> Result<CatalogPage, RegistryError> {
        let n = n.min(self.config.max_list_page);
        Ok(self.meta.catalog(last.as_deref(), n).await?)
    }
}
