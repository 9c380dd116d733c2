//! Free space kept back on the data directory's filesystem.
//!
//! When a push fills the disk to the last byte, the database has no room left
//! for the log pages a delete or a garbage collection writes, so space could
//! not be freed through the registry at all. So writes that add bytes (staging
//! appends, small blobs) are refused, as a full disk is (507), once fewer than
//! the floor's bytes are free; deletes, collection and the database itself
//! never ask, and find the floor's space there.
//!
//! The free-space figure is read from `statvfs` at most every
//! [`RECHECK_MS`] milliseconds; between readings a write asks a number in memory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How old the free-space reading may get before a write reads it again.
const RECHECK_MS: u64 = 100;

/// A floor of free bytes under a directory.
#[derive(Debug)]
pub(crate) struct SpaceFloor {
    dir: PathBuf,
    /// Bytes to keep free; 0 turns the floor off.
    floor: u64,
    /// When `free` was read, in milliseconds since `epoch` (plus one; 0: never).
    read_at: AtomicU64,
    /// Free bytes for unprivileged writers, as last read.
    free: AtomicU64,
    epoch: Instant,
}

impl SpaceFloor {
    /// Keeps `floor` bytes free on `dir`'s filesystem.
    pub(crate) fn new(dir: &Path, floor: u64) -> Self {
        SpaceFloor {
            dir: dir.to_path_buf(),
            floor,
            read_at: AtomicU64::new(0),
            free: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }

    /// Refuses, with a storage-full error, a write of `more` bytes that would
    /// leave fewer than the floor's bytes free.
    pub(crate) fn admit(&self, more: u64) -> io::Result<()> {
        // A write of nothing (the empty blob) adds no bytes.
        if self.floor == 0 || more == 0 {
            return Ok(());
        }
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let read_at = self.read_at.load(Ordering::Relaxed);
        let mut free = self.free.load(Ordering::Relaxed);
        if read_at == 0 || now.saturating_sub(read_at) >= RECHECK_MS {
            // A filesystem that cannot say is not refused for it.
            free = free_bytes(&self.dir).unwrap_or(u64::MAX);
            self.free.store(free, Ordering::Relaxed);
            self.read_at.store(now, Ordering::Relaxed);
        }
        if free.saturating_sub(more) < self.floor {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                ReserveKept {
                    mib: self.floor >> 20,
                },
            ));
        }
        Ok(())
    }
}

/// Why a write was refused with room still on the disk: it would have eaten
/// into the space kept free. Carried inside the `io::Error`, so that the
/// client is told this rather than that the disk is full.
#[derive(Debug)]
pub(crate) struct ReserveKept {
    mib: u64,
}

impl std::fmt::Display for ReserveKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fewer than {} MiB would be left free on the registry's storage; that space is \
             kept for deletes and garbage collection",
            self.mib
        )
    }
}

impl std::error::Error for ReserveKept {}

/// The reserve's refusal inside `e`, if that is what `e` is.
pub(crate) fn reserve_kept(e: &io::Error) -> Option<&ReserveKept> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ReserveKept>())
}

/// Bytes free to unprivileged writers on `dir`'s filesystem.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: statvfs(3) fills the zeroed struct; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    Ok(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> io::Result<u64> {
    Err(io::Error::other("free space is not known on this platform"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_would_go_below_the_floor_is_refused_as_storage_full() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 2 << 30, "the test needs 2 GiB free");
        // A floor 512 MiB under what is free (room for other writers meanwhile):
        // a small write passes, one of 1 GiB not.
        let floor = SpaceFloor::new(dir.path(), free - (512 << 20));
        floor.admit(4096).unwrap();
        let refused = floor.admit(1 << 30).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::StorageFull, "{refused}");
    }

    #[test]
    fn no_floor_admits_anything() {
        let dir = tempfile::tempdir().unwrap();
        SpaceFloor::new(dir.path(), 0).admit(u64::MAX).unwrap();
    }
}
