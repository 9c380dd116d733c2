//! [`BlobStore`] on the filesystem: content-addressed files
//! `blobs/<algorithm>/<first 2 hex>/<hex>`, staging files `uploads/<session>`, and
//! beside one a `uploads/<session>.json` note when its creator gave one (the
//! registry records its sessions in the metadata store and gives none: one file
//! per upload, not two).
//!
//! A staging file lives on the same filesystem as the blobs, so publishing is a
//! rename: `fsync` the file (its bytes must be on disk before a name points at them),
//! `rename` it into place (atomic on POSIX), then `fsync` the directory so the rename
//! itself survives a crash. A reader can never see a blob whose bytes differ from its
//! digest. Writeback of large uploads is started every few MiB so that the final
//! `fsync` only waits for the tail.
//!
//! Beside a SQLite metadata store ([`FsBlobStore::with_small_blobs`], the
//! default registry), blobs of a few KiB are not files: they are published as
//! rows of the metadata database (see `small_blobs`), made durable by the sync
//! of the link that follows. A blob is looked for as a file first (larger
//! blobs, and small ones published before), then there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::file_chunks::FileChunks;
use super::open_blobs::OpenBlobs;
use super::small_blobs::{SmallBlobs, SMALL_BLOB_MAX};
use super::space::SpaceFloor;
use super::{
    BlobChunks, BlobReader, BlobStore, ResumedStaging, SqliteMetaStore, Staging, Together,
};
use crate::oci::Digest;

/// Blobs and staging files under one directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Blob files kept open for reads (shared by clones).
    open: Arc<OpenBlobs>,
    /// Where small blobs are published; `None` when they are files too.
    small: Option<Arc<SmallBlobs>>,
    /// Free space that writes adding bytes leave alone.
    floor: Arc<SpaceFloor>,
}

/// A staging file of an upload session.
#[derive(Debug)]
pub struct FsStaging {
    store: FsBlobStore,
    id: String,
    file: File,
    size: u64,
    writeback_from: u64,
    /// Whether a note file stands beside it.
    noted: bool,
}

/// Reads up to this long are made on the task that asks (see `open_chunks`).
const READ_IN_PLACE: u64 = 64 << 10;

/// Start writeback every this many appended bytes.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Asks the kernel to start writing a range to disk now, without waiting for it.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the lifetime of `file`; the call only
    // schedules I/O and reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Takes (`exclusive`) or gives up an advisory lock on the whole file, shared
/// by every process that opens it; waits while another process holds it.
#[cfg(unix)]
fn flock(file: &File, exclusive: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_UN
    };
    loop {
        // SAFETY: the descriptor is open for the lifetime of `file`.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn flock(_file: &File, _exclusive: bool) -> io::Result<()> {
    Ok(())
}

impl FsBlobStore {
    /// Opens (creating if needed) a blob store under `root`, every blob a file.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        Ok(FsBlobStore {
            root: root.to_path_buf(),
            open: OpenBlobs::swept(),
            small: None,
            floor: Arc::new(SpaceFloor::new(root, 0)),
        })
    }

    /// Refuses (as a full disk, 507) writes that would leave fewer than
    /// `bytes` free on the store's filesystem, so deletes and garbage
    /// collection still find room when pushes have filled it.
    pub fn with_min_free(mut self, bytes: u64) -> Self {
        self.floor = Arc::new(SpaceFloor::new(&self.root, bytes));
        self
    }

    /// A blob store under `root` that keeps small blobs in `meta`'s database.
    pub(crate) fn with_small_blobs(root: &Path, meta: &SqliteMetaStore) -> io::Result<Self> {
        let mut store = Self::open(root)?;
        store.small = Some(Arc::new(meta.small_blobs()));
        Ok(store)
    }

    /// The small-blob table, for a blob of `size` bytes that belongs there.
    fn small_for(&self, size: u64) -> Option<&SmallBlobs> {
        self.small.as_deref().filter(|_| size <= SMALL_BLOB_MAX)
    }

    /// A kept small blob, when its file is `missing`.
    fn small_blob(&self, digest: &Digest, missing: io::Error) -> io::Result<Bytes> {
        if missing.kind() != io::ErrorKind::NotFound {
            return Err(missing);
        }
        match &self.small {
            Some(small) => small.get(digest)?.ok_or(missing),
            None => Err(missing),
        }
    }

    /// Reads a whole stored blob (a file or a small blob); `None` when it is
    /// not stored.
    pub(crate) fn read_whole(&self, digest: &Digest) -> io::Result<Option<Box<dyn io::Read>>> {
        match File::open(self.path_of(digest)) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) => match self.small_blob(digest, e) {
                Ok(bytes) => Ok(Some(Box::new(io::Cursor::new(bytes)))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Directory of upload staging files.
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Final path of a blob.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    fn staging_path(&self, id: &str) -> PathBuf {
        self.uploads_dir().join(id)
    }

    fn note_path(&self, id: &str) -> PathBuf {
        self.uploads_dir().join(format!("{id}.json"))
    }
}

impl Staging for FsStaging {
    fn size(&self) -> u64 {
        self.size
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.store.floor.admit(bytes.len() as u64)?;
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        if self.size - self.writeback_from >= WRITEBACK_EVERY {
            start_writeback(
                &self.file,
                self.writeback_from,
                self.size - self.writeback_from,
            );
            self.writeback_from = self.size;
        }
        Ok(())
    }

    fn truncate(&mut self, size: u64) -> io::Result<()> {
        self.file.set_len(size)?;
        self.file.seek(SeekFrom::Start(size))?;
        self.size = size;
        self.writeback_from = self.writeback_from.min(size);
        Ok(())
    }

    fn lock(&mut self) -> io::Result<()> {
        flock(&self.file, true)?;
        // Another process may have written since this handle last did.
        self.size = self.file.seek(SeekFrom::End(0))?;
        self.writeback_from = self.writeback_from.min(self.size);
        Ok(())
    }

    fn unlock(&self) {
        let _ = flock(&self.file, false);
    }

    fn read_back(&self) -> io::Result<Box<dyn io::Read + Send>> {
        self.read_from(0)
    }

    fn read_from(&self, offset: u64) -> io::Result<Box<dyn io::Read + Send>> {
        let mut file = File::open(self.store.staging_path(&self.id))?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, file)))
    }

    fn in_place(&self) -> bool {
        true
    }

    fn publish(self: Box<Self>, digest: &Digest) -> io::Result<()> {
        let FsStaging {
            store,
            id,
            file,
            noted,
            size,
            ..
        } = *self;
        let target = store.path_of(digest);
        if noted {
            let _ = fs::remove_file(store.note_path(&id));
        }
        if target.is_file() {
            drop(file);
            let _ = fs::remove_file(store.staging_path(&id));
            return Ok(());
        }
        if let Some(small) = store.small_for(size) {
            // The staging file only held the bytes; it need not be synced.
            let mut bytes = vec![0; size as usize];
            read_exact_at(&file, &mut bytes, 0)?;
            small.put(digest, &bytes)?;
            drop(file);
            let _ = fs::remove_file(store.staging_path(&id));
            return Ok(());
        }
        // Data first, then the name: a crash between them leaves a staging file,
        // never a blob name over missing bytes.
        file.sync_all()?;
        drop(file);
        let dir = target.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir)?;
        fs::rename(store.staging_path(&id), &target)?;
        // The rename is a directory update; sync the directory so it is durable.
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

/// `len` bytes of `bytes` from `offset`, as far as they go (the registry asks
/// only for ranges within a blob).
fn within(bytes: Bytes, offset: u64, len: u64) -> Bytes {
    let start = (offset as usize).min(bytes.len());
    let end = (offset.saturating_add(len) as usize).min(bytes.len());
    bytes.slice(start..end)
}

/// Reads `buf.len()` bytes at `offset` without moving the file's position.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::Read;
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    fn create_staging(&self, id: &str, note: &[u8]) -> io::Result<Box<dyn Staging>> {
        let noted = !note.is_empty();
        if noted {
            fs::write(self.note_path(id), note)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(self.staging_path(id))?;
        Ok(Box::new(FsStaging {
            store: self.clone(),
            id: id.to_string(),
            file,
            size: 0,
            writeback_from: 0,
            noted,
        }))
    }

    fn reopen_staging(&self, id: &str) -> io::Result<Option<ResumedStaging>> {
        // No note file: the staging area was created without one.
        let (note, noted) = match fs::read(self.note_path(id)) {
            Ok(n) => (n, true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) => return Err(e),
        };
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.staging_path(id))
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.seek(SeekFrom::End(0))?;
        let staging = FsStaging {
            store: self.clone(),
            id: id.to_string(),
            file,
            size,
            writeback_from: size,
            noted,
        };
        Ok(Some((Box::new(staging), note)))
    }

    fn blobs_written_before(&self, prefix: u8, before: SystemTime) -> Vec<(Digest, u64)> {
        let mut found = Vec::new();
        let Ok(algorithms) = fs::read_dir(self.root.join("blobs")) else {
            return found;
        };
        for algorithm in algorithms.flatten() {
            let algorithm_name = algorithm.file_name().to_string_lossy().into_owned();
            let Ok(files) = fs::read_dir(algorithm.path().join(format!("{prefix:02x}"))) else {
                continue;
            };
            for file in files.flatten() {
                let name = format!("{algorithm_name}:{}", file.file_name().to_string_lossy());
                let (Ok(digest), Ok(meta)) = (name.parse::<Digest>(), file.metadata()) else {
                    continue;
                };
                if meta.is_file() && meta.modified().is_ok_and(|t| t < before) {
                    found.push((digest, meta.len()));
                }
            }
        }
        found
    }

    /// A small blob goes straight into its table, with no staging file.
    fn publish_bytes(&self, id: &str, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        self.floor.admit(bytes.len() as u64)?;
        match self.small_for(bytes.len() as u64) {
            Some(small) if !self.path_of(digest).is_file() => small.put(digest, bytes),
            Some(_) => Ok(()),
            None => super::stage_and_publish(self, id, digest, bytes),
        }
    }

    fn write_together(&self, f: &mut dyn FnMut()) -> io::Result<()> {
        match &self.small {
            Some(small) => small.write_together(f),
            None => {
                f();
                Ok(())
            }
        }
    }

    async fn write_together_queued(&self, f: Together) -> Result<io::Result<()>, Together> {
        match &self.small {
            Some(small) => Ok(small.write_together_queued(f).await),
            None => Err(f),
        }
    }

    fn discard_staging(&self, id: &str) {
        let _ = fs::remove_file(self.staging_path(id));
        let _ = fs::remove_file(self.note_path(id));
    }

    fn stale_staging(&self, before: SystemTime) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.uploads_dir()) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .map(|t| t < before)
                    .unwrap_or(false)
            })
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.trim_end_matches(".json").to_string()
            })
            .collect();
        ids.sort();
        ids.dedup();
        // A session is stale only if its data file is (a note alone is written once).
        ids.retain(|id| {
            fs::metadata(self.staging_path(id))
                .and_then(|m| m.modified())
                .map(|t| t < before)
                .unwrap_or(true)
        });
        ids
    }

    async fn size_of(&self, digest: &Digest) -> io::Result<Option<u64>> {
        match (fs::metadata(self.path_of(digest)), &self.small) {
            (Ok(m), _) => Ok(Some(m.len())),
            (Err(e), Some(small)) if e.kind() == io::ErrorKind::NotFound => small.size(digest),
            (Err(e), _) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            (Err(e), _) => Err(e),
        }
    }

    async fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobReader> {
        let mut file = match File::open(self.path_of(digest)) {
            Ok(f) => f,
            Err(e) => {
                let bytes = self.small_blob(digest, e)?;
                return Ok(Box::new(io::Cursor::new(within(bytes, offset, len))));
            }
        };
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
        }
        Ok(Box::new(tokio::fs::File::from_std(file).take(len)))
    }

    /// Large chunks read straight into the buffers that are sent, one chunk ahead of
    /// the client (see `FileChunks`). Opening reads the first chunk: a short
    /// range (a few pages, from the page cache as a rule) is read in place; a
    /// longer one where blocking is allowed (`block_in_place`), so that a read
    /// from the disk never holds up the other requests of the worker.
    async fn open_chunks(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobChunks> {
        let open = || -> io::Result<BlobChunks> {
            let file = match self
                .open
                .get(digest.hex(), || self.path_of(digest).into_boxed_path())
            {
                Ok(file) => file,
                Err(e) => {
                    let bytes = within(self.small_blob(digest, e)?, offset, len);
                    return Ok(Box::pin(futures_util::stream::iter([Ok(bytes)])));
                }
            };
            Ok(Box::pin(FileChunks::new(file, offset, len)?))
        };
        if len <= READ_IN_PLACE {
            return open();
        }
        super::offload(open)
    }

    async fn ping(&self) -> io::Result<()> {
        if let Some(small) = &self.small {
            small.ping()?;
        }
        for dir in ["blobs", "uploads"] {
            let path = self.root.join(dir);
            if !fs::metadata(&path)?.is_dir() {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    async fn remove(&self, digest: &Digest) -> io::Result<()> {
        self.open.forget(digest.hex());
        match (fs::remove_file(self.path_of(digest)), &self.small) {
            (Err(e), Some(small)) if e.kind() == io::ErrorKind::NotFound => {
                small.remove(digest).map(|_| ())
            }
            (Err(e), _) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            (other, _) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staging_area_without_a_note_is_one_file_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut staging = store.create_staging("s1", b"").unwrap();
        staging.append(b"abc").unwrap();
        drop(staging);
        let files: Vec<_> = fs::read_dir(store.uploads_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from("s1")], "no note file");
        let (reopened, note) = store.reopen_staging("s1").unwrap().expect("reopens");
        assert_eq!((reopened.size(), note), (3, Vec::new()));
        // With a note, both come back.
        store.create_staging("s2", b"{}").unwrap();
        let (_, note) = store.reopen_staging("s2").unwrap().expect("reopens");
        assert_eq!(note, b"{}");
        assert!(store.reopen_staging("s3").unwrap().is_none());
    }
}
