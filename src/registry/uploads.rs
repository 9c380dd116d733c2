//! Upload sessions, which any server sharing the stores can continue.
//!
//! Opening a session writes nothing: its id is signed, and says which
//! repository and algorithm it is for and when it was opened
//! ([`session_ids`](super::session_ids)). From its first chunk a session is a
//! record in the metadata store (repository, algorithm, bytes held, the
//! running hash's state after them; `store::UploadStore`) and a staging area
//! in the blob store; a session closed by one whole body never has either.
//! Closing a session keeps its id among the closed ones, so that it cannot
//! be used again.
//!
//! A chunk is written under the staging area's lock ([`Staging::lock`]: an
//! advisory lock on a staging file, so servers sharing a data directory take
//! turns), then recorded with a
//! compare-and-set on the size it started from. The hash is never computed
//! again from byte 0: a server that did not write the previous chunk resumes
//! the hash from the recorded state, so a chunked upload costs time linear in
//! its size whichever server takes each chunk. Each process keeps the
//! staging areas it has open, reusing one while the record still says it
//! holds exactly what the handle holds.
//!
//! A single-request upload (`POST ?digest=` with a body) is never recorded: no
//! one else can name its session.
//!
//! A closing request whose body is declared small ([`SMALL_BODY`]) is read
//! whole first; then the session is claimed, the bytes written, verified and
//! published, the record removed and the blob linked in one blocking call,
//! instead of a hop to the blocking pool and back for each step.
//!
//! Idle sessions expire (by their record's time, on any server), and staging
//! areas with no record are removed. A staging area left by a version before
//! records (a note and no record) is resumed by re-hashing it once.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::hash_lane::HashLane;
use super::session_ids::{SessionIds, Signed, SIGNED_LEN};
use super::staged::{catch_up, resume_recorded, StagedBlob};
use super::stoppable::{Readers, Reading};
use super::writer::BodyWriter;
use super::{blocking, RegistryError};
use crate::oci::{Algorithm, Digest, RepoName};
use crate::store::{wait, BlobStore, Clock, MetadataStore, Staging, Together, UploadRecord};

/// The note a version before records kept beside a staging area, read to
/// adopt such a session. New sessions have none: their record says as much.
#[derive(Debug, Clone, Deserialize)]
struct SessionInfo {
    repo: String,
    algorithm: String,
}

/// A staging area this process has open, with the hash of what it holds.
#[derive(Default)]
struct Open {
    staged: Option<StagedBlob>,
    /// When the last request let go of it.
    released: Option<std::time::Instant>,
}

/// Most sessions this process keeps a staging area open for between their
/// requests. Each holds a file (or an object store's upload) open, and a
/// session a client abandons is kept until it expires (an hour by default):
/// without a bound, enough abandoned sessions ran the process out of file
/// descriptors, and every request that opens a file failed. Past the bound,
/// the sessions idle longest let go of theirs; their next request reopens it
/// and resumes the hash from the record, as another server would.
const OPEN_KEPT: usize = 1024;

type OpenMap = HashMap<String, Arc<tokio::sync::Mutex<Open>>>;

fn lock_map(open: &Mutex<OpenMap>) -> std::sync::MutexGuard<'_, OpenMap> {
    open.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forgets the sessions idle longest (no request holds them) until at most
/// `keep` are left, or none is idle; returns their staging areas, to be
/// closed once the map is unlocked.
fn trim(map: &mut OpenMap, keep: usize) -> Vec<StagedBlob> {
    let mut idle: Vec<(Option<std::time::Instant>, String)> = map
        .iter()
        .filter_map(|(id, open)| Some((open.try_lock().ok()?.released, id.clone())))
        .collect();
    idle.sort_unstable();
    let excess = map.len().saturating_sub(keep);
    let mut dropped = Vec::new();
    for (_, id) in idle.into_iter().take(excess) {
        let Some(open) = map.remove(&id) else {
            continue;
        };
        // Claimed since it was listed: it stays.
        let Ok(mut held) = open.try_lock() else {
            map.insert(id, open.clone());
            continue;
        };
        dropped.extend(held.staged.take());
    }
    dropped
}

/// The upload sessions of one registry.
pub struct UploadSessions {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    /// How long a session may sit idle (never written to, for one with no
    /// record) before it expires.
    ttl: Duration,
    /// Signs and reads session ids, with the store's key once read.
    ids: tokio::sync::OnceCell<Arc<SessionIds>>,
    /// Sessions with a request in progress or a staging area kept open here.
    open: Arc<Mutex<OpenMap>>,
    /// Bodies being read into sessions, for a `DELETE` to stop.
    readers: Readers,
}

/// A chunk's claimed position, from `Content-Range: <start>-<end>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end: u64,
}

/// A session claimed for one request: its staging area locked, in step with
/// its record.
struct Claimed {
    guard: tokio::sync::OwnedMutexGuard<Open>,
    staged: StagedBlob,
    record: UploadRecord,
}

impl UploadSessions {
    /// Sessions recorded in `meta` with their bytes in `blobs`; `clock` dates
    /// expiry as `meta` dates records, and sessions idle for `ttl` expire.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> Self {
        UploadSessions {
            blobs,
            meta,
            clock,
            ttl,
            ids: tokio::sync::OnceCell::new(),
            open: Arc::new(Mutex::new(HashMap::new())),
            readers: Readers::default(),
        }
    }

    /// The signer of session ids (the store's key is read once).
    async fn ids(&self) -> Result<Arc<SessionIds>, RegistryError> {
        let ids = self
            .ids
            .get_or_try_init(|| async {
                let key = self.meta.upload_key().await?;
                Ok::<_, RegistryError>(Arc::new(SessionIds::new(&key)))
            })
            .await?;
        Ok(ids.clone())
    }

    /// Checks `id` for `repo`: a signed id says what it is for (`Some`), an id
    /// of an earlier version is only a name (`None`), anything else is
    /// unknown.
    async fn check_id(&self, repo: &RepoName, id: &str) -> Result<Option<Signed>, RegistryError> {
        if id.parse::<UploadId>().is_err() {
            return Err(RegistryError::UploadUnknown(id.to_string()));
        }
        if id.len() != SIGNED_LEN {
            return Ok(None);
        }
        match self.ids().await?.read(id, repo.as_str()) {
            Some(signed) => Ok(Some(signed)),
            None => Err(RegistryError::UploadUnknown(id.to_string())),
        }
    }

    /// The algorithm of a signed session that may still be opened without a
    /// record: one opened less than the session lifetime ago.
    fn openable(&self, signed: Option<Signed>) -> Option<Algorithm> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.now_millis();
        signed
            .filter(|s| {
                s.opened_at > now.saturating_sub(ttl_ms) && s.opened_at <= now + CLOCK_SKEW_MS
            })
            .map(|s| s.algorithm)
    }

    fn open_map(&self) -> std::sync::MutexGuard<'_, OpenMap> {
        lock_map(&self.open)
    }

    fn entry(&self, id: &str) -> Arc<tokio::sync::Mutex<Open>> {
        self.open_map().entry(id.to_string()).or_default().clone()
    }

    /// Opens a new session and returns its id. Nothing is written: the record
    /// and the staging area are made by the first request that writes bytes,
    /// and a session closed by one small body needs neither (see
    /// `finish_small`).
    pub async fn create(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
    ) -> Result<String, RegistryError> {
        let ids = self.ids().await?;
        Ok(ids.issue(repo.as_str(), algorithm, self.clock.now_millis()))
    }

    /// Locks the session's staging area and brings it in step with its record
    /// (made now for a signed session's first chunk).
    async fn claim(&self, repo: &RepoName, id: &str) -> Result<Claimed, RegistryError> {
        // Anything but an id of ours never touches a store.
        let openable = self.openable(self.check_id(repo, id).await?);
        let mut guard = self.entry(id).lock_owned().await;
        let cached = guard.staged.take();
        let (blobs, meta) = (self.blobs.clone(), self.meta.clone());
        let (id2, repo2) = (id.to_string(), repo.to_string());
        let claimed =
            blocking(move || claim_blocking(&*blobs, &*meta, &id2, &repo2, cached, openable)).await;
        match claimed {
            Ok((staged, record)) => Ok(Claimed {
                guard,
                staged,
                record,
            }),
            Err(e) => {
                drop(guard);
                self.forget_if_idle(id);
                Err(e)
            }
        }
    }

    /// Unlocks a claimed session and keeps its staging area open for the next
    /// request.
    fn release(&self, mut guard: tokio::sync::OwnedMutexGuard<Open>, staged: StagedBlob) {
        staged.staging().unlock();
        guard.staged = Some(staged);
        guard.released = Some(std::time::Instant::now());
        drop(guard);
        let mut map = self.open_map();
        if map.len() > OPEN_KEPT {
            let dropped = trim(&mut map, OPEN_KEPT * 3 / 4);
            drop(map);
            drop(dropped);
        }
    }

    /// Drops this process's handle on a session no longer open here.
    fn forget_if_idle(&self, id: &str) {
        let mut map = self.open_map();
        if let Some(e) = map.get(id) {
            if e.try_lock().is_ok_and(|o| o.staged.is_none()) {
                map.remove(id);
            }
        }
    }

    /// Bytes received so far.
    pub async fn status(&self, repo: &RepoName, id: &str) -> Result<u64, RegistryError> {
        let signed = self.check_id(repo, id).await?;
        match self.meta.upload(id).await? {
            Some(r) if r.repo == repo.as_str() => Ok(r.size),
            // Signed, never written to: open until closed or expired.
            None if signed.is_some() => match self.openable(signed) {
                Some(_) if !self.meta.upload_closed(id).await? => Ok(0),
                _ => Err(RegistryError::UploadUnknown(id.to_string())),
            },
            // A session of an earlier version (a note, no record) is resumed.
            _ => {
                let c = self.claim(repo, id).await?;
                let size = c.record.size;
                self.release(c.guard, c.staged);
                Ok(size)
            }
        }
    }

    /// Appends a body to a session. With `range`, the chunk must start where the
    /// upload ends (else 416) and be exactly as long as it claims; with `length`, the
    /// body must be exactly that long. On any failure the session is rolled back to
    /// where it was, so the client can retry the chunk.
    pub async fn append<S>(
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
        let Claimed {
            guard,
            staged,
            mut record,
        } = self.claim(repo, id).await?;
        let from = record.size;
        let checkpoint = staged.checkpoint();
        let reading = self.readers.start(id);
        let (staged, written) = write_chunk(staged, range, length, reading.watch(body)).await;
        match written {
            Ok(0) => {
                self.release(guard, staged);
                return Ok(from);
            }
            Ok(_) => {}
            Err(e) => {
                self.release(guard, staged);
                return Err(stopped_or(&reading, id, e));
            }
        }
        record.size = staged.size();
        // Sealed (readable by every server sharing the store), then recorded:
        // here when the bytes are in place (nothing in it blocks), else in one
        // blocking call.
        let (mut staged, recorded) = if staged.staging().in_place() {
            let mut staged = staged;
            let recorded = match seal_into(&mut staged, &mut record) {
                Ok(()) => self
                    .meta
                    .advance_upload(&record, from)
                    .await
                    .map_err(Into::into),
                Err(e) => Err(e.into()),
            };
            (staged, recorded)
        } else {
            let meta = self.meta.clone();
            let mut sealed = record.clone();
            let (staged, recorded) = tokio::task::spawn_blocking(move || {
                crate::store::off_runtime(|| {
                    let mut staged = staged;
                    let recorded = match seal_into(&mut staged, &mut sealed) {
                        Ok(()) => wait(meta.advance_upload(&sealed, from)).map_err(Into::into),
                        Err(e) => Err(e.into()),
                    };
                    (staged, recorded)
                })
            })
            .await
            .map_err(|e| RegistryError::Internal(format!("blocking task failed: {e}")))?;
            (staged, recorded)
        };
        let recorded: Result<_, RegistryError> =
            recorded.map(|advanced: bool| (advanced, record.size));
        match recorded {
            Ok((true, size)) => {
                self.release(guard, staged);
                Ok(size)
            }
            // Another server recorded a chunk first (a store with no shared
            // lock), or the session was finished, cancelled or expired.
            Ok((false, _)) => {
                staged.staging().unlock();
                let recorded = self.meta.upload(id).await;
                if let Ok(None) = recorded {
                    // Closed meanwhile (cancelled before its first chunk was
                    // recorded, or expired): nobody can use what it staged.
                    let _ = self.discard(id, staged).await;
                    drop(guard);
                    self.open_map().remove(id);
                    return Err(RegistryError::UploadUnknown(id.to_string()));
                }
                drop((staged, guard));
                self.forget_if_idle(id);
                match recorded? {
                    Some(r) => Err(RegistryError::RangeNotSatisfiable {
                        size: r.size,
                        got: from,
                    }),
                    None => Err(RegistryError::UploadUnknown(id.to_string())),
                }
            }
            // Not recorded: the chunk is taken back, so the client may retry it.
            Err(e) => {
                if staged.rollback(checkpoint).is_err() {
                    // Out of step with the record; reopened next time.
                    staged.staging().unlock();
                    return Err(e);
                }
                self.release(guard, staged);
                Err(e)
            }
        }
    }

    /// Closes a session, with an optional last chunk: checks the content against
    /// `digest` and, when it matches, publishes the blob and returns its size. On
    /// a mismatch the session is removed and nothing is stored.
    #[allow(clippy::too_many_arguments)] // the request's parts, and what to do with the blob
    pub async fn finish<S>(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        range: Option<ChunkRange>,
        length: Option<u64>,
        body: S,
        link: Link,
    ) -> Result<u64, RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let body = match gather_small(length, body).await {
            Gathered::Whole(frames) => {
                return self
                    .finish_small(repo, id, digest, range, length, frames, link)
                    .await
            }
            Gathered::Failed(e) => return Err(RegistryError::BodyIncomplete(e.to_string())),
            Gathered::Stream(body) => body,
        };
        let Claimed {
            guard,
            staged,
            record,
        } = self.claim(repo, id).await?;
        let reading = self.readers.start(id);
        let (staged, written) = write_chunk(staged, range, length, reading.watch(body)).await;
        if let Err(e) = written {
            self.release(guard, staged);
            return Err(stopped_or(&reading, id, e));
        }
        // With the whole body in, the close runs to its end on a task of its
        // own, even if the client goes away meanwhile: cut short between
        // publishing and removing the record, it left a session whose status
        // still showed its bytes but that no request could finish, and a
        // blob not linked to the repository.
        let (blobs, meta, open) = (self.blobs.clone(), self.meta.clone(), self.open.clone());
        let (id, expected) = (id.to_string(), digest.clone());
        let closing = tokio::spawn(async move {
            let outcome = blocking(move || verify_and_publish(staged, &expected)).await;
            // Finished either way: a mismatch removes the session too.
            let removed = meta.remove_upload(&record.id).await;
            if outcome.is_err() {
                let _ = blocking(move || {
                    blobs.discard_staging(&record.id);
                    Ok(())
                })
                .await;
            }
            let result = removed.map_err(RegistryError::from).and(outcome);
            drop(guard);
            lock_map(&open).remove(&id);
            let size = result?;
            blocking(move || link(size)).await?;
            Ok(size)
        });
        closing
            .await
            .map_err(|e| RegistryError::Internal(format!("an upload's close failed: {e}")))?
    }

    /// [`UploadSessions::finish`] with the whole (small) last chunk at hand:
    /// claimed, written, verified, published, closed and linked in one
    /// blocking call.
    #[allow(clippy::too_many_arguments)]
    async fn finish_small(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        range: Option<ChunkRange>,
        length: Option<u64>,
        frames: Vec<Bytes>,
        link: Link,
    ) -> Result<u64, RegistryError> {
        let openable = self.openable(self.check_id(repo, id).await?);
        let mut guard = self.entry(id).lock_owned().await;
        let cached = guard.staged.take();
        let link = match &cached {
            Some(_) => link,
            None => {
                let session = Untouched {
                    id: id.to_string(),
                    repo: repo.to_string(),
                    openable: openable.is_some(),
                };
                let body = (digest.clone(), range, length, frames.clone());
                match close_untouched(&self.blobs, &self.meta, session, body, link).await {
                    Ok(closed) => {
                        drop(guard);
                        self.open_map().remove(id);
                        return closed;
                    }
                    Err(link) => link,
                }
            }
        };
        let (blobs, meta) = (self.blobs.clone(), self.meta.clone());
        let (id2, repo2, expected) = (id.to_string(), repo.to_string(), digest.clone());
        let finished = blocking(move || {
            let claimed = claim_blocking(&*blobs, &*meta, &id2, &repo2, cached, openable);
            let (mut staged, record) = match claimed {
                Ok(claimed) => claimed,
                Err(e) => return Ok(Closing::NotClaimed(e)),
            };
            if let Err(e) = append_frames(&mut staged, range, length, &frames) {
                return Ok(Closing::NotWritten(Box::new(staged), e));
            }
            let outcome = verify_and_publish(staged, &expected);
            // Finished either way: a mismatch removes the session too.
            let removed = wait(meta.remove_upload(&record.id));
            if outcome.is_err() {
                blobs.discard_staging(&record.id);
            }
            let result = removed.map_err(RegistryError::from).and(outcome);
            Ok(Closing::Closed(
                result.and_then(|size| link(size).map(|()| size)),
            ))
        })
        .await?;
        match finished {
            Closing::NotClaimed(e) => {
                drop(guard);
                self.forget_if_idle(id);
                Err(e)
            }
            Closing::NotWritten(staged, e) => {
                self.release(guard, *staged);
                Err(e)
            }
            Closing::Closed(result) => {
                drop(guard);
                self.open_map().remove(id);
                result
            }
        }
    }

    /// A single-request upload: staged, verified and published without a
    /// record, since no client can name its session. Returns the size.
    pub async fn monolithic<S>(
        &self,
        digest: &Digest,
        length: Option<u64>,
        body: S,
        link: Link,
    ) -> Result<u64, RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let algorithm = digest.algorithm();
        let blobs = self.blobs.clone();
        let expected = digest.clone();
        let body = match gather_small(length, body).await {
            // Verified here, then published and linked as one write where the
            // stores share one.
            Gathered::Whole(frames) => {
                check_length(None, length, total(&frames))?;
                let bytes = verified_bytes(&expected, &frames)?;
                return together_async(&self.blobs, move || {
                    publish_and_link(&*blobs, &id, &expected, &bytes, link)
                })
                .await?
                .unwrap_or_else(|| {
                    Err(RegistryError::Internal("a blob was never published".into()))
                });
            }
            Gathered::Failed(e) => return Err(RegistryError::BodyIncomplete(e.to_string())),
            Gathered::Stream(body) => body,
        };
        let id2 = id.clone();
        let staged =
            blocking(move || Ok(StagedBlob::new(blobs.create_staging(&id2, b"")?, algorithm)))
                .await?;
        let (staged, written) = write_chunk(staged, None, length, body).await;
        let blobs = self.blobs.clone();
        blocking(move || {
            let outcome = written.and_then(|_| verify_and_publish(staged, &expected));
            settle(&*blobs, &id, outcome, link)
        })
        .await
    }

    /// Cancels a session and removes its staging area.
    pub async fn cancel(&self, repo: &RepoName, id: &str) -> Result<(), RegistryError> {
        let openable = self.openable(self.check_id(repo, id).await?);
        // A request still receiving a chunk lets go of the session now, and
        // so does any that takes it before this one is done.
        let _deleting = self.readers.stop(id);
        // A signed session never written to: closing it is all there is to
        // do. Only while no request of this server holds it, and none left a
        // staging area open here: one whose first chunk was just stopped has
        // made its record and its staging area, which the path below removes.
        if openable.is_some() {
            let guard = self.entry(id).lock_owned().await;
            let empty = guard.staged.is_none() && self.close_if_empty(repo, id).await?;
            drop(guard);
            if empty {
                self.forget_if_idle(id);
                return Ok(());
            }
        }
        let c = self.claim(repo, id).await?;
        let Claimed { guard, staged, .. } = c;
        let result = match self.meta.remove_upload(id).await {
            Ok(_) => self.discard(id, staged).await,
            Err(e) => {
                self.release(guard, staged);
                return Err(e.into());
            }
        };
        drop(guard);
        self.open_map().remove(id);
        result
    }

    /// Lets go of session `id`'s staging area and removes it (the session is
    /// closed).
    async fn discard(&self, id: &str, staged: StagedBlob) -> Result<(), RegistryError> {
        let (blobs, id) = (self.blobs.clone(), id.to_string());
        blocking(move || {
            staged.abandon();
            blobs.discard_staging(&id);
            Ok(())
        })
        .await
    }

    /// Closes session `id` if it has no record (never written to); whether
    /// it did.
    async fn close_if_empty(&self, repo: &RepoName, id: &str) -> Result<bool, RegistryError> {
        Ok(self.meta.upload(id).await?.is_none()
            && self.meta.take_empty_upload(id, repo.as_str()).await?)
    }

    /// Sessions open in this process and the bytes they hold (a session busy
    /// with a chunk counts with no bytes: it is not waited for).
    pub fn in_progress(&self) -> (u64, u64) {
        let map = self.open_map();
        let bytes = map
            .values()
            .filter_map(|s| Some(s.try_lock().ok()?.staged.as_ref()?.size()))
            .sum();
        (map.len() as u64, bytes)
    }

    /// Lets go of what a session's staging area holds that discarding it by id
    /// would not reach (see [`Staging::abandon`]), with the handle open here or
    /// one brought in step with the record.
    fn abandon(&self, id: &str, open: Option<StagedBlob>) {
        if let Some(staged) = open {
            staged.abandon();
            return;
        }
        let Ok(Some(record)) = wait(self.meta.upload(id)) else {
            return;
        };
        let handle = match self.blobs.reopen_staging(id) {
            Ok(Some((staging, _))) => Some(staging),
            _ => self.blobs.create_staging(id, b"").ok(),
        };
        if let Some(mut staging) = handle {
            let _ = staging.adopt(record.size, &record.staging);
            staging.abandon();
        }
    }

    /// Removes sessions idle for longer than `ttl` (by their records, whichever
    /// server wrote them), and staging areas that no record names. Returns how
    /// many went.
    pub fn expire(&self, ttl: Duration) -> usize {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let cutoff = self.clock.now_millis().saturating_sub(ttl_ms);
        let mut removed = 0;
        // Busy sessions stay in the stale list (oldest first), so each batch
        // asks for as many more rows as it skipped: a list that is all busy
        // sessions ends the sweep instead of being read again and again.
        let mut busy = 0;
        loop {
            let limit = busy + EXPIRY_BATCH;
            let stale = match wait(self.meta.stale_uploads(cutoff, limit)) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "upload expiry: cannot list stale sessions");
                    break;
                }
            };
            let batch = stale.len();
            busy = 0;
            for id in stale {
                // A session busy here is not idle.
                let entry = self.entry(&id);
                let Ok(mut open) = entry.try_lock() else {
                    busy += 1;
                    continue;
                };
                self.abandon(&id, open.staged.take());
                if matches!(wait(self.meta.remove_upload(&id)), Ok(true)) {
                    open.staged = None;
                    self.blobs.discard_staging(&id);
                    removed += 1;
                }
                drop(open);
                self.forget_if_idle(&id);
            }
            if batch < limit as usize {
                break;
            }
        }
        // Sessions another server finished or cancelled: this one may still
        // hold their staging handles, and count them as in progress.
        let held: Vec<String> = self.open_map().keys().cloned().collect();
        for id in held {
            if !matches!(wait(self.meta.upload_closed(&id)), Ok(true)) {
                continue;
            }
            let entry = self.entry(&id);
            let Ok(mut open) = entry.try_lock() else {
                continue;
            };
            if let Some(staged) = open.staged.take() {
                staged.abandon();
                self.blobs.discard_staging(&id);
            }
            drop(open);
            self.forget_if_idle(&id);
        }
        // Ids closed before the cutoff were opened before it too: expired,
        // whether or not they are remembered as closed.
        if let Err(e) = wait(self.meta.forget_closed_uploads(cutoff)) {
            tracing::warn!(error = %e, "upload expiry: cannot forget closed sessions");
        }
        // Staging areas no record names: crashed before their record was
        // written, or their record expired on another server.
        for id in self.blobs.stale_staging(SystemTime::now() - ttl) {
            if matches!(wait(self.meta.upload(&id)), Ok(None)) {
                self.open_map().remove(&id);
                self.blobs.discard_staging(&id);
                removed += 1;
            }
        }
        removed
    }
}

/// A staging area as [`claim_blocking`] finds it, with the note of one found
/// on this server.
type Reopened = (Box<dyn Staging>, Option<Vec<u8>>);

/// [`UploadSessions::claim`] off the runtime: the staging area (the cached
/// handle, else reopened, else a new one when only the record exists, as on a
/// server that never saw the session) locked, then the record read under the
/// lock, and the two brought in step. The hash always resumes from the record:
/// another server may have written since this one last did.
fn claim_blocking(
    blobs: &dyn BlobStore,
    meta: &dyn MetadataStore,
    id: &str,
    repo: &str,
    cached: Option<StagedBlob>,
    openable: Option<Algorithm>,
) -> Result<(StagedBlob, UploadRecord), RegistryError> {
    let unknown = || RegistryError::UploadUnknown(id.to_string());
    // A handle of this server's, and the note of a staging area found here.
    let reopen = || -> Result<Reopened, RegistryError> {
        if let Some((staging, note)) = blobs.reopen_staging(id)? {
            return Ok((staging, Some(note)));
        }
        // Nothing here: a session no request has written to yet, or one
        // another server wrote to (its record says so).
        let mut recorded = wait(meta.upload(id))?;
        if let (None, Some(algorithm)) = (&recorded, openable) {
            // Its first chunk: recorded now, unless it was closed (or
            // another server's first chunk recorded it meanwhile).
            let record = UploadRecord {
                id: id.to_string(),
                repo: repo.to_string(),
                algorithm: algorithm.as_str().to_string(),
                size: 0,
                hash_state: algorithm.hasher().state(),
                staging: Vec::new(),
                updated_at: 0,
            };
            if !wait(meta.open_upload(&record))? {
                recorded = wait(meta.upload(id))?;
            } else {
                recorded = Some(record);
            }
        }
        match recorded {
            Some(r) if r.repo == repo => match blobs.create_staging(id, b"") {
                Ok(staging) => Ok((staging, None)),
                // Made meanwhile by another server's first chunk.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match blobs.reopen_staging(id)? {
                        Some((staging, note)) => Ok((staging, Some(note))),
                        None => Err(unknown()),
                    }
                }
                Err(e) => Err(e.into()),
            },
            _ => Err(unknown()),
        }
    };
    let (mut staging, mut lane, mut note, mut fresh) = match cached {
        Some(staged) => {
            let (staging, lane) = staged.into_parts();
            (staging, lane, None, false)
        }
        None => {
            let (s, n) = reopen()?;
            (s, None, n, true)
        }
    };
    loop {
        staging.lock()?;
        let record = match wait(meta.upload(id))? {
            Some(r) => Some(r),
            None => match &note {
                Some(n) => adopt_legacy(meta, id, &*staging, n)?,
                None => None,
            },
        };
        let Some(record) = record else {
            staging.unlock();
            if note.as_deref().is_none_or(<[u8]>::is_empty) {
                // Closed meanwhile (cancelled, expired, finished elsewhere):
                // what it staged is nobody's. (A staging area left by an
                // earlier version, with a note, is left to the sweep.)
                staging.abandon();
                blobs.discard_staging(id);
            }
            return Err(unknown());
        };
        if record.repo != repo {
            staging.unlock();
            return Err(unknown());
        }
        if staging.adopt(record.size, &record.staging)? {
            // This server's running hash, unless another server wrote since.
            if let Some(lane) = lane.take().filter(|lane| lane.fed() == record.size) {
                return Ok((StagedBlob::from_parts(staging, Some(lane)), record));
            }
            let algorithm: Algorithm = record.algorithm.parse().map_err(|_| unknown())?;
            let resumed = resume_recorded(algorithm, &record.hash_state, record.size);
            let Some((hasher, hashed)) = resumed else {
                staging.unlock();
                return Err(unknown());
            };
            // A record made before the hash caught up: the rest is read back.
            let caught_up = match hashed < record.size {
                true => catch_up(&*staging, hasher, hashed, record.size),
                false => Ok(hasher),
            };
            let hasher = match caught_up {
                Ok(hasher) => hasher,
                Err(e) => {
                    staging.unlock();
                    return Err(e.into());
                }
            };
            let lane = HashLane::new(hasher, record.size);
            return Ok((StagedBlob::from_parts(staging, Some(lane)), record));
        }
        staging.unlock();
        if fresh {
            // The recorded bytes are not reachable from this server.
            return Err(unknown());
        }
        // A cached handle behind the record (another server wrote through its
        // own): once more with a fresh one.
        let (s, n) = reopen()?;
        (staging, lane, note, fresh) = (s, None, n, true);
    }
}

/// Records a session left by a version before records (a staging area and its
/// note), re-hashing its bytes once. `None` when the staging area has no note
/// this version understands.
fn adopt_legacy(
    meta: &dyn MetadataStore,
    id: &str,
    staging: &dyn Staging,
    note: &[u8],
) -> Result<Option<UploadRecord>, RegistryError> {
    let Ok(info) = serde_json::from_slice::<SessionInfo>(note) else {
        return Ok(None);
    };
    let Ok(algorithm) = info.algorithm.parse::<Algorithm>() else {
        return Ok(None);
    };
    let hasher = super::staged::hash_all(staging, algorithm)?;
    let record = UploadRecord {
        id: id.to_string(),
        repo: info.repo,
        algorithm: info.algorithm,
        size: staging.size(),
        hash_state: hasher.state(),
        staging: Vec::new(),
        updated_at: 0,
    };
    wait(meta.create_upload(&record))?;
    Ok(wait(meta.upload(id))?)
}

/// Records a published blob in its repository (given the blob's size); run off
/// the async runtime, after the blob is published.
pub type Link = Box<dyn FnOnce(u64) -> Result<(), RegistryError> + Send>;

/// Bodies declared this long or shorter are gathered in memory before anything
/// is written, so that a small blob is staged, verified, published and recorded
/// in one blocking call: each hop to the blocking pool and back costs two thread
/// switches, more than the write itself.
const SMALL_BODY: u64 = 64 << 10;

/// Stale sessions [`UploadSessions::expire`] reads at a time (plus as many as
/// it found busy in the batch before).
#[cfg(not(test))]
const EXPIRY_BATCH: u32 = 1000;
#[cfg(test)]
const EXPIRY_BATCH: u32 = 3;

/// A request body: whole, when small and declared so, or still a stream.
enum Gathered {
    Whole(Vec<Bytes>),
    Stream(Box<dyn Stream<Item = io::Result<Bytes>> + Send + Unpin>),
    Failed(io::Error),
}

/// Reads a body declared (by `Content-Length`) at most [`SMALL_BODY`] long;
/// any other body stays a stream, unread.
async fn gather_small<S>(length: Option<u64>, mut body: S) -> Gathered
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    if length.is_none_or(|n| n > SMALL_BODY) {
        return Gathered::Stream(Box::new(body));
    }
    let mut frames = Vec::new();
    let mut held = 0u64;
    while let Some(frame) = body.next().await {
        match frame {
            Ok(bytes) => {
                held += bytes.len() as u64;
                frames.push(bytes);
                if held > SMALL_BODY {
                    // Longer than declared: the checks of the streaming path say so.
                    let head = futures_util::stream::iter(frames.into_iter().map(Ok));
                    return Gathered::Stream(Box::new(head.chain(body)));
                }
            }
            Err(e) => return Gathered::Failed(e),
        }
    }
    Gathered::Whole(frames)
}

/// A session a whole body may close: its id, repository, and whether it may be
/// closed with no record (signed, and not expired).
struct Untouched {
    id: String,
    repo: String,
    openable: bool,
}

/// How far ahead of this server's clock a signed id's time may be (another
/// server's clock).
const CLOCK_SKEW_MS: i64 = 60_000;

/// How a session's closing call ended: before the session was claimed, before
/// the last chunk was written (the session stays, as it was), or closed.
enum Closing {
    NotClaimed(RegistryError),
    NotWritten(Box<StagedBlob>, RegistryError),
    Closed(Result<u64, RegistryError>),
}

/// [`write_chunk`] for a body at hand, on a blocking thread.
fn append_frames(
    staged: &mut StagedBlob,
    range: Option<ChunkRange>,
    length: Option<u64>,
    frames: &[Bytes],
) -> Result<(), RegistryError> {
    check_start(staged.size(), range)?;
    check_length(range, length, total(frames))?;
    staged.settle()?;
    let checkpoint = staged.checkpoint();
    for frame in frames {
        if let Err(e) = staged.append(frame) {
            staged.rollback(checkpoint)?;
            return Err(e.into());
        }
    }
    Ok(())
}

/// Closes a session that holds no bytes yet with one whole body, with no
/// staging area: the body is checked against `range` and `length` and hashed,
/// then the session is closed, the body published from memory and linked, as
/// one write where the stores allow ([`together_async`]). Gives `link` back
/// (nothing done) when the body does not fit as the first and last chunk, or
/// the session is not one of `repo` holding nothing (closed, or holding
/// bytes): the usual path then answers it.
async fn close_untouched(
    blobs: &Arc<dyn BlobStore>,
    meta: &Arc<dyn MetadataStore>,
    session: Untouched,
    (digest, range, length, frames): (Digest, Option<ChunkRange>, Option<u64>, Vec<Bytes>),
    link: Link,
) -> Result<Result<u64, RegistryError>, Link> {
    let Untouched { id, repo, openable } = session;
    let fits = check_start(0, range).and_then(|()| check_length(range, length, total(&frames)));
    if fits.is_err() {
        return Err(link);
    }
    // A session that may not be opened without a record (expired, or of an
    // earlier version) needs one.
    if !openable && !matches!(meta.upload(&id).await, Ok(Some(_))) {
        return Err(link);
    }
    // Hashed before the write begins, which holds the database's writer.
    let verified = verified_bytes(&digest, &frames);
    // (A staging area another server made meanwhile for a chunk it never
    // recorded is removed with the other staging areas that have no record;
    // a store that stages the bytes to publish them uses a name of its own.)
    let staging_id = uuid::Uuid::new_v4().simple().to_string();
    let (b, m) = (blobs.clone(), meta.clone());
    let closing = together_async(blobs, move || {
        // Closed now, whatever follows (a mismatch ends the session too). Its
        // algorithm does not matter: nothing was hashed yet.
        let closed = match wait(m.take_empty_upload(&id, &repo)) {
            Ok(true) => Ok(match &verified {
                Ok(bytes) => publish_and_link(&*b, &staging_id, &digest, bytes, link),
                // The mismatch is answered below.
                Err(_) => Ok(0),
            }),
            // Not ours to close: `link` goes back to the usual path.
            Ok(false) => Err(link),
            Err(e) => Ok(Err(e.into())),
        };
        (verified, closed)
    })
    .await;
    match closing {
        Err(e) => Ok(Err(e)),
        Ok(Some((verified, Ok(closed)))) => Ok(verified.and(closed)),
        Ok(Some((_, Err(link)))) => Err(link),
        Ok(None) => Ok(Err(RegistryError::Internal(
            "an upload's close never ran".into(),
        ))),
    }
}

/// Runs `f` once inside one write of the stores, from async code: queued to
/// the blob store's own writer where it has one
/// ([`BlobStore::write_together_queued`]), else with
/// [`BlobStore::write_together`] on the blocking pool. Returns what `f`
/// returned; `None` if the store never ran it.
async fn together_async<T: Send + 'static>(
    blobs: &Arc<dyn BlobStore>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<Option<T>, RegistryError> {
    let slot = Arc::new(Mutex::new(None));
    let out = slot.clone();
    let job: Together = Box::new(move || {
        let v = f();
        *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    });
    match blobs.write_together_queued(job).await {
        Ok(done) => done?,
        Err(job) => {
            let blobs = blobs.clone();
            blocking(move || Ok(together(&*blobs, job)?)).await?;
        }
    }
    let v = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    Ok(v)
}

/// Runs `f` once inside [`BlobStore::write_together`] and returns what it
/// returned; `None` if the store never ran it.
fn together<T>(blobs: &dyn BlobStore, f: impl FnOnce() -> T) -> io::Result<Option<T>> {
    let mut f = Some(f);
    let mut out = None;
    blobs.write_together(&mut || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    })?;
    Ok(out)
}

/// Publishes `bytes`, verified as blob `digest`, and links it; returns the size.
fn publish_and_link(
    blobs: &dyn BlobStore,
    id: &str,
    digest: &Digest,
    bytes: &[u8],
    link: Link,
) -> Result<u64, RegistryError> {
    blobs.publish_bytes(id, digest, bytes)?;
    link(bytes.len() as u64)?;
    Ok(bytes.len() as u64)
}

/// A whole body held in memory, verified against `digest`.
fn verified_bytes(digest: &Digest, frames: &[Bytes]) -> Result<Bytes, RegistryError> {
    let bytes = match frames {
        [one] => one.clone(),
        more => Bytes::from(more.concat()),
    };
    let mut hasher = digest.algorithm().hasher();
    hasher.update(&bytes);
    let actual = hasher.finish();
    if actual != *digest {
        return Err(RegistryError::DigestMismatch {
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(bytes)
}

/// The bytes of a body held in memory.
fn total(frames: &[Bytes]) -> u64 {
    frames.iter().map(|f| f.len() as u64).sum()
}

/// A chunk claimed by `range` must start where the upload ends (`size`):
/// 416 otherwise.
fn check_start(size: u64, range: Option<ChunkRange>) -> Result<(), RegistryError> {
    match range {
        Some(r) if r.end < r.start => Err(RegistryError::RangeInverted {
            size,
            start: r.start,
            end: r.end,
        }),
        Some(r) if r.start != size => {
            Err(RegistryError::RangeNotSatisfiable { size, got: r.start })
        }
        _ => Ok(()),
    }
}

/// A body of `written` bytes must be as long as its `range` says, or else as
/// its `length`; returns `written`.
fn check_length(
    range: Option<ChunkRange>,
    length: Option<u64>,
    written: u64,
) -> Result<u64, RegistryError> {
    // In u128: `0-18446744073709551615` declares 2^64 bytes.
    let declared = range.map(|r| u128::from(r.end.saturating_sub(r.start)) + 1);
    match declared.or(length.map(u128::from)) {
        Some(n) if n != u128::from(written) => Err(RegistryError::SizeInvalid(format!(
            "chunk declared {n} bytes but {written} arrived"
        ))),
        _ => Ok(written),
    }
}

/// Seals `staged` (see [`StagedBlob::seal`]) and puts what it holds into
/// `record`: the hash state and the staging descriptor.
fn seal_into(staged: &mut StagedBlob, record: &mut UploadRecord) -> io::Result<()> {
    record.hash_state = staged.record_hash()?;
    record.staging = staged.seal()?;
    Ok(())
}

/// Ends a single-request upload: its staging area removed if it failed, the
/// blob linked if it was published; the size.
fn settle(
    blobs: &dyn BlobStore,
    id: &str,
    outcome: Result<u64, RegistryError>,
    link: Link,
) -> Result<u64, RegistryError> {
    if outcome.is_err() {
        blobs.discard_staging(id);
    }
    let size = outcome?;
    link(size)?;
    Ok(size)
}

/// Checks the staged bytes against `digest` and publishes them; returns the size.
fn verify_and_publish(mut staged: StagedBlob, digest: &Digest) -> Result<u64, RegistryError> {
    let actual = staged.digest_as(digest.algorithm())?;
    if actual != *digest {
        staged.abandon();
        return Err(RegistryError::DigestMismatch {
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    let size = staged.size();
    staged.publish(digest)?;
    Ok(size)
}

/// The error of a body that ended early: the session is gone when a `DELETE`
/// stopped it.
fn stopped_or(reading: &Reading, id: &str, e: RegistryError) -> RegistryError {
    if reading.stopped() {
        RegistryError::UploadUnknown(id.to_string())
    } else {
        e
    }
}

/// Writes one request's body at the end of `staged`. With `range`, the chunk
/// must start where the upload ends (else 416) and be exactly as long as it
/// claims; with `length`, the body must be exactly that long. On any failure
/// `staged` is rolled back to where it was. Returns the bytes written.
async fn write_chunk<S>(
    staged: StagedBlob,
    range: Option<ChunkRange>,
    length: Option<u64>,
    body: S,
) -> (StagedBlob, Result<u64, RegistryError>)
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    if let Err(e) = check_start(staged.size(), range) {
        return (staged, Err(e));
    }
    let checkpoint = staged.checkpoint();
    let (mut staged, result) = write_stream(staged, body).await;
    let outcome = result.and_then(|written| check_length(range, length, written));
    if outcome.is_err() {
        if let Err(e) = staged.rollback(checkpoint) {
            return (staged, Err(e.into()));
        }
    }
    (staged, outcome)
}

/// Streams `body` into the staging area: each frame is hashed as it arrives, and
/// frames are written in batches by blocking tasks while the next batch arrives
/// ([`BodyWriter`]).
async fn write_stream<S>(
    staged: StagedBlob,
    mut body: S,
) -> (StagedBlob, Result<u64, RegistryError>)
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    let (staging, lane) = staged.into_parts();
    let Some(lane) = lane else {
        let lost = RegistryError::Internal("an upload's hash was not resumed".into());
        return (StagedBlob::from_parts(staging, None), Err(lost));
    };
    let mut writer = BodyWriter::new(staging, lane);
    let mut read_err = None;
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => {
                writer = writer.push(chunk).await;
                if writer.failed() {
                    break; // its error is reported below
                }
            }
            Err(e) => {
                read_err = Some(e);
                break;
            }
        }
    }
    let out = match read_err {
        // The caller rolls back to its checkpoint: what is still buffered is dropped.
        Some(_) => writer.abandon().await,
        None => writer.finish().await,
    };
    let result = match (out.error, read_err) {
        (Some(e), _) => Err(RegistryError::from(e)),
        (None, Some(e)) => Err(RegistryError::BodyIncomplete(e.to_string())),
        (None, None) => Ok(out.written),
    };
    (StagedBlob::from_parts(out.staging, Some(out.lane)), result)
}

/// The grammar of upload session ids (see [`UploadId`]), for schemas.
pub const UPLOAD_ID_PATTERN: &str = "^([0-9a-f]{32}){1,2}$";

/// An upload session's id, as its `Location` carries it: 64 hex digits (a
/// signed id, see `session_ids`), or 32 (a session recorded by an earlier
/// version). Anything else names no session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadId(String);

impl UploadId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for UploadId {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, RegistryError> {
        // Ids are made in lowercase; an upper-cased one names no session.
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if matches!(s.len(), 32 | SIGNED_LEN) && s.bytes().all(hex) {
            Ok(UploadId(s.to_string()))
        } else {
            Err(RegistryError::UploadUnknown(s.to_string()))
        }
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    //! Two `UploadSessions` over the same stores stand for two servers.

    use super::*;
    use crate::store::{MemoryBlobStore, SqliteMetaStore, TestClock};

    struct Servers {
        blobs: MemoryBlobStore,
        meta: Arc<dyn MetadataStore>,
        clock: Arc<TestClock>,
        a: UploadSessions,
        b: UploadSessions,
    }

    fn servers() -> Servers {
        let blobs = MemoryBlobStore::new();
        let clock = Arc::new(TestClock::new());
        let meta: Arc<dyn MetadataStore> = Arc::new(
            SqliteMetaStore::in_memory()
                .unwrap()
                .with_clock(clock.clone()),
        );
        let server = || {
            let ttl = Duration::from_secs(60);
            UploadSessions::new(Arc::new(blobs.clone()), meta.clone(), clock.clone(), ttl)
        };
        Servers {
            a: server(),
            b: server(),
            blobs,
            meta,
            clock,
        }
    }

    fn body(bytes: &[u8]) -> futures_util::stream::Iter<std::vec::IntoIter<io::Result<Bytes>>> {
        futures_util::stream::iter(vec![Ok(Bytes::copy_from_slice(bytes))])
    }

    fn range(start: u64, len: u64) -> Option<ChunkRange> {
        Some(ChunkRange {
            start,
            end: start + len - 1,
        })
    }

    fn unlinked() -> Link {
        Box::new(|_| Ok(()))
    }

    fn repo() -> RepoName {
        "team/app".parse().unwrap()
    }

    /// Sends `chunks` as one upload, the servers taking turns (`b` first),
    /// each reporting every size recorded; the session and the whole.
    async fn push_alternating(s: &Servers, chunks: &[Vec<u8>]) -> (String, Vec<u8>) {
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let mut offset = 0;
        for (i, c) in chunks.iter().enumerate() {
            let server = if i % 2 == 0 { &s.b } else { &s.a };
            let len = c.len() as u64;
            let size = server
                .append(&repo(), &id, range(offset, len), None, frames(c))
                .await
                .unwrap();
            offset += len;
            assert_eq!(size, offset);
            // Every server reports what was recorded.
            assert_eq!(s.a.status(&repo(), &id).await.unwrap(), offset);
            assert_eq!(s.b.status(&repo(), &id).await.unwrap(), offset);
        }
        (id, chunks.concat())
    }

    #[tokio::test]
    async fn chunks_alternating_between_servers_give_the_right_blob_without_rehashing() {
        let s = servers();
        let chunks: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 1000 + i as usize]).collect();
        let (id, whole) = push_alternating(&s, &chunks).await;
        let digest = Algorithm::Sha256.digest_of(&whole);
        let size =
            s.b.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
                .await
                .unwrap();
        assert_eq!(size, whole.len() as u64);
        assert_eq!(
            s.blobs.size_of(&digest).await.unwrap(),
            Some(whole.len() as u64),
            "published"
        );
        assert_eq!(
            s.blobs.read_backs(),
            0,
            "no server read the bytes back to hash them"
        );
        assert_eq!(
            s.meta.upload(&id).await.unwrap(),
            None,
            "the record is gone"
        );
        assert!(matches!(
            s.a.status(&repo(), &id).await,
            Err(RegistryError::UploadUnknown(_))
        ));
    }

    /// A link that counts its calls and the size it was given.
    fn counting_link(calls: &Arc<Mutex<Vec<u64>>>) -> Link {
        let calls = calls.clone();
        Box::new(move |size| {
            calls.lock().unwrap().push(size);
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_small_last_chunk_is_written_published_closed_and_linked_in_one_call() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, range(0, 3), None, body(b"abc"))
            .await
            .unwrap();
        let digest = Algorithm::Sha256.digest_of(b"abcdef");
        let links = Arc::new(Mutex::new(Vec::new()));
        // Declared too long: refused, nothing linked, and the session is as it was.
        let short =
            s.b.finish(
                &repo(),
                &id,
                &digest,
                range(3, 4),
                Some(3),
                body(b"def"),
                counting_link(&links),
            )
            .await;
        assert!(
            matches!(short, Err(RegistryError::SizeInvalid(_))),
            "{short:?}"
        );
        assert_eq!(s.a.status(&repo(), &id).await.unwrap(), 3);
        // Out of order: 416, the session kept.
        let early =
            s.b.finish(
                &repo(),
                &id,
                &digest,
                range(2, 3),
                Some(3),
                body(b"def"),
                counting_link(&links),
            )
            .await;
        assert!(
            matches!(
                early,
                Err(RegistryError::RangeNotSatisfiable { size: 3, got: 2 })
            ),
            "{early:?}"
        );
        assert!(links.lock().unwrap().is_empty());
        let size =
            s.b.finish(
                &repo(),
                &id,
                &digest,
                range(3, 3),
                Some(3),
                body(b"def"),
                counting_link(&links),
            )
            .await
            .unwrap();
        assert_eq!(size, 6);
        assert_eq!(
            *links.lock().unwrap(),
            vec![6],
            "linked once, with the size"
        );
        assert_eq!(s.blobs.size_of(&digest).await.unwrap(), Some(6));
        assert_eq!(
            s.meta.upload(&id).await.unwrap(),
            None,
            "the record is gone"
        );
    }

    #[tokio::test]
    async fn a_small_last_chunk_with_the_wrong_digest_removes_the_session_and_links_nothing() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let wrong = Algorithm::Sha256.digest_of(b"other");
        let links = Arc::new(Mutex::new(Vec::new()));
        let r =
            s.a.finish(
                &repo(),
                &id,
                &wrong,
                None,
                Some(4),
                body(b"data"),
                counting_link(&links),
            )
            .await;
        assert!(
            matches!(r, Err(RegistryError::DigestMismatch { .. })),
            "{r:?}"
        );
        assert!(links.lock().unwrap().is_empty());
        assert_eq!(s.blobs.size_of(&wrong).await.unwrap(), None);
        assert_eq!(s.meta.upload(&id).await.unwrap(), None);
        assert!(matches!(
            s.b.status(&repo(), &id).await,
            Err(RegistryError::UploadUnknown(_))
        ));
    }

    #[tokio::test]
    async fn a_small_single_request_upload_is_linked_once_and_a_wrong_one_never() {
        let s = servers();
        let links = Arc::new(Mutex::new(Vec::new()));
        let d = Algorithm::Sha256.digest_of(b"layer");
        let size =
            s.a.monolithic(&d, Some(5), body(b"layer"), counting_link(&links))
                .await
                .unwrap();
        assert_eq!((size, s.blobs.size_of(&d).await.unwrap()), (5, Some(5)));
        let wrong = Algorithm::Sha256.digest_of(b"else");
        let r =
            s.a.monolithic(&wrong, Some(5), body(b"layer"), counting_link(&links))
                .await;
        assert!(
            matches!(r, Err(RegistryError::DigestMismatch { .. })),
            "{r:?}"
        );
        assert_eq!(s.blobs.size_of(&wrong).await.unwrap(), None);
        assert_eq!(*links.lock().unwrap(), vec![5]);
    }

    #[tokio::test]
    async fn a_chunk_one_server_already_took_is_out_of_order_on_the_other() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, range(0, 3), None, body(b"abc"))
            .await
            .unwrap();
        // The same chunk again, through the other server: the session moved on.
        let again =
            s.b.append(&repo(), &id, range(0, 3), None, body(b"abc"))
                .await;
        assert!(
            matches!(
                again,
                Err(RegistryError::RangeNotSatisfiable { size: 3, got: 0 })
            ),
            "{again:?}"
        );
        // Both at once from the same offset: one wins, the other is refused.
        let name = repo();
        let (x, y) = tokio::join!(
            s.a.append(&name, &id, range(3, 3), None, body(b"def")),
            s.b.append(&name, &id, range(3, 3), None, body(b"xyz")),
        );
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
        let winner: &[u8] = if x.is_ok() { b"abcdef" } else { b"abcxyz" };
        let digest = Algorithm::Sha256.digest_of(winner);
        s.a.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
            .await
            .expect("the bytes are exactly the winner's");
    }

    /// `n` bytes of a pattern that differs with `seed`, in frames of 64 KiB
    /// (so that a body of more than one goes through the hashing thread).
    fn large(seed: u8, n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    fn frames(bytes: &[u8]) -> futures_util::stream::Iter<std::vec::IntoIter<io::Result<Bytes>>> {
        let v: Vec<_> = bytes
            .chunks(64 << 10)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(v)
    }

    #[tokio::test]
    async fn abandoned_sessions_keep_a_bounded_number_of_staging_areas_open() {
        let s = servers();
        let mut ids = Vec::new();
        for i in 0..OPEN_KEPT + 50 {
            let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
            let chunk = format!("chunk {i}");
            s.a.append(
                &repo(),
                &id,
                range(0, chunk.len() as u64),
                None,
                body(chunk.as_bytes()),
            )
            .await
            .unwrap();
            ids.push((id, chunk));
        }
        let (open, _) = s.a.in_progress();
        assert!(open <= OPEN_KEPT as u64, "{open} sessions held open");
        // The first session let go of its staging area; it still finishes.
        let (id, chunk) = &ids[0];
        let whole = format!("{chunk} and the rest");
        let digest = Algorithm::Sha256.digest_of(whole.as_bytes());
        let rest = &whole.as_bytes()[chunk.len()..];
        let at = range(chunk.len() as u64, rest.len() as u64);
        let size =
            s.a.finish(&repo(), id, &digest, at, None, body(rest), unlinked())
                .await
                .unwrap();
        assert_eq!(size, whole.len() as u64);
        assert_eq!(s.blobs.size_of(&digest).await.unwrap(), Some(size));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_close_cut_short_after_its_body_still_removes_the_session_and_links_the_blob() {
        let s = servers();
        let ttl = Duration::from_secs(60);
        let blobs: Arc<dyn BlobStore> = Arc::new(s.blobs.clone());
        let sessions = Arc::new(UploadSessions::new(
            blobs,
            s.meta.clone(),
            s.clock.clone(),
            ttl,
        ));
        let whole = large(5, 3 << 20);
        let digest = Algorithm::Sha256.digest_of(&whole);
        let id = sessions.create(&repo(), Algorithm::Sha256).await.unwrap();
        let first = 1 << 20;
        sessions
            .append(
                &repo(),
                &id,
                range(0, first as u64),
                None,
                frames(&whole[..first]),
            )
            .await
            .unwrap();
        let linked = Arc::new(Mutex::new(Vec::new()));
        let request = {
            let (sessions, id, digest) = (sessions.clone(), id.clone(), digest.clone());
            let (rest, link) = (whole[first..].to_vec(), counting_link(&linked));
            let at = range(first as u64, rest.len() as u64);
            tokio::spawn(async move {
                let body = frames(&rest);
                sessions
                    .finish(&repo(), &id, &digest, at, None, body, link)
                    .await
            })
        };
        // The client goes away as soon as the blob is published (watched
        // without sleeping, so that the close is caught midway).
        for _ in 0..1_000_000 {
            if s.blobs.size_of(&digest).await.unwrap().is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        request.abort();
        for _ in 0..5000 {
            let closed = s.meta.upload(&id).await.unwrap().is_none();
            if closed && !linked.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            s.meta.upload(&id).await.unwrap(),
            None,
            "the record is gone"
        );
        assert_eq!(
            *linked.lock().unwrap(),
            vec![whole.len() as u64],
            "linked once"
        );
        assert!(matches!(
            sessions.status(&repo(), &id).await,
            Err(RegistryError::UploadUnknown(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn large_chunks_alternating_between_servers_give_the_right_blob() {
        let s = servers();
        let chunks: Vec<Vec<u8>> = (0..6u8).map(|i| large(i, 300_000 + i as usize)).collect();
        let (id, whole) = push_alternating(&s, &chunks).await;
        let digest = Algorithm::Sha256.digest_of(&whole);
        let size =
            s.a.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
                .await
                .unwrap();
        assert_eq!(size, whole.len() as u64);
        assert_eq!(s.blobs.read_backs(), 0, "never read back from the start");
        // A record may lag its chunk's hash: the next server hashes the rest
        // from the staging area, at most what the last chunk left.
        let last = chunks.last().unwrap().len() as u64;
        assert!(s.blobs.reread() <= whole.len() as u64 - last);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn chunks_on_one_server_carry_its_running_hash_and_read_nothing_back() {
        let s = servers();
        let chunks: Vec<Vec<u8>> = (0..4u8).map(|i| large(i, 250_000)).collect();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        for (i, c) in chunks.iter().enumerate() {
            let at = i as u64 * 250_000;
            s.a.append(&repo(), &id, range(at, 250_000), None, frames(c))
                .await
                .unwrap();
        }
        let digest = Algorithm::Sha256.digest_of(&chunks.concat());
        s.a.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
            .await
            .unwrap();
        assert_eq!((s.blobs.read_backs(), s.blobs.reread()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_record_whose_hash_lags_is_caught_up_from_the_staging_area() {
        let s = servers();
        let first = large(1, 200_000);
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, range(0, 200_000), None, frames(&first))
            .await
            .unwrap();
        // As if the record had been made while the hash had done 1,000 bytes.
        let mut record = s.meta.upload(&id).await.unwrap().unwrap();
        let mut hasher = Algorithm::Sha256.hasher();
        hasher.update(&first[..1000]);
        record.hash_state = super::super::staged::hash_record(&hasher, 1000, 200_000);
        assert!(s.meta.advance_upload(&record, 200_000).await.unwrap());
        let second = large(2, 100);
        s.b.append(&repo(), &id, range(200_000, 100), None, body(&second))
            .await
            .unwrap();
        assert_eq!(s.blobs.reread(), 199_000, "exactly the bytes not hashed");
        let digest = Algorithm::Sha256.digest_of(&[first, second].concat());
        s.b.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_large_chunk_that_fails_after_one_whose_hash_ran_on_can_be_sent_again() {
        let s = servers();
        let first = large(3, 300_000);
        let second = large(4, 300_000);
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, range(0, 300_000), None, frames(&first))
            .await
            .unwrap();
        // Half the chunk, then the client goes away.
        let mut broken: Vec<io::Result<Bytes>> = second[..150_000]
            .chunks(64 << 10)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        broken.push(Err(io::Error::other("client went away")));
        let broken = futures_util::stream::iter(broken);
        assert!(s.a.append(&repo(), &id, None, None, broken).await.is_err());
        assert_eq!(s.a.status(&repo(), &id).await.unwrap(), 300_000);
        s.a.append(&repo(), &id, range(300_000, 300_000), None, frames(&second))
            .await
            .unwrap();
        let digest = Algorithm::Sha256.digest_of(&[first, second].concat());
        let size =
            s.a.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
                .await
                .unwrap();
        assert_eq!(size, 600_000);
    }

    #[tokio::test]
    async fn a_failed_chunk_is_taken_back_and_can_be_sent_again_elsewhere() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"par")),
            Err(io::Error::other("client went away")),
        ]);
        assert!(s.a.append(&repo(), &id, None, None, broken).await.is_err());
        assert_eq!(s.b.status(&repo(), &id).await.unwrap(), 0);
        s.b.append(&repo(), &id, range(0, 4), None, body(b"good"))
            .await
            .unwrap();
        let digest = Algorithm::Sha256.digest_of(b"good");
        s.a.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delete_stops_a_chunk_still_arriving_and_removes_the_session() {
        let s = Arc::new(servers());
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, range(0, 3), None, body(b"abc"))
            .await
            .unwrap();
        // A chunk whose client sends a little, then nothing.
        let (tx, stalled) = stalled_after(b"def");
        let patch = spawn_append(&s, &id, stalled);
        // The chunk holds the session (its first bytes went in) before the DELETE.
        until_reading(&s).await;
        // Bounded: without the stop, the DELETE waits as long as the client stalls.
        tokio::time::timeout(Duration::from_secs(10), s.a.cancel(&repo(), &id))
            .await
            .expect("the DELETE waited for the stalled chunk")
            .unwrap();
        let answered = patch.await.unwrap();
        assert!(
            matches!(answered, Err(RegistryError::UploadUnknown(_))),
            "{answered:?}"
        );
        drop(tx);
        assert!(matches!(
            s.b.status(&repo(), &id).await,
            Err(RegistryError::UploadUnknown(_))
        ));
        assert!(s
            .blobs
            .stale_staging(std::time::SystemTime::now())
            .is_empty());
    }

    /// Appends `body` to session `id` on server `a`, on a task of its own.
    fn spawn_append(
        s: &Arc<Servers>,
        id: &str,
        body: impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    ) -> tokio::task::JoinHandle<Result<u64, RegistryError>> {
        let (s, id) = (s.clone(), id.to_string());
        tokio::spawn(async move { s.a.append(&repo(), &id, None, None, body).await })
    }

    /// Waits until a chunk on server `a` holds its session and reads its body.
    async fn until_reading(s: &Servers) {
        while s.a.readers.by_id_len() == 0 {
            tokio::task::yield_now().await;
        }
    }

    /// A chunk body that sends `first`, then stalls until its sender drops.
    fn stalled_after(
        first: &'static [u8],
    ) -> (
        tokio::sync::mpsc::Sender<io::Result<Bytes>>,
        impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
        tx.try_send(Ok(Bytes::from_static(first))).unwrap();
        let body = Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        (tx, body)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delete_also_stops_a_chunk_queued_behind_the_stalled_one_on_a_fresh_session() {
        let s = Arc::new(servers());
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        // The session's first chunk stalls; a second one waits for the session.
        let (tx1, stalled) = stalled_after(b"abc");
        let (tx2, queued) = stalled_after(b"xyz");
        let first = spawn_append(&s, &id, stalled);
        until_reading(&s).await;
        let second = spawn_append(&s, &id, queued);
        tokio::time::timeout(Duration::from_secs(10), s.a.cancel(&repo(), &id))
            .await
            .expect("the DELETE waited for a stalled chunk")
            .unwrap();
        for answered in [first.await.unwrap(), second.await.unwrap()] {
            assert!(
                matches!(answered, Err(RegistryError::UploadUnknown(_))),
                "{answered:?}"
            );
        }
        drop((tx1, tx2));
        assert!(matches!(
            s.b.status(&repo(), &id).await,
            Err(RegistryError::UploadUnknown(_))
        ));
        // The first chunk had recorded the session and made its staging
        // area: neither is left.
        assert!(s.meta.upload(&id).await.unwrap().is_none());
        assert!(s
            .blobs
            .stale_staging(std::time::SystemTime::now())
            .is_empty());
        assert_eq!(s.a.readers.by_id_len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_chunk_whose_session_another_server_closed_meanwhile_leaves_nothing_staged() {
        let s = Arc::new(servers());
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let (tx, body) = stalled_after(b"abc");
        let patch = spawn_append(&s, &id, body);
        // The chunk has recorded the session (size 0), made its staging area,
        // and is reading its body.
        until_reading(&s).await;
        // Another server's DELETE, having found no record a moment before,
        // closes the session as never written to.
        assert!(s
            .meta
            .take_empty_upload(&id, repo().as_str())
            .await
            .unwrap());
        tx.send(Ok(Bytes::from_static(b"def"))).await.unwrap();
        drop(tx);
        let answered = patch.await.unwrap();
        assert!(
            matches!(answered, Err(RegistryError::UploadUnknown(_))),
            "{answered:?}"
        );
        assert!(s
            .blobs
            .stale_staging(std::time::SystemTime::now())
            .is_empty());
    }

    #[tokio::test]
    async fn a_digest_mismatch_removes_the_session_everywhere() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let wrong = Algorithm::Sha256.digest_of(b"other");
        let r =
            s.b.finish(&repo(), &id, &wrong, None, None, body(b"data"), unlinked())
                .await;
        assert!(
            matches!(r, Err(RegistryError::DigestMismatch { .. })),
            "{r:?}"
        );
        assert!(s.meta.upload(&id).await.unwrap().is_none());
        assert!(s.blobs.reopen_staging(&id).unwrap().is_none());
        assert!(s.a.status(&repo(), &id).await.is_err());
    }

    #[tokio::test]
    async fn another_repository_cannot_use_a_session() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let other: RepoName = "team/other".parse().unwrap();
        assert!(s.b.status(&other, &id).await.is_err());
        assert!(s
            .b
            .append(&other, &id, None, None, body(b"x"))
            .await
            .is_err());
        assert_eq!(s.a.status(&repo(), &id).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_idle_session_expires_on_any_server() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, None, None, body(b"abc"))
            .await
            .unwrap();
        assert_eq!(s.b.expire(Duration::from_secs(60)), 0, "not idle yet");
        s.clock.advance(Duration::from_secs(61));
        assert_eq!(s.b.expire(Duration::from_secs(60)), 1);
        assert!(s.meta.upload(&id).await.unwrap().is_none());
        assert!(s.blobs.reopen_staging(&id).unwrap().is_none());
        assert!(matches!(
            s.a.append(&repo(), &id, None, None, body(b"d")).await,
            Err(RegistryError::UploadUnknown(_))
        ));
    }

    #[tokio::test]
    async fn a_range_of_two_to_the_64_bytes_or_inverted_is_refused_and_changes_nothing() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let whole = Some(ChunkRange {
            start: 0,
            end: u64::MAX,
        });
        for body_bytes in [&b""[..], b"abc"] {
            match s
                .a
                .append(&repo(), &id, whole, None, body(body_bytes))
                .await
            {
                Err(RegistryError::SizeInvalid(why)) => {
                    assert!(why.contains("18446744073709551616"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
        let inverted = Some(ChunkRange { start: 5, end: 4 });
        assert!(matches!(
            s.a.append(&repo(), &id, inverted, None, body(b"")).await,
            Err(RegistryError::RangeInverted {
                size: 0,
                start: 5,
                end: 4
            })
        ));
        assert_eq!(s.b.status(&repo(), &id).await.unwrap(), 0);
        s.b.append(&repo(), &id, range(0, 3), None, body(b"abc"))
            .await
            .unwrap();
        assert_eq!(s.a.status(&repo(), &id).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_session_finished_elsewhere_is_let_go_of_by_the_next_sweep() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, None, None, body(&[1u8; 70_000]))
            .await
            .unwrap();
        assert_eq!(s.a.in_progress(), (1, 70_000));
        let digest = Algorithm::Sha256.digest_of(&[1u8; 70_000]);
        s.b.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
            .await
            .unwrap();
        assert_eq!(s.a.in_progress().0, 1, "not told yet");
        s.a.expire(Duration::from_secs(3600));
        assert_eq!(s.a.in_progress(), (0, 0));
        assert_eq!(
            s.blobs.size_of(&digest).await.unwrap(),
            Some(70_000),
            "the blob stays"
        );
    }

    #[tokio::test]
    async fn expiry_gets_past_a_full_batch_of_busy_sessions() {
        let s = Arc::new(servers());
        let mut ids = Vec::new();
        for _ in 0..=EXPIRY_BATCH {
            let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
            s.a.append(&repo(), &id, None, None, body(b"abc"))
                .await
                .unwrap();
            s.clock.advance(Duration::from_secs(1));
            ids.push(id);
        }
        s.clock.advance(Duration::from_secs(120));
        // The oldest stale sessions, a whole batch of them, have a request
        // running on the server that sweeps.
        let held: Vec<_> = ids[..EXPIRY_BATCH as usize]
            .iter()
            .map(|id| s.b.entry(id).try_lock_owned().unwrap())
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let sweeper = s.clone();
        std::thread::spawn(move || {
            let _ = tx.send(sweeper.b.expire(Duration::from_secs(60)));
        });
        let removed = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the sweep ends");
        assert_eq!(removed, 1, "only the idle session goes");
        assert!(s
            .meta
            .upload(&ids[EXPIRY_BATCH as usize])
            .await
            .unwrap()
            .is_none());
        assert!(
            s.meta.upload(&ids[0]).await.unwrap().is_some(),
            "busy: kept"
        );
        drop(held);
    }

    /// Closes session `id` with the whole body `abc`, as one `PUT`.
    async fn put_abc(s: &UploadSessions, name: &RepoName, id: &str) -> Result<u64, RegistryError> {
        let digest = Algorithm::Sha256.digest_of(b"abc");
        s.finish(name, id, &digest, None, Some(3), body(b"abc"), unlinked())
            .await
    }

    fn unknown<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> bool {
        matches!(r, Err(RegistryError::UploadUnknown(_)))
    }

    #[tokio::test]
    async fn opening_a_session_writes_nothing_until_its_first_chunk() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(s.meta.upload(&id).await.unwrap(), None, "no record yet");
        assert_eq!(s.b.status(&repo(), &id).await.unwrap(), 0, "known anywhere");
        s.b.append(&repo(), &id, range(0, 3), None, body(b"abc"))
            .await
            .unwrap();
        let record = s.meta.upload(&id).await.unwrap().expect("recorded");
        assert_eq!((record.size, record.repo.as_str()), (3, "team/app"));
        assert_eq!(s.a.status(&repo(), &id).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_session_opened_for_sha512_hashes_with_it() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha512).await.unwrap();
        s.b.append(&repo(), &id, None, None, body(&[7u8; 70_000]))
            .await
            .unwrap();
        let digest = Algorithm::Sha512.digest_of(&[7u8; 70_000]);
        let size =
            s.a.finish(&repo(), &id, &digest, None, None, body(b""), unlinked())
                .await
                .unwrap();
        assert_eq!(size, 70_000);
    }

    #[tokio::test]
    async fn a_closed_session_cannot_be_used_again() {
        let s = servers();
        let digest = Algorithm::Sha256.digest_of(b"abc");
        // Closed by one whole body, with no record ever made.
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        put_abc(&s.a, &repo(), &id).await.unwrap();
        assert!(unknown(s.b.status(&repo(), &id).await));
        assert!(unknown(
            s.b.append(&repo(), &id, None, None, body(b"x")).await
        ));
        assert!(unknown(put_abc(&s.b, &repo(), &id).await));
        assert!(unknown(s.b.cancel(&repo(), &id).await));
        // Cancelled before any bytes.
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.cancel(&repo(), &id).await.unwrap();
        assert!(unknown(s.b.status(&repo(), &id).await));
        assert!(unknown(s.b.cancel(&repo(), &id).await));
        assert!(unknown(
            s.b.append(&repo(), &id, None, None, body(b"x")).await
        ));
        // Finished after chunks.
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.append(&repo(), &id, None, None, body(b"ab"))
            .await
            .unwrap();
        s.b.finish(
            &repo(),
            &id,
            &digest,
            range(2, 1),
            None,
            body(b"c"),
            unlinked(),
        )
        .await
        .unwrap();
        assert!(unknown(s.a.status(&repo(), &id).await));
        assert!(unknown(
            s.a.append(&repo(), &id, None, None, body(b"x")).await
        ));
        assert_eq!(s.meta.upload(&id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_id_not_signed_for_the_repository_is_unknown() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        let other: RepoName = "team/other".parse().unwrap();
        let forged = format!("{}{}", &id[..32], "0".repeat(32));
        for (name, id) in [(&other, &id), (&repo(), &forged)] {
            assert!(unknown(s.b.status(name, id).await));
            assert!(unknown(s.b.append(name, id, None, None, body(b"x")).await));
            assert!(unknown(put_abc(&s.b, name, id).await));
            assert!(unknown(s.b.cancel(name, id).await));
        }
        assert_eq!(s.meta.upload(&id).await.unwrap(), None, "nothing recorded");
        assert_eq!(s.a.status(&repo(), &id).await.unwrap(), 0, "still open");
    }

    #[tokio::test]
    async fn a_session_never_written_to_expires_by_its_time() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.clock.advance(Duration::from_secs(59));
        assert_eq!(s.b.status(&repo(), &id).await.unwrap(), 0);
        s.clock.advance(Duration::from_secs(2));
        assert!(unknown(s.b.status(&repo(), &id).await));
        let digest = Algorithm::Sha256.digest_of(b"abc");
        assert!(unknown(put_abc(&s.b, &repo(), &id).await));
        assert!(unknown(
            s.b.append(&repo(), &id, None, None, body(b"x")).await
        ));
        assert!(
            s.blobs.size_of(&digest).await.unwrap().is_none(),
            "not published"
        );
        assert_eq!(s.meta.upload(&id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn closed_ids_are_forgotten_once_they_would_have_expired() {
        let s = servers();
        let id = s.a.create(&repo(), Algorithm::Sha256).await.unwrap();
        s.a.cancel(&repo(), &id).await.unwrap();
        assert!(s.meta.upload_closed(&id).await.unwrap());
        s.b.expire(Duration::from_secs(60));
        assert!(s.meta.upload_closed(&id).await.unwrap(), "not yet");
        s.clock.advance(Duration::from_secs(61));
        s.b.expire(Duration::from_secs(60));
        assert!(!s.meta.upload_closed(&id).await.unwrap());
        assert!(unknown(s.a.status(&repo(), &id).await), "expired anyway");
    }

    #[tokio::test]
    async fn a_session_of_a_version_before_records_is_resumed() {
        let s = servers();
        let id = "00000000000000000000000000000001";
        let note = br#"{"repo":"team/app","algorithm":"sha256"}"#;
        let mut staging = s.blobs.create_staging(id, note).unwrap();
        staging.append(b"hello ").unwrap();
        drop(staging);
        assert_eq!(s.a.status(&repo(), id).await.unwrap(), 6);
        s.b.append(&repo(), id, range(6, 5), None, body(b"world"))
            .await
            .unwrap();
        let digest = Algorithm::Sha256.digest_of(b"hello world");
        s.a.finish(&repo(), id, &digest, None, None, body(b""), unlinked())
            .await
            .unwrap();
    }
}
