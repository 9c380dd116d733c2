//! The pull-through cache: names under an upstream's prefix are served from the
//! local stores and, on a miss, from the upstream (`crate::upstream`), whose
//! answers are verified against their digests and stored like any push (so
//! listing, retention and GC treat them like anything else).
//!
//! - A manifest by digest is served from the cache once held.
//! - A tag is served from the cache for `tag_ttl_secs` after the upstream last
//!   confirmed it, then revalidated with an upstream `HEAD`; when the upstream
//!   cannot answer, the cached copy is served with a `Warning`.
//! - A blob miss starts one download per digest, shared by every request for
//!   it: the bytes go to a spool file (read by each client at its own pace) and
//!   into a normal upload, which verifies the digest before anything is
//!   published. A client receives all but the last byte while the download is
//!   under way and the last one only once the digest matched, so wrong bytes
//!   are never served whole (the connection is cut instead) and never stored.
//!
//! Freshness of tags is kept per process: each replica revalidates on its own.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::uploads::Link;
use super::{Registry, RegistryError};
use crate::config::{ProxyPush, RegistryConfig, UnknownNs, UpstreamConfig};
use crate::oci::{Algorithm, Digest, Reference, RepoName};
use crate::store::{BlobChunks, ManifestRecord};
use crate::upstream::{Upstream, UpstreamError};

/// Where a proxied answer came from, sent as `Marina-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the cache, without asking the upstream (a digest, or a fresh tag).
    Hit,
    /// From the upstream, and now cached.
    Miss,
    /// From the cache, after the upstream confirmed it is current.
    Revalidated,
    /// From the cache because the upstream could not answer.
    Stale,
    /// The upstream's list merged with what the cache holds.
    Merged,
}

impl CacheStatus {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Revalidated => "revalidated",
            CacheStatus::Stale => "stale",
            CacheStatus::Merged => "merged",
        }
    }

    /// The `Warning` text a stale answer carries.
    pub fn warning(self) -> Option<&'static str> {
        (self == CacheStatus::Stale)
            .then_some("the upstream registry did not answer; this is the cached copy")
    }
}

/// What a blob request on a proxied name wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobWant {
    /// Its size only (`HEAD`).
    Head,
    /// All of it.
    Whole,
    /// A range of it: served once it is stored.
    Range,
}

/// The answer to a blob request the cache did not hold.
pub enum PulledBlob {
    /// Now stored and linked in the repository; serve it as usual.
    Stored(u64),
    /// Its size, as the upstream told a `HEAD` (nothing stored).
    Size(u64),
    /// Being downloaded; the bytes, ending with an error if they prove wrong.
    Streaming {
        /// Its size.
        size: u64,
        /// The bytes.
        chunks: BlobChunks,
    },
}

/// One upstream as the cache uses it.
struct Route {
    prefix: String,
    ns: Option<String>,
    upstream: Arc<Upstream>,
    ttl: Duration,
    push: ProxyPush,
    max_blob_bytes: Option<u64>,
}

/// A shared download's progress, watched by every client of it.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The upstream answered: its size is known (if it sent one).
    started: bool,
    size: Option<u64>,
    /// Bytes in the spool file.
    written: u64,
    /// How it ended: stored (and linked), or why not.
    end: Option<Result<u64, Failure>>,
}

/// Why a download failed, kept to answer every client of it.
#[derive(Debug, Clone)]
enum Failure {
    Upstream(UpstreamError),
    /// The bytes were not what the digest says (or not as many as announced).
    Corrupt(String),
    /// The local stores failed.
    Store(String),
}

impl Failure {
    fn into_error(self, digest: &Digest, url: &str) -> RegistryError {
        match self {
            Failure::Upstream(UpstreamError::NotFound) => {
                RegistryError::BlobUnknown(digest.to_string())
            }
            Failure::Upstream(e) => RegistryError::Upstream {
                url: url.to_string(),
                error: e,
            },
            Failure::Corrupt(why) => RegistryError::UpstreamCorrupt {
                url: url.to_string(),
                why,
            },
            Failure::Store(why) => RegistryError::Internal(why),
        }
    }
}

/// A download under way.
struct Pull {
    spool: PathBuf,
    progress: watch::Receiver<Progress>,
    /// Repositories to link the blob into once stored (each requester's).
    repos: Mutex<Vec<RepoName>>,
}

/// The upstreams and the cache's in-memory state.
pub(crate) struct Proxies {
    routes: Vec<Route>,
    unknown_ns: UnknownNs,
    spool_dir: PathBuf,
    /// When the upstream last confirmed each `(repository, tag)`.
    fresh: Mutex<HashMap<(String, String), Instant>>,
    /// Downloads under way, by digest.
    pulls: Mutex<HashMap<String, Arc<Pull>>>,
}

/// Most `(repository, tag)` freshness entries kept before old ones are dropped.
const FRESH_LIMIT: usize = 100_000;

/// Bytes gathered before they are written to the spool file.
const SPOOL_BATCH: usize = 256 << 10;

impl Proxies {
    /// The upstreams `config` names (none: the registry is no cache).
    pub(crate) fn new(config: &RegistryConfig) -> Result<Proxies, RegistryError> {
        let routes = config
            .upstreams
            .iter()
            .map(|u: &UpstreamConfig| {
                Ok(Route {
                    prefix: u.local_prefix(),
                    ns: u.ns.clone(),
                    upstream: Arc::new(Upstream::new(u).map_err(|e| {
                        RegistryError::Internal(format!("upstream {}: {e}", u.url))
                    })?),
                    ttl: Duration::from_secs(u.tag_ttl_secs),
                    push: u.push,
                    max_blob_bytes: u.max_blob_bytes,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        let spool_dir = config.data_dir.join("proxy");
        if !routes.is_empty() {
            remove_abandoned_spools(&spool_dir);
        }
        Ok(Proxies {
            routes,
            unknown_ns: config.unknown_ns,
            spool_dir,
            fresh: Mutex::new(HashMap::new()),
            pulls: Mutex::new(HashMap::new()),
        })
    }

    /// The route of a local name and the upstream's name for it.
    fn route(&self, repo: &RepoName) -> Option<(&Route, String)> {
        self.routes.iter().find_map(|r| {
            repo.as_str()
                .strip_prefix(r.prefix.as_str())
                .map(|rest| (r, rest.to_string()))
        })
    }

    fn is_fresh(&self, repo: &RepoName, tag: &str, ttl: Duration) -> bool {
        let fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        fresh
            .get(&(repo.to_string(), tag.to_string()))
            .is_some_and(|t| t.elapsed() < ttl)
    }

    fn confirm(&self, repo: &RepoName, tag: &str) {
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        if fresh.len() >= FRESH_LIMIT {
            let oldest = Instant::now() - Duration::from_secs(3600);
            fresh.retain(|_, t| *t > oldest);
            if fresh.len() >= FRESH_LIMIT {
                fresh.clear();
            }
        }
        fresh.insert((repo.to_string(), tag.to_string()), Instant::now());
    }

    fn pulls(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pull>>> {
        self.pulls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a request's `?ns=` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Not a cache, or an unknown `ns` the operator ignores: serve the name as it is.
    Ignored,
    /// Serve `<prefix><name>` and answer `OCI-Namespace`.
    Prefix(String),
}

impl Registry {
    /// What `?ns=<ns>` means here: an upstream's local prefix, nothing (no
    /// upstreams, or `unknown_ns = "ignore"`), or a 404 naming it.
    pub fn namespace(&self, ns: &str) -> Result<Namespace, RegistryError> {
        let p = &self.proxies;
        if p.routes.is_empty() {
            return Ok(Namespace::Ignored);
        }
        // Host names are case-insensitive (RFC 4343).
        let named = |r: &&Route| r.ns.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(ns));
        match p.routes.iter().find(named) {
            Some(r) => Ok(Namespace::Prefix(r.prefix.clone())),
            None if p.unknown_ns == UnknownNs::Ignore => Ok(Namespace::Ignored),
            None => Err(RegistryError::NamespaceUnknown(ns.to_string())),
        }
    }

    /// Whether `repo` is served through an upstream.
    pub fn is_proxied(&self, repo: &RepoName) -> bool {
        self.proxies.route(repo).is_some()
    }

    /// Refuses a write to a proxied name unless its upstream allows pushes.
    pub(crate) fn writable(&self, repo: &RepoName) -> Result<(), RegistryError> {
        match self.proxies.route(repo) {
            Some((r, _)) if r.push == ProxyPush::Deny => Err(RegistryError::Denied(format!(
                "{repo} is a read-only cache of {}; push to the upstream instead",
                r.upstream.url()
            ))),
            _ => Ok(()),
        }
    }

    /// A manifest, through the cache when `repo` is proxied; the status says
    /// where a proxied one came from.
    pub async fn read_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(ManifestRecord, Option<CacheStatus>), RegistryError> {
        let Some((route, remote)) = self.proxies.route(repo) else {
            return Ok((self.get_manifest(repo, reference).await?, None));
        };
        let answer = self.proxied_manifest(route, &remote, repo, reference).await;
        let result = match &answer {
            Ok((_, s)) => s.as_str(),
            Err(RegistryError::ManifestUnknown(_)) => "unknown",
            Err(_) => "error",
        };
        self.metrics.pull_through("manifest", result);
        let (record, status) = answer?;
        Ok((record, Some(status)))
    }

    /// A manifest of a proxied name, and where it came from.
    async fn proxied_manifest(
        &self,
        route: &Route,
        remote: &str,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(ManifestRecord, CacheStatus), RegistryError> {
        let local = self
            .meta
            .get_manifest(repo.as_str(), &reference.to_string())
            .await?;
        let (record, status) = match (reference, local) {
            (Reference::Digest(_), Some(m)) => (m, CacheStatus::Hit),
            (Reference::Tag(t), Some(m)) if self.proxies.is_fresh(repo, t.as_str(), route.ttl) => {
                (m, CacheStatus::Hit)
            }
            (Reference::Tag(t), Some(m)) => {
                match route
                    .upstream
                    .manifest(remote, t.as_str(), true, self.config.max_manifest_bytes)
                    .await
                {
                    Ok(head) if head.digest.as_deref() == Some(m.digest.as_str()) => {
                        self.proxies.confirm(repo, t.as_str());
                        (m, CacheStatus::Revalidated)
                    }
                    Ok(_) => (
                        self.fetch_manifest(route, remote, repo, reference).await?,
                        CacheStatus::Miss,
                    ),
                    Err(UpstreamError::NotFound) => {
                        // Gone upstream: the tag goes from the cache too, so
                        // its tag list stops naming it (the manifest stays,
                        // under its digest).
                        self.meta.delete_tag(repo.as_str(), t.as_str()).await?;
                        return Err(RegistryError::ManifestUnknown(reference.to_string()));
                    }
                    Err(e) => {
                        tracing::warn!(upstream = route.upstream.url(), %repo, tag = %t, error = %e, "serving a cached tag the upstream could not confirm");
                        (m, CacheStatus::Stale)
                    }
                }
            }
            (_, None) => (
                self.fetch_manifest(route, remote, repo, reference).await?,
                CacheStatus::Miss,
            ),
        };
        Ok((record, status))
    }

    /// Fetches a manifest from the upstream, checks it, and stores it (with its
    /// tag, when asked by tag).
    async fn fetch_manifest(
        &self,
        route: &Route,
        remote: &str,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestRecord, RegistryError> {
        let url = route.upstream.url();
        let answer = route
            .upstream
            .manifest(
                remote,
                &reference.to_string(),
                false,
                self.config.max_manifest_bytes,
            )
            .await
            .map_err(|e| match e {
                UpstreamError::NotFound => RegistryError::ManifestUnknown(reference.to_string()),
                e => RegistryError::Upstream {
                    url: url.to_string(),
                    error: e,
                },
            })?;
        let corrupt = |why: String| RegistryError::UpstreamCorrupt {
            url: url.to_string(),
            why,
        };
        let algorithm = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => answer
                .digest
                .as_deref()
                .and_then(|d| d.parse::<Digest>().ok())
                .map_or(Algorithm::Sha256, |d| d.algorithm()),
        };
        let actual = algorithm.digest_of(&answer.bytes);
        let claimed = match reference {
            Reference::Digest(d) => Some(d.to_string()),
            Reference::Tag(_) => answer.digest.clone(),
        };
        if let Some(claimed) = claimed.filter(|c| *c != actual.to_string()) {
            return Err(corrupt(format!(
                "the manifest it sent for {reference} hashes to {actual}, not {claimed}"
            )));
        }
        let stored = self
            .store_manifest(
                repo,
                &Reference::Digest(actual.clone()),
                answer.content_type.as_deref(),
                answer.bytes.to_vec(),
                match reference {
                    Reference::Tag(t) => vec![t.clone()],
                    Reference::Digest(_) => vec![],
                },
                true,
            )
            .await
            .map_err(|e| match e {
                RegistryError::ManifestInvalid(m) => corrupt(format!(
                    "the manifest it sent for {reference} is invalid: {m}"
                )),
                e => e,
            })?;
        if let Reference::Tag(t) = reference {
            self.proxies.confirm(repo, t.as_str());
        }
        Ok(ManifestRecord {
            digest: stored.digest.to_string(),
            media_type: answer
                .content_type
                .as_deref()
                .map(crate::oci::manifest::bare_content_type)
                .map(String::from)
                .unwrap_or_else(|| self.media_type_of(&answer.bytes)),
            bytes: answer.bytes.to_vec(),
        })
    }

    /// The `mediaType` a manifest declares (for an upstream that sent no Content-Type).
    fn media_type_of(&self, bytes: &[u8]) -> String {
        crate::oci::ManifestView::parse(bytes, None)
            .map(|v| v.media_type)
            .unwrap_or_default()
    }

    /// A blob the proxied `repo` does not link yet: linked from the store when
    /// another repository brought it and the upstream confirms that its own
    /// repository holds it, else sized by the upstream (`Head`) or downloaded
    /// through the cache.
    pub async fn pull_blob(
        self: &Arc<Self>,
        repo: &RepoName,
        digest: &Digest,
        want: BlobWant,
    ) -> Result<PulledBlob, RegistryError> {
        let Some((route, remote)) = self.proxies.route(repo) else {
            return Err(RegistryError::BlobUnknown(digest.to_string()));
        };
        let url = route.upstream.url().to_string();
        if let Some(size) = self.blobs.size_of(digest).await? {
            // Held, but brought by another repository, perhaps a private one
            // or another upstream's: only the upstream's word that this name
            // holds the blob lets the cache serve the copy (without a download).
            self.metrics.pull_through("blob", "revalidated");
            return match route.upstream.blob_size(&remote, &digest.to_string()).await {
                Ok(upstream) if upstream == size => {
                    self.link(repo, digest, size).await?;
                    Ok(PulledBlob::Stored(size))
                }
                Ok(upstream) => Err(RegistryError::UpstreamCorrupt {
                    url,
                    why: format!("it says {digest} is {upstream} bytes; that content is {size}"),
                }),
                Err(e) => Err(Failure::Upstream(e).into_error(digest, &url)),
            };
        }
        if want == BlobWant::Head {
            self.metrics.pull_through("blob", "head");
            return match route.upstream.blob_size(&remote, &digest.to_string()).await {
                Ok(size) => Ok(PulledBlob::Size(size)),
                Err(e) => Err(Failure::Upstream(e).into_error(digest, &url)),
            };
        }
        let (pull, spool) = self.join_pull(route, remote, repo, digest)?;
        let mut progress = pull.progress.clone();
        let state = progress
            .wait_for(|p| p.started || p.end.is_some())
            .await
            .map(|p| p.clone())
            .map_err(|_| RegistryError::Internal("a blob download vanished".into()))?;
        match (state.end, state.size, want) {
            (Some(Err(f)), _, _) => Err(f.into_error(digest, &url)),
            (Some(Ok(size)), _, _) => Ok(PulledBlob::Stored(size)),
            (None, Some(size), BlobWant::Whole) => Ok(PulledBlob::Streaming {
                size,
                chunks: spool_chunks(spool, size, progress),
            }),
            // A range, or a size the upstream did not announce: wait for the end.
            _ => {
                let end = progress
                    .wait_for(|p| p.end.is_some())
                    .await
                    .map(|p| p.end.clone())
                    .map_err(|_| RegistryError::Internal("a blob download vanished".into()))?;
                match end {
                    Some(Ok(size)) => Ok(PulledBlob::Stored(size)),
                    Some(Err(f)) => Err(f.into_error(digest, &url)),
                    None => Err(RegistryError::Internal("a blob download vanished".into())),
                }
            }
        }
    }

    /// Joins the download of `digest`, starting it if none is under way; the
    /// spool file is opened here, while the download cannot have removed it.
    fn join_pull(
        self: &Arc<Self>,
        route: &Route,
        remote: String,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<(Arc<Pull>, std::fs::File), RegistryError> {
        let key = digest.to_string();
        let mut pulls = self.proxies.pulls();
        if let Some(pull) = pulls.get(&key) {
            pull.repos
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(repo.clone());
            let file = std::fs::File::open(&pull.spool)?;
            return Ok((pull.clone(), file));
        }
        std::fs::create_dir_all(&self.proxies.spool_dir)?;
        let spool = self
            .proxies
            .spool_dir
            .join(uuid::Uuid::new_v4().simple().to_string());
        let writer = std::fs::File::create(&spool)?;
        let reader = std::fs::File::open(&spool)?;
        let (tx, rx) = watch::channel(Progress::default());
        let pull = Arc::new(Pull {
            spool,
            progress: rx,
            repos: Mutex::new(vec![repo.clone()]),
        });
        pulls.insert(key, pull.clone());
        drop(pulls);
        let registry = self.clone();
        let upstream = route.upstream.clone();
        let limit = route.max_blob_bytes;
        let digest = digest.clone();
        let job = pull.clone();
        tokio::spawn(async move {
            let end = registry
                .download(&upstream, &remote, &digest, limit, writer, &tx)
                .await;
            registry.finish_pull(&digest, &job, end, &tx).await;
        });
        Ok((pull, reader))
    }

    /// Downloads a blob into the spool file and, at the same time, into an
    /// upload that verifies its digest and publishes it; returns its size.
    async fn download(
        &self,
        upstream: &Upstream,
        remote: &str,
        digest: &Digest,
        limit: Option<u64>,
        spool: std::fs::File,
        tx: &watch::Sender<Progress>,
    ) -> Result<u64, Failure> {
        use futures_util::StreamExt;
        let mut answer = upstream
            .blob(remote, &digest.to_string())
            .await
            .map_err(Failure::Upstream)?;
        if let (Some(size), Some(limit)) = (answer.size, limit) {
            if size > limit {
                return Err(Failure::Upstream(UpstreamError::TooLarge { size, limit }));
            }
        }
        tx.send_modify(|p| {
            p.started = true;
            p.size = answer.size;
        });
        let (feed, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
        let body = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let sessions = self.uploads.clone();
        let (d, announced) = (digest.clone(), answer.size);
        // Linked into each requester's repository once stored (`finish_pull`).
        let unlinked: Link = Box::new(|_| Ok(()));
        let upload =
            tokio::spawn(async move { sessions.monolithic(&d, announced, body, unlinked).await });
        let mut spool = tokio::fs::File::from_std(spool);
        let mut batch = Vec::with_capacity(SPOOL_BATCH);
        let mut total = 0u64;
        let mut failed = None;
        while let Some(item) = answer.body.next().await {
            let chunk = match item {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(Failure::Upstream(e));
                    break;
                }
            };
            total += chunk.len() as u64;
            if let Some(limit) = limit.filter(|l| total > *l) {
                failed = Some(Failure::Upstream(UpstreamError::TooLarge {
                    size: total,
                    limit,
                }));
                break;
            }
            batch.extend_from_slice(&chunk);
            if feed.send(Ok(chunk)).await.is_err() {
                // The upload stopped early: its result says why.
                break;
            }
            if batch.len() >= SPOOL_BATCH {
                spill(&mut spool, &mut batch, tx).await?;
            }
        }
        spill(&mut spool, &mut batch, tx).await?;
        if let Some(f) = &failed {
            let _ = feed.send(Err(io::Error::other(format!("{f:?}")))).await;
        }
        drop(feed);
        let stored = upload
            .await
            .map_err(|e| Failure::Store(format!("the upload task failed: {e}")))?;
        if let Some(f) = failed {
            return Err(f);
        }
        match stored {
            Ok(size) => Ok(size),
            Err(RegistryError::DigestMismatch { expected, actual }) => Err(Failure::Corrupt(
                format!("the blob it sent for {expected} hashes to {actual}"),
            )),
            Err(RegistryError::SizeInvalid(why)) | Err(RegistryError::BodyIncomplete(why)) => {
                Err(Failure::Corrupt(why))
            }
            Err(e) => Err(Failure::Store(e.to_string())),
        }
    }

    /// Ends a download: links the blob into every requester's repository (once
    /// stored), tells the clients, and removes the spool file (open readers
    /// keep reading it).
    async fn finish_pull(
        &self,
        digest: &Digest,
        pull: &Pull,
        end: Result<u64, Failure>,
        tx: &watch::Sender<Progress>,
    ) {
        self.proxies.pulls().remove(&digest.to_string());
        let repos = std::mem::take(&mut *pull.repos.lock().unwrap_or_else(|e| e.into_inner()));
        let mut end = end;
        if let Ok(size) = end {
            let mut seen = std::collections::HashSet::new();
            for repo in repos.into_iter().filter(|r| seen.insert(r.clone())) {
                if let Err(e) = self.link(&repo, digest, size).await {
                    end = Err(Failure::Store(format!(
                        "linking the pulled blob failed: {e}"
                    )));
                    break;
                }
            }
        }
        match &end {
            Ok(size) => {
                self.metrics.pull_through("blob", "miss");
                self.metrics.upstream_bytes(*size);
            }
            Err(f) => {
                self.metrics.pull_through("blob", "error");
                tracing::warn!(%digest, failure = ?f, "a pull-through download failed");
            }
        }
        tx.send_modify(|p| p.end = Some(end));
        let _ = std::fs::remove_file(&pull.spool);
    }
}

/// How long a spool file goes unwritten before a starting server removes it
/// as left behind by a process that stopped mid-download.
const ABANDONED_SPOOL: Duration = Duration::from_secs(600);

/// Removes spool files nothing has written to for [`ABANDONED_SPOOL`]: a
/// download under way (even in another process on the same directory) writes
/// more often than that, unless its upstream trickles under 256 KiB in ten
/// minutes without timing out.
fn remove_abandoned_spools(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if idle.is_some_and(|i| i > ABANDONED_SPOOL) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes the gathered bytes to the spool file and tells the readers.
async fn spill(
    spool: &mut tokio::fs::File,
    batch: &mut Vec<u8>,
    tx: &watch::Sender<Progress>,
) -> Result<(), Failure> {
    use tokio::io::AsyncWriteExt;
    if batch.is_empty() {
        return Ok(());
    }
    let spilled = async {
        spool.write_all(batch).await?;
        spool.flush().await
    };
    spilled
        .await
        .map_err(|e| Failure::Store(format!("the spool file cannot be written: {e}")))?;
    let n = batch.len() as u64;
    batch.clear();
    tx.send_modify(|p| p.written += n);
    Ok(())
}

/// A client's view of a download: the spool file's bytes as they arrive, all
/// but the last one until the blob is stored; an error if the download fails.
fn spool_chunks(file: std::fs::File, size: u64, progress: watch::Receiver<Progress>) -> BlobChunks {
    struct Reader {
        file: tokio::fs::File,
        pos: u64,
        size: u64,
        progress: watch::Receiver<Progress>,
        done: bool,
    }
    let reader = Reader {
        file: tokio::fs::File::from_std(file),
        pos: 0,
        size,
        progress,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(reader, |mut r| async move {
        if r.done {
            return None;
        }
        loop {
            let p = r.progress.borrow_and_update().clone();
            let stored = match &p.end {
                Some(Err(f)) => {
                    r.done = true;
                    return Some((
                        Err(io::Error::other(format!("pull-through failed: {f:?}"))),
                        r,
                    ));
                }
                Some(Ok(_)) => true,
                None => false,
            };
            let available = if stored {
                p.written
            } else {
                p.written.min(r.size.saturating_sub(1))
            };
            if r.pos < available {
                let want = (available - r.pos).min(crate::store::DEFAULT_CHUNK as u64) as usize;
                let mut buf = vec![0u8; want];
                return match r.file.read(&mut buf).await {
                    Ok(0) => {
                        r.done = true;
                        Some((Err(io::Error::other("the spool file ended early")), r))
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        r.pos += n as u64;
                        Some((Ok(Bytes::from(buf)), r))
                    }
                    Err(e) => {
                        r.done = true;
                        Some((Err(e), r))
                    }
                };
            }
            if stored {
                return None;
            }
            if r.progress.changed().await.is_err() {
                r.done = true;
                return Some((Err(io::Error::other("a blob download vanished")), r));
            }
        }
    }))
}

/// Most bytes of a tag list or referrers index read from an upstream.
const LIST_LIMIT: u64 = 16 << 20;

impl Registry {
    /// One page of tags; for a proxied name, the upstream's tags merged with
    /// the cached ones (the cached ones alone when the upstream cannot answer).
    pub async fn read_tags(
        &self,
        repo: &RepoName,
        last: Option<String>,
        n: u32,
    ) -> Result<(crate::store::Page<String>, Option<CacheStatus>), RegistryError> {
        let Some((route, remote)) = self.proxies.route(repo) else {
            return Ok((self.list_tags(repo, last, n).await?, None));
        };
        let answer = self.proxied_tags(route, &remote, repo, last, n).await;
        let result = match &answer {
            Ok((_, s)) => s.as_str(),
            Err(_) => "error",
        };
        self.metrics.pull_through("list", result);
        let (page, status) = answer?;
        Ok((page, Some(status)))
    }

    /// One page of a proxied name's tags, and where they came from.
    async fn proxied_tags(
        &self,
        route: &Route,
        remote: &str,
        repo: &RepoName,
        last: Option<String>,
        n: u32,
    ) -> Result<(crate::store::Page<String>, CacheStatus), RegistryError> {
        let cached = self.all_tags(repo).await?;
        let (upstream, status) = match route.upstream.tags(remote, LIST_LIMIT).await {
            Ok(tags) => (tags, CacheStatus::Merged),
            Err(UpstreamError::NotFound) => (Vec::new(), CacheStatus::Merged),
            Err(e) if cached.is_some() => {
                tracing::warn!(upstream = route.upstream.url(), %repo, error = %e, "listing cached tags only");
                (Vec::new(), CacheStatus::Stale)
            }
            Err(e) => {
                return Err(RegistryError::Upstream {
                    url: route.upstream.url().to_string(),
                    error: e,
                })
            }
        };
        if cached.is_none() && upstream.is_empty() && status == CacheStatus::Merged {
            return Err(RegistryError::NameUnknown(repo.to_string()));
        }
        let all: std::collections::BTreeSet<String> = cached
            .unwrap_or_default()
            .into_iter()
            .chain(upstream)
            .collect();
        let n = n.min(self.config.max_list_page) as usize;
        let mut after = all
            .into_iter()
            .filter(|t| last.as_ref().is_none_or(|l| t > l));
        let items: Vec<String> = after.by_ref().take(n).collect();
        let more = after.next().is_some();
        Ok((crate::store::Page { items, more }, status))
    }

    /// Every tag the cache holds for `repo` (`None`: the repository is unknown).
    async fn all_tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>, RegistryError> {
        let mut all = Vec::new();
        let mut last = None;
        // Bounded: at most 100 pages of the largest page size.
        for _ in 0..100 {
            let max = self.config.max_list_page;
            let Some(page) = self
                .meta
                .list_tags(repo.as_str(), last.as_deref(), max)
                .await?
            else {
                return Ok(None);
            };
            last = page.items.last().cloned();
            all.extend(page.items);
            if !page.more {
                break;
            }
        }
        Ok(Some(all))
    }

    /// One page of referrers; for a proxied name's first page, the upstream's
    /// merged with the cached ones.
    pub async fn read_referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<String>,
        last: Option<String>,
    ) -> Result<
        (
            crate::store::Page<crate::store::ReferrerRecord>,
            Option<CacheStatus>,
        ),
        RegistryError,
    > {
        let first = last.is_none();
        let mut page = self
            .referrers(repo, subject, artifact_type.clone(), last)
            .await?;
        let Some((route, remote)) = self.proxies.route(repo) else {
            return Ok((page, None));
        };
        if !first {
            return Ok((page, Some(CacheStatus::Hit)));
        }
        let listed = route
            .upstream
            .referrers(
                &remote,
                &subject.to_string(),
                artifact_type.as_deref(),
                LIST_LIMIT,
            )
            .await;
        let descriptors = match listed {
            Ok(d) => d,
            Err(UpstreamError::NotFound) => Vec::new(),
            Err(e) => {
                tracing::warn!(upstream = route.upstream.url(), %repo, error = %e, "listing cached referrers only");
                return Ok((page, Some(CacheStatus::Stale)));
            }
        };
        for d in descriptors {
            let Some(record) = referrer_of(&d) else {
                continue;
            };
            if artifact_type
                .as_ref()
                .is_some_and(|t| record.artifact_type.as_ref() != Some(t))
            {
                continue;
            }
            if !page.items.iter().any(|r| r.digest == record.digest) {
                page.items.push(record);
            }
        }
        Ok((page, Some(CacheStatus::Merged)))
    }
}

/// A referrers-index descriptor as a record; `None` when it lacks a valid
/// digest, media type or size.
fn referrer_of(d: &serde_json::Value) -> Option<crate::store::ReferrerRecord> {
    let digest = d.get("digest")?.as_str()?.parse::<Digest>().ok()?;
    Some(crate::store::ReferrerRecord {
        digest: digest.to_string(),
        media_type: d.get("mediaType")?.as_str()?.to_string(),
        size: d.get("size")?.as_i64().filter(|s| *s >= 0)?,
        artifact_type: d
            .get("artifactType")
            .and_then(|a| a.as_str())
            .map(String::from),
        annotations: d
            .get("annotations")
            .filter(|a| a.is_object())
            .map(|a| a.to_string()),
    })
}
