//! Upload sessions: a staging area plus the running hash of what it holds.
//!
//! Sessions live in memory for speed and in the blob store for durability: its
//! staging area and a small note naming the repository and algorithm. After a
//! restart a session is rebuilt on first use by re-hashing its staging area. Idle
//! sessions expire and their staging areas are removed.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::staged::StagedBlob;
use super::writer::BodyWriter;
use super::RegistryError;
use crate::oci::{Algorithm, Digest, RepoName};
use crate::store::BlobStore;

/// What a session knows about itself, persisted next to its staging file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionInfo {
    repo: String,
    algorithm: String,
}

struct Session {
    info: SessionInfo,
    staged: Option<StagedBlob>,
    last_active: Instant,
}

/// All open upload sessions.
pub struct UploadSessions {
    blobs: Arc<dyn BlobStore>,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
}

/// A chunk's claimed position, from `Content-Range: <start>-<end>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive.
    pub end: u64,
}

impl UploadSessions {
    /// Sessions whose staging areas live in `blobs`.
    pub fn new(blobs: Arc<dyn BlobStore>) -> Self {
        UploadSessions {
            blobs,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a new session and returns its id.
    pub async fn create(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
    ) -> Result<String, RegistryError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let info = SessionInfo {
            repo: repo.to_string(),
            algorithm: algorithm.as_str().to_string(),
        };
        let blobs = self.blobs.clone();
        let (id2, note) = (id.clone(), serde_json::to_vec(&info).unwrap_or_default());
        let staged = tokio::task::spawn_blocking(move || -> io::Result<StagedBlob> {
            Ok(StagedBlob::new(
                blobs.create_staging(&id2, &note)?,
                algorithm,
            ))
        })
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))??;
        let session = Session {
            info,
            staged: Some(staged),
            last_active: Instant::now(),
        };
        self.lock_map()
            .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
        Ok(id)
    }

    fn lock_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Session>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds a session of `repo`, reloading it from disk after a restart.
    async fn get(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<Arc<tokio::sync::Mutex<Session>>, RegistryError> {
        let unknown = || RegistryError::UploadUnknown(id.to_string());
        // Session ids are our own uuids; anything else never touches the filesystem.
        if id.parse::<UploadId>().is_err() {
            return Err(unknown());
        }
        let found = self.lock_map().get(id).cloned();
        let session = match found {
            Some(s) => s,
            None => {
                let blobs = self.blobs.clone();
                let id2 = id.to_string();
                let loaded =
                    tokio::task::spawn_blocking(move || -> Option<(SessionInfo, StagedBlob)> {
                        let (staging, note) = blobs.reopen_staging(&id2).ok()??;
                        let info: SessionInfo = serde_json::from_slice(&note).ok()?;
                        let alg: Algorithm = info.algorithm.parse().ok()?;
                        let staged = StagedBlob::resume(staging, alg).ok()?;
                        Some((info, staged))
                    })
                    .await
                    .map_err(|e| RegistryError::Internal(e.to_string()))?;
                let (info, staged) = loaded.ok_or_else(unknown)?;
                let fresh = Arc::new(tokio::sync::Mutex::new(Session {
                    info,
                    staged: Some(staged),
                    last_active: Instant::now(),
                }));
                self.lock_map()
                    .entry(id.to_string())
                    .or_insert(fresh)
                    .clone()
            }
        };
        if session.lock().await.info.repo != repo.as_str() {
            return Err(unknown());
        }
        Ok(session)
    }

    /// Bytes received so far.
    pub async fn status(&self, repo: &RepoName, id: &str) -> Result<u64, RegistryError> {
        let s = self.get(repo, id).await?;
        let mut s = s.lock().await;
        s.last_active = Instant::now();
        s.staged
            .as_ref()
            .map(|b| b.size())
            .ok_or_else(|| RegistryError::UploadUnknown(id.into()))
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
        let s = self.get(repo, id).await?;
        let mut s = s.lock().await;
        s.last_active = Instant::now();
        let staged = s
            .staged
            .take()
            .ok_or_else(|| RegistryError::UploadUnknown(id.into()))?;
        let size = staged.size();
        if let Some(r) = range {
            if r.start != size || r.end < r.start {
                s.staged = Some(staged);
                return Err(RegistryError::RangeNotSatisfiable { size, got: r.start });
            }
        }
        let checkpoint = staged.checkpoint();
        let (staged, result) = write_stream(staged, body).await;
        let mut staged = staged;
        let outcome = match result {
            Err(e) => Err(e),
            Ok(written) => {
                let expected = range.map(|r| r.end - r.start + 1).or(length);
                match expected {
                    Some(n) if n != written => Err(RegistryError::SizeInvalid(format!(
                        "chunk declared {n} bytes but {written} arrived"
                    ))),
                    _ => Ok(staged.size()),
                }
            }
        };
        if outcome.is_err() {
            staged.rollback(checkpoint)?;
        }
        s.staged = Some(staged);
        s.last_active = Instant::now();
        outcome
    }

    /// Closes a session: checks the content against `digest` and, when it matches,
    /// publishes the blob and returns its size. On a mismatch the session is removed
    /// and nothing is stored.
    pub async fn finish(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, RegistryError> {
        let s = self.get(repo, id).await?;
        let mut s = s.lock().await;
        let staged = s
            .staged
            .take()
            .ok_or_else(|| RegistryError::UploadUnknown(id.into()))?;
        self.lock_map().remove(id);
        let alg = digest.algorithm();
        let blobs = self.blobs.clone();
        let expected = digest.clone();
        let id2 = id.to_string();
        tokio::task::spawn_blocking(move || -> Result<u64, RegistryError> {
            let actual = staged.digest_as(alg)?;
            if actual != expected {
                drop(staged);
                blobs.discard_staging(&id2);
                return Err(RegistryError::DigestMismatch {
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            let size = staged.size();
            staged.publish(&expected)?;
            Ok(size)
        })
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?
    }

    /// Cancels a session and removes its staging area.
    pub async fn cancel(&self, repo: &RepoName, id: &str) -> Result<(), RegistryError> {
        let s = self.get(repo, id).await?;
        let mut s = s.lock().await;
        s.staged = None;
        self.lock_map().remove(id);
        self.blobs.discard_staging(id);
        Ok(())
    }

    /// Sessions open in this process and the bytes they hold (a session busy
    /// with a chunk counts with no bytes: it is not waited for).
    pub fn in_progress(&self) -> (u64, u64) {
        let map = self.lock_map();
        let bytes = map
            .values()
            .filter_map(|s| Some(s.try_lock().ok()?.staged.as_ref()?.size()))
            .sum();
        (map.len() as u64, bytes)
    }

    /// Removes sessions idle for longer than `ttl`, in memory and in the store.
    /// Returns how many were removed.
    pub fn expire(&self, ttl: Duration) -> usize {
        let mut removed = 0;
        let idle: Vec<String> = {
            let map = self.lock_map();
            map.iter()
                .filter_map(|(id, s)| {
                    let s = s.try_lock().ok()?; // busy sessions are active
                    (s.last_active.elapsed() > ttl).then(|| id.clone())
                })
                .collect()
        };
        for id in idle {
            self.lock_map().remove(&id);
            self.blobs.discard_staging(&id);
            removed += 1;
        }
        // Staging areas of sessions not in memory (left by an earlier process).
        for id in self.blobs.stale_staging(SystemTime::now() - ttl) {
            if !self.lock_map().contains_key(&id) {
                self.blobs.discard_staging(&id);
                removed += 1;
            }
        }
        removed
    }
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
    let (staging, hasher) = staged.into_parts();
    let mut writer = BodyWriter::new(staging, hasher);
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
    (StagedBlob::from_parts(out.staging, out.hasher), result)
}

/// The grammar of upload session ids (see [`UploadId`]), for schemas.
pub const UPLOAD_ID_PATTERN: &str = "^[0-9a-fA-F]{32}$";

/// An upload session's id, as its `Location` carries it: 32 hex digits (a uuid
/// this registry made). Anything else names no session.
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
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
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
