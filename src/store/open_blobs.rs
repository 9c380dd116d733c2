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
//! [`MAX_AGE`], so a file removed by another process (a replica's garbage
//! collection on a shared filesystem) gives its disk space back soon.

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
