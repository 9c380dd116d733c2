//! Marina as a library: build a registry in code and mount it in a poem application.
//!
//! ```no_run
//! use poem::{EndpointExt, Route};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let registry = marina::Registry::builder()
//!     .data_dir("./registry-data")
//!     .delete_blobs(false)
//!     .build()?;
//! let app = Route::new()
//!     .nest("/", registry.endpoint())
//!     .at("/hello", poem::endpoint::make_sync(|_| "hello"));
//! tokio::spawn(registry.maintenance());
//! poem::Server::new(poem::listener::TcpListener::bind("127.0.0.1:5000")).run(app).await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use poem::{Endpoint, EndpointExt, IntoEndpoint, Response};

use crate::config::{Config, ConfigError, DeletePolicy, WarningRule};
use crate::registry::{GcReport, Registry as Core, RegistryError, RetentionItem};
use crate::store::GarbagePreview;
use crate::store::{
    BlobStore, Clock, MemoryBlobStore, MetadataStore, SqliteMetaStore, StoreError, SystemClock,
};

/// A registry built in code: its HTTP endpoint and its background maintenance.
#[derive(Clone)]
pub struct Registry {
    core: Arc<Core>,
    /// The whole configuration: what the server around the core reads (listen
    /// address, TLS, access control, logs).
    server: Arc<Config>,
}

/// Why a registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The options are inconsistent or out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metadata store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory or blob store could not be opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Options of a [`Registry`]: the same as the config file's, plus the stores.
#[must_use]
pub struct RegistryBuilder {
    config: Config,
    meta: Option<Arc<dyn MetadataStore>>,
    blobs: Option<Arc<dyn BlobStore>>,
    in_memory: bool,
    clock: Option<Arc<dyn Clock>>,
}

impl Registry {
    /// Starts building a registry with the defaults of `marina serve`.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            config: Config::default(),
            meta: None,
            blobs: None,
            in_memory: false,
            clock: None,
        }
    }

    /// The HTTP application: the OCI API under `/v2/`, `/openapi.json`, `/docs`,
    /// `/healthz`. Mount it with `Route::nest`; under a prefix, `Location` and `Link`
    /// headers carry the prefix.
    pub fn endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        crate::api::app(self.core.clone(), &self.server)
            .into_endpoint()
            .map_to_response()
    }

    /// Expires idle upload sessions and collects unlinked blobs, forever; spawn it
    /// next to the endpoint.
    pub fn maintenance(&self) -> impl Future<Output = ()> + Send + 'static {
        let core = self.core.clone();
        async move {
            let config = core.config().clone();
            let expiry = Duration::from_secs(config.upload_expiry_secs.max(1));
            let gc_every =
                (config.gc_interval_secs > 0).then(|| Duration::from_secs(config.gc_interval_secs));
            let period = (expiry / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
            let period = gc_every.map_or(period, |g| period.min(g));
            let mut last_gc = tokio::time::Instant::now();
            loop {
                let c = core.clone();
                let removed = tokio::task::spawn_blocking(move || c.expire_uploads())
                    .await
                    .unwrap_or(0);
                if removed > 0 {
                    tracing::info!(removed, "expired idle upload sessions");
                }
                if gc_every.is_some_and(|e| last_gc.elapsed() >= e) {
                    last_gc = tokio::time::Instant::now();
                    match core.collect_garbage().await {
                        Ok(r) if r.blobs + r.links + r.repositories + r.tags + r.manifests == 0 => {
                        }
                        Ok(r) => tracing::info!(
                            tags = r.tags,
                            manifests = r.manifests,
                            links = r.links,
                            blobs = r.blobs,
                            bytes = r.bytes,
                            repositories = r.repositories,
                            "garbage collected"
                        ),
                        Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                    }
                    let step = crate::registry::UNRECORDED_PREFIXES_PER_RUN;
                    match core.collect_unrecorded_bytes(step).await {
                        Ok((0, _)) => {}
                        Ok((blobs, bytes)) => {
                            tracing::info!(blobs, bytes, "removed blob bytes no record named")
                        }
                        Err(e) => tracing::warn!(error = %e, "collecting unrecorded bytes failed"),
                    }
                }
                tokio::time::sleep(period).await;
            }
        }
    }

    /// The registry's semantics without HTTP (the server, tests and `marina gc`).
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Collects now what [`Registry::maintenance`] collects every
    /// `gc_interval`: retention's deletions first, then blob links past the
    /// grace period that no manifest references, then blobs nothing holds.
    pub async fn collect_garbage(&self) -> Result<GcReport, RegistryError> {
        self.core.collect_garbage().await
    }

    /// Removes stored blob bytes that no record names, older than the grace
    /// period: a crash between a blob's bytes landing and its record's commit
    /// leaves them. Looks at the whole store (the periodic collection looks
    /// at a sixteenth of it each time). Returns how many blobs and bytes went.
    pub async fn collect_unrecorded_bytes(&self) -> Result<(u64, u64), RegistryError> {
        self.core.collect_unrecorded_bytes(256).await
    }

    /// What [`Registry::collect_unrecorded_bytes`] would remove now (blobs
    /// and bytes), removing nothing.
    pub async fn unrecorded_bytes_preview(&self) -> Result<(u64, u64), RegistryError> {
        self.core.unrecorded_bytes_preview().await
    }

    /// What [`Registry::collect_garbage`] would remove now, removing nothing.
    pub async fn garbage_preview(&self) -> Result<GarbagePreview, RegistryError> {
        self.core.garbage_preview().await
    }

    /// What the retention rules would delete now, deleting nothing.
    pub async fn retention_plan(&self) -> Result<Vec<RetentionItem>, RegistryError> {
        self.core.retention_plan().await
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.server
    }
}

impl RegistryBuilder {
    /// Starts from a whole configuration (e.g. read with [`Config::from_file`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Directory for `meta.db`, `blobs/` and `uploads/` (ignored for stores given
    /// explicitly and in memory).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.registry.data_dir = dir.into();
        self
    }

    /// Keeps metadata in PostgreSQL at `url` (`postgres://USER:PASS@HOST:PORT/DB`)
    /// instead of SQLite in the data directory.
    pub fn metadata_url(mut self, url: impl Into<String>) -> Self {
        self.config.registry.metadata_url = Some(crate::config::SecretUrl::new(url));
        self
    }

    /// Keeps blobs in S3-compatible storage at `url`
    /// (`s3://BUCKET/PREFIX?endpoint=URL&region=REGION`, credentials from the
    /// AWS variables) instead of files in the data directory.
    pub fn blob_url(mut self, url: impl Into<String>) -> Self {
        self.config.registry.blob_url = Some(url.into());
        self
    }

    /// Keeps everything in memory (SQLite in memory, blobs in memory): fast and
    /// gone when the registry is dropped.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// Uses this metadata store instead of SQLite.
    pub fn metadata_store(mut self, store: Arc<dyn MetadataStore>) -> Self {
        self.meta = Some(store);
        self
    }

    /// Where "now" comes from (push times, the collector's grace, retention's
    /// ages); the system clock by default. Tests pass a [`TestClock`] and
    /// advance it instead of sleeping. A metadata store given with
    /// [`RegistryBuilder::metadata_store`] should use the same clock.
    ///
    /// [`TestClock`]: crate::store::TestClock
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses this blob store instead of the filesystem.
    pub fn blob_store(mut self, store: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(store);
        self
    }

    /// Which deletions are allowed.
    pub fn delete(mut self, policy: DeletePolicy) -> Self {
        self.config.registry.delete = policy;
        self
    }

    /// Allow deleting blobs.
    pub fn delete_blobs(mut self, allow: bool) -> Self {
        self.config.registry.delete.blobs = allow;
        self
    }

    /// Serve the referrers API.
    pub fn referrers(mut self, on: bool) -> Self {
        self.config.registry.referrers = on;
        self
    }

    /// Accept manifests whose references were never pushed.
    pub fn sparse_manifests(mut self, allow: bool) -> Self {
        self.config.registry.sparse_manifests = allow;
        self
    }

    /// Write SQLite's log out to its full size at start and keep it there
    /// (on by default; see [`crate::config::RegistryConfig::preallocate_log`]):
    /// faster syncs, for about 79 MiB of disk.
    pub fn preallocate_log(mut self, on: bool) -> Self {
        self.config.registry.preallocate_log = on;
        self
    }

    /// Largest manifest accepted, in bytes.
    pub fn max_manifest_bytes(mut self, bytes: u64) -> Self {
        self.config.registry.max_manifest_bytes = bytes;
        self
    }

    /// Referrers per response before a `Link` to the next page.
    pub fn referrers_page_size(mut self, n: u32) -> Self {
        self.config.registry.referrers_page_size = n;
        self
    }

    /// Most tags or repositories in one list response, whatever `n` asks for.
    pub fn max_list_page(mut self, n: u32) -> Self {
        self.config.registry.max_list_page = n;
        self
    }

    /// Time between garbage collections run by [`Registry::maintenance`]; `None`
    /// turns them off.
    pub fn gc_interval(mut self, every: Option<Duration>) -> Self {
        self.config.registry.gc_interval_secs = every.map_or(0, |d| d.as_secs().max(1));
        self
    }

    /// How long an uploaded or mounted blob is kept without a manifest
    /// referencing it (see [`crate::registry::GcReport`]).
    pub fn gc_grace(mut self, grace: Duration) -> Self {
        self.config.registry.gc_grace_secs = grace.as_secs();
        self
    }

    /// Adds a retention rule the garbage collector applies.
    pub fn retention(mut self, rule: crate::config::RetentionRule) -> Self {
        self.config.registry.retention.push(rule);
        self
    }

    /// Idle time after which an upload session is removed.
    pub fn upload_expiry(mut self, after: Duration) -> Self {
        self.config.registry.upload_expiry_secs = after.as_secs().max(1);
        self
    }

    /// Adds a deprecation notice for repositories matching `pattern`.
    pub fn warning(mut self, pattern: impl Into<String>, message: impl Into<String>) -> Self {
        self.config.registry.warnings.push(WarningRule {
            repositories: pattern.into(),
            message: message.into(),
        });
        self
    }

    /// Validates the options and opens the stores.
    pub fn build(self) -> Result<Registry, BuildError> {
        self.config.validate()?;
        let settings = self.config.registry.clone();
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        if !self.in_memory && (self.meta.is_none() || self.blobs.is_none()) {
            std::fs::create_dir_all(&settings.data_dir).map_err(RegistryError::from)?;
        }
        let (meta, blobs) = match (self.meta, self.blobs) {
            (None, None) if !self.in_memory => {
                crate::registry::open_stores(&settings, clock.clone())?
            }
            (meta, blobs) => (
                match meta {
                    Some(m) => m,
                    None if self.in_memory => {
                        Arc::new(SqliteMetaStore::in_memory()?.with_clock(clock.clone()))
                    }
                    None => crate::registry::open_metadata(&settings, clock.clone())?,
                },
                match blobs {
                    Some(b) => b,
                    None if self.in_memory => Arc::new(MemoryBlobStore::new()),
                    None => crate::registry::open_blobs(&settings)?,
                },
            ),
        };
        let core = Core::with_stores(settings, meta, blobs)?.with_clock(clock);
        Ok(Registry {
            core: Arc::new(core),
            server: Arc::new(self.config),
        })
    }
}
