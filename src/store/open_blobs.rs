//! Blob files kept open for reading.
//!
//! A ranged read of a few KiB cost an `open`, an `lseek` and a `close` around its
//! one `pread`: most of its system calls. A blob file never changes once
//! published (it is named by its digest), so an open descriptor always reads the
//! right bytes, and reads are positional, so one descriptor serves every
//! concurrent stream. Whether a repository may read a blob is decided before, by
//! the metadata, on every request.
//!
//! An entry is dropped when the store removes the blob, and reopened after
//! [`MAX_AGE`]; a thread drops old entries even when no read comes, so a file
//! removed by another process (`marina gc` beside the server, a replica's
//! collection on a shared filesystem) gives its disk space back within
//! `MAX_AGE + SWEEP_EVERY`, however idle the server.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Descriptors kept at most.
const CAPACITY: usize = 128;

/// How long a descriptor is reused before the file is opened again.
const MAX_AGE: Duration = Duration::from_secs(10);

/// How often the sweeping thread drops entries past [`MAX_AGE`].
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Open blob files by digest (its hex, which differs in length per algorithm).
#[derive(Debug, Default)]
pub(crate) struct OpenBlobs {
    files: Mutex<HashMap<String, (Arc<File>, Instant)>>,
}

impl OpenBlobs {
    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<File>, Instant)>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open file of `digest`, opening `path` when none is kept (or it is old).
    pub(crate) fn get(
        &self,
        digest: &str,
        path: impl FnOnce() -> Box<Path>,
    ) -> io::Result<Arc<File>> {
        let now = Instant::now();
        if let Some((file, at)) = self.files().get(digest) {
            if now.duration_since(*at) < MAX_AGE {
                return Ok(file.clone());
            }
        }
        let file = Arc::new(File::open(path())?);
        let mut files = self.files();
        if files.len() >= CAPACITY {
            files.retain(|_, (_, at)| now.duration_since(*at) < MAX_AGE);
            if files.len() >= CAPACITY {
                files.clear();
            }
        }
        files.insert(digest.to_string(), (file.clone(), now));
        Ok(file)
    }

    /// Kept files, with a thread that drops old entries for as long as they
    /// are in use (it ends within [`SWEEP_EVERY`] of the last user).
    pub(crate) fn swept() -> Arc<OpenBlobs> {
        let open = Arc::new(OpenBlobs::default());
        let weak = Arc::downgrade(&open);
        let spawned = std::thread::Builder::new()
            .name("marina-open-blobs".into())
            .spawn(move || loop {
                std::thread::sleep(SWEEP_EVERY);
                match weak.upgrade() {
                    Some(open) => open.drop_old(Instant::now()),
                    None => return,
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the thread that closes old blob files");
        }
        open
    }

    /// Drops entries older than [`MAX_AGE`] at `now`.
    fn drop_old(&self, now: Instant) {
        self.files()
            .retain(|_, (_, at)| now.duration_since(*at) < MAX_AGE);
    }

    /// Drops the descriptor of a removed blob.
    pub(crate) fn forget(&self, digest: &str) {
        self.files().remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_kept_file_is_reused_and_forgotten_on_removal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"abc")
            .unwrap();
        let open = OpenBlobs::default();
        let a = open.get("sha256:aa", || path.clone().into()).unwrap();
        // Kept: the path is not even looked at the second time.
        let b = open
            .get("sha256:aa", || dir.path().join("missing").into())
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        open.forget("sha256:aa");
        let err = open
            .get("sha256:aa", || dir.path().join("missing").into())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn old_entries_are_dropped_without_a_read_asking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::File::create(&path).unwrap();
        let open = OpenBlobs::default();
        let file = open.get("sha256:aa", || path.clone().into()).unwrap();
        open.drop_old(Instant::now());
        assert_eq!(open.files().len(), 1, "young: kept");
        open.drop_old(Instant::now() + MAX_AGE);
        assert!(open.files().is_empty());
        assert_eq!(Arc::strong_count(&file), 1, "the store holds it no more");
    }

    #[test]
    fn the_number_kept_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::File::create(&path).unwrap();
        let open = OpenBlobs::default();
        for i in 0..CAPACITY * 3 {
            open.get(&format!("sha256:{i}"), || path.clone().into())
                .unwrap();
            assert!(open.files().len() <= CAPACITY);
        }
    }
}
