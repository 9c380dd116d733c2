//! Answers to the hottest reads (a manifest by tag or digest, a blob's link),
//! kept while the database has not changed.
//!
//! Most of a manifest GET's SQLite time went to beginning and ending the read
//! transaction (locks on the shared-memory index, two `fcntl` calls each), not
//! to the query. Whether anything was committed since a read is visible
//! without a lock: SQLite's wal-index header (the first bytes of the `-shm`
//! file, written twice so a reader can tell a torn copy) changes with every
//! transaction, from any connection of any process (its `iChange` counter;
//! see SQLite's "WAL-mode file format"). So answers are kept with the header
//! seen before they were read, and used only while the header is still that
//! one; any commit anywhere empties the cache. An answer is never older than
//! the last commit a request could have been told about: a commit updates the
//! header before it returns, and a `201` is sent after that.
//!
//! Only the embedded store keeps it (a database file in WAL mode); the
//! header's mapping stays valid because this process keeps its connections
//! open, so SQLite never truncates or removes the `-shm` file under it.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};
use std::sync::Mutex;

use super::ManifestRecord;

/// Bytes of one copy of the wal-index header.
const HEADER: usize = 48;

/// At most this many answers are kept, and this many manifest bytes.
const MAX_ENTRIES: usize = 4096;
const MAX_BYTES: usize = 8 << 20;

/// The wal-index header, mapped read-only.
struct Header {
    ptr: *const u8,
    _file: File,
}

// SAFETY: the mapping is read-only and only read with volatile loads.
unsafe impl Send for Header {}
unsafe impl Sync for Header {}

impl Header {
    /// Maps the first page of `shm`; `None` when it cannot (then nothing is cached).
    #[cfg(unix)]
    fn map(shm: &Path) -> Option<Header> {
        use std::os::fd::AsRawFd;
        let file = File::open(shm).ok()?;
        if file.metadata().ok()?.len() < (2 * HEADER) as u64 {
            return None;
        }
        // SAFETY: a fresh read-only shared mapping of an open file, at least
        // 2 × HEADER bytes long (checked above); it is never unmapped while
        // `ptr` lives (see Drop), and the file is never shortened while this
        // process holds connections (module docs).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * HEADER,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Header {
            ptr: ptr as *const u8,
            _file: file,
        })
    }

    #[cfg(not(unix))]
    fn map(_shm: &Path) -> Option<Header> {
        None
    }

    /// The header, when both copies agree (a commit is not halfway through it).
    fn read(&self) -> Option<[u8; HEADER]> {
        let mut a = [0u8; HEADER];
        let mut b = [0u8; HEADER];
        fence(Ordering::SeqCst);
        for (i, byte) in a.iter_mut().enumerate() {
            // SAFETY: within the mapping (2 × HEADER bytes).
            *byte = unsafe { std::ptr::read_volatile(self.ptr.add(i)) };
        }
        fence(Ordering::SeqCst);
        for (i, byte) in b.iter_mut().enumerate() {
            // SAFETY: as above.
            *byte = unsafe { std::ptr::read_volatile(self.ptr.add(HEADER + i)) };
        }
        fence(Ordering::SeqCst);
        (a == b).then_some(a)
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: unmaps exactly the mapping made in `map`.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, 2 * HEADER);
        }
    }
}

/// What a read answered.
#[derive(Default)]
struct Answers {
    /// The header the answers were read under.
    seen: Option<[u8; HEADER]>,
    manifests: HashMap<(String, String), Option<ManifestRecord>>,
    links: HashMap<(String, String), Option<u64>>,
    bytes: usize,
}

impl Answers {
    /// Whether the answers belong to `now`; if not, they are dropped and the
    /// cache starts over at `now`.
    fn at(&mut self, now: [u8; HEADER]) -> bool {
        if self.seen == Some(now) {
            return true;
        }
        self.manifests.clear();
        self.links.clear();
        self.bytes = 0;
        self.seen = Some(now);
        false
    }

    fn full(&self, more: usize) -> bool {
        self.manifests.len() + self.links.len() >= MAX_ENTRIES || self.bytes + more > MAX_BYTES
    }
}

/// The cache of one database (see the module documentation).
pub(crate) struct ReadCache {
    header: Header,
    answers: Mutex<Answers>,
}

/// A header seen before a read, to file its answer under.
#[derive(Clone, Copy)]
pub(crate) struct Seen([u8; HEADER]);

impl ReadCache {
    /// The cache for the database whose wal-index is `shm`, if it can be mapped.
    pub(crate) fn open(shm: &Path) -> Option<ReadCache> {
        Some(ReadCache {
            header: Header::map(shm)?,
            answers: Mutex::new(Answers::default()),
        })
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept answer in the map `pick` chooses, or the header to read it under.
    fn kept<T: Clone>(
        &self,
        pick: impl FnOnce(&Answers) -> &HashMap<(String, String), T>,
        a: &str,
        b: &str,
    ) -> Result<T, Option<Seen>> {
        let Some(now) = self.header.read() else {
            return Err(None);
        };
        let mut answers = self.answers();
        if answers.at(now) {
            // (A tuple key of borrowed strs cannot look up owned ones.)
            if let Some(hit) = pick(&answers).get(&(a.to_string(), b.to_string())) {
                return Ok(hit.clone());
            }
        }
        Err(Some(Seen(now)))
    }

    /// Files an answer read under `seen` in the map `pick` chooses, unless
    /// something changed since or the cache is full.
    fn keep<T>(
        &self,
        seen: Seen,
        size: usize,
        pick: impl FnOnce(&mut Answers) -> &mut HashMap<(String, String), T>,
        key: (String, String),
        answer: T,
    ) {
        let mut answers = self.answers();
        if answers.seen == Some(seen.0) && !answers.full(size) {
            answers.bytes += size;
            pick(&mut answers).insert(key, answer);
        }
    }

    /// The kept answer for a manifest, or the header to read it under.
    pub(crate) fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestRecord>, Option<Seen>> {
        self.kept(|a| &a.manifests, repo, reference)
    }

    /// Keeps a manifest answer read under `seen`, unless something changed since.
    pub(crate) fn keep_manifest(
        &self,
        seen: Seen,
        repo: &str,
        reference: &str,
        answer: &Option<ManifestRecord>,
    ) {
        let size = answer.as_ref().map_or(0, |m| m.bytes.len());
        let key = (repo.to_string(), reference.to_string());
        self.keep(seen, size, |a| &mut a.manifests, key, answer.clone());
    }

    /// The kept answer for a blob's link, or the header to read it under.
    pub(crate) fn link(&self, repo: &str, digest: &str) -> Result<Option<u64>, Option<Seen>> {
        self.kept(|a| &a.links, repo, digest)
    }

    /// Keeps a link answer read under `seen`, unless something changed since.
    pub(crate) fn keep_link(&self, seen: Seen, repo: &str, digest: &str, answer: Option<u64>) {
        let key = (repo.to_string(), digest.to_string());
        self.keep(seen, 0, |a| &mut a.links, key, answer);
    }
}
