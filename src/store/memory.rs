//! [`BlobStore`] in memory, for tests and throwaway registries. Staging areas are
//! kept in the store (not in the upload), so a registry rebuilt over the same store
//! resumes its sessions as it would after a restart on disk.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use bytes::Bytes;

use super::{BlobChunks, BlobReader, BlobStore, ResumedStaging, Staging};
use crate::oci::Digest;

#[derive(Default)]
struct State {
    blobs: HashMap<String, Bytes>,
    staging: HashMap<String, StagingEntry>,
    /// How often staged bytes were read back from the start (tests check
    /// that resuming a session does not re-hash it).
    read_backs: usize,
    /// Staged bytes read back from an offset (to bring a recorded hash up to
    /// its upload's size).
    reread: u64,
}

struct StagingEntry {
    data: Arc<Mutex<Vec<u8>>>,
    gate: Arc<Gate>,
    note: Vec<u8>,
    touched: SystemTime,
}

/// [`Staging::lock`] of one staging area, shared by all its handles (as an
/// advisory file lock is by all the descriptors of a file).
#[derive(Default)]
struct Gate {
    locked: Mutex<bool>,
    freed: Condvar,
}

/// Blobs held in memory.
#[derive(Clone, Default)]
pub struct MemoryBlobStore {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryBlobStore")
    }
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many times staged bytes were read back, for tests.
    #[cfg(test)]
    pub(crate) fn read_backs(&self) -> usize {
        self.lock().read_backs
    }

    /// Staged bytes read back from an offset, for tests.
    #[cfg(test)]
    pub(crate) fn reread(&self) -> u64 {
        self.lock().reread
    }

    /// `len` bytes of a stored blob from `offset` (fewer at its end), without a copy.
    fn slice(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<Bytes> {
        let bytes = self
            .lock()
            .blobs
            .get(&digest.to_string())
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "blob not stored"))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let end = start.saturating_add(len).min(bytes.len());
        Ok(bytes.slice(start..end))
    }
}

struct MemoryStaging {
    store: MemoryBlobStore,
    id: String,
    data: Arc<Mutex<Vec<u8>>>,
    gate: Arc<Gate>,
    /// Whether this handle holds the gate.
    holding: AtomicBool,
}

impl Drop for MemoryStaging {
    fn drop(&mut self) {
        self.unlock();
    }
}

impl MemoryStaging {
    fn data(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        if let Some(e) = self.store.lock().staging.get_mut(&self.id) {
            e.touched = SystemTime::now();
        }
    }
}

impl Staging for MemoryStaging {
    fn size(&self) -> u64 {
        self.data().len() as u64
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.data().extend_from_slice(bytes);
        self.touch();
        Ok(())
    }

    fn truncate(&mut self, size: u64) -> io::Result<()> {
        self.data().truncate(size as usize);
        Ok(())
    }

    fn lock(&mut self) -> io::Result<()> {
        let mut locked = self.gate.locked.lock().unwrap_or_else(|e| e.into_inner());
        while *locked {
            locked = self
                .gate
                .freed
                .wait(locked)
                .unwrap_or_else(|e| e.into_inner());
        }
        *locked = true;
        self.holding.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unlock(&self) {
        if self.holding.swap(false, Ordering::SeqCst) {
            *self.gate.locked.lock().unwrap_or_else(|e| e.into_inner()) = false;
            self.gate.freed.notify_one();
        }
    }

    fn read_back(&self) -> io::Result<Box<dyn io::Read + Send>> {
        self.store.lock().read_backs += 1;
        Ok(Box::new(io::Cursor::new(self.data().clone())))
    }

    fn read_from(&self, offset: u64) -> io::Result<Box<dyn io::Read + Send>> {
        let data = self.data();
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let rest = data[from..].to_vec();
        drop(data);
        self.store.lock().reread += rest.len() as u64;
        Ok(Box::new(io::Cursor::new(rest)))
    }

    fn in_place(&self) -> bool {
        true
    }

    fn publish(self: Box<Self>, digest: &Digest) -> io::Result<()> {
        let bytes = Bytes::from(std::mem::take(&mut *self.data()));
        let mut state = self.store.lock();
        state.staging.remove(&self.id);
        state.blobs.entry(digest.to_string()).or_insert(bytes);
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for MemoryBlobStore {
    fn create_staging(&self, id: &str, note: &[u8]) -> io::Result<Box<dyn Staging>> {
        let data = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Gate::default());
        let mut state = self.lock();
        if state.staging.contains_key(id) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "staging area exists",
            ));
        }
        state.staging.insert(
            id.to_string(),
            StagingEntry {
                data: data.clone(),
                gate: gate.clone(),
                note: note.to_vec(),
                touched: SystemTime::now(),
            },
        );
        Ok(Box::new(MemoryStaging {
            store: self.clone(),
            id: id.to_string(),
            data,
            gate,
            holding: AtomicBool::new(false),
        }))
    }

    fn reopen_staging(&self, id: &str) -> io::Result<Option<ResumedStaging>> {
        let state = self.lock();
        Ok(state.staging.get(id).map(|e| {
            let staging: Box<dyn Staging> = Box::new(MemoryStaging {
                store: self.clone(),
                id: id.to_string(),
                data: e.data.clone(),
                gate: e.gate.clone(),
                holding: AtomicBool::new(false),
            });
            (staging, e.note.clone())
        }))
    }

    fn discard_staging(&self, id: &str) {
        self.lock().staging.remove(id);
    }

    fn stale_staging(&self, before: SystemTime) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lock()
            .staging
            .iter()
            .filter(|(_, e)| e.touched < before)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    async fn size_of(&self, digest: &Digest) -> io::Result<Option<u64>> {
        Ok(self
            .lock()
            .blobs
            .get(&digest.to_string())
            .map(|b| b.len() as u64))
    }

    async fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobReader> {
        Ok(Box::new(io::Cursor::new(self.slice(digest, offset, len)?)))
    }

    async fn open_chunks(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobChunks> {
        let bytes = self.slice(digest, offset, len)?;
        Ok(Box::pin(futures_util::stream::iter(
            (!bytes.is_empty()).then_some(Ok(bytes)),
        )))
    }

    async fn remove(&self, digest: &Digest) -> io::Result<()> {
        self.lock().blobs.remove(&digest.to_string());
        Ok(())
    }
}
