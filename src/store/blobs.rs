//! Content-addressed blob files: `blobs/<algorithm>/<first 2 hex>/<hex>`.
//!
//! Uploads are written to `uploads/<session>` on the same filesystem, hashed while
//! they stream, and published only after the digest is verified: `fsync` the file,
//! `rename` it into place (atomic on POSIX), then `fsync` the directory so the rename
//! itself survives a crash. A reader can therefore never see a blob whose bytes differ
//! from its digest.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::oci::{Algorithm, Digest, Hasher};

/// The blob half of the store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// A staging file being filled by an upload, with the hash of what it holds.
#[derive(Debug)]
pub struct StagedBlob {
    /// Where the bytes are being written.
    pub path: PathBuf,
    file: File,
    hasher: Hasher,
    size: u64,
}

impl StagedBlob {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes, hashing them on the way.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// A checkpoint to roll back to if the rest of a request fails.
    pub fn checkpoint(&self) -> (u64, Hasher) {
        (self.size, self.hasher.clone())
    }

    /// Restores a checkpoint: truncates the file and the hash state.
    pub fn rollback(&mut self, (size, hasher): (u64, Hasher)) -> io::Result<()> {
        self.file.set_len(size)?;
        self.file.seek(SeekFrom::Start(size))?;
        self.size = size;
        self.hasher = hasher;
        Ok(())
    }

    /// The digest of the content so far under `algorithm`: from the running hash
    /// when it matches, else by re-reading the file (a client may push sha512
    /// content without announcing `digest-algorithm`).
    pub fn digest_as(&mut self, algorithm: Algorithm) -> io::Result<Digest> {
        if self.hasher_algorithm() == algorithm {
            return Ok(self.hasher.clone().finish());
        }
        let mut h = algorithm.hasher();
        let mut f = File::open(&self.path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish())
    }

    fn hasher_algorithm(&self) -> Algorithm {
        match self.hasher {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }
}

impl BlobStore {
    /// Opens (creating if needed) a blob store under `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        Ok(BlobStore {
            root: root.to_path_buf(),
        })
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

    /// Whether a verified blob file exists.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }

    /// Size of a stored blob, if present.
    pub fn size_of(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path_of(digest)).ok().map(|m| m.len())
    }

    /// Creates an empty staging file for a new upload session.
    pub fn create_staging(&self, session: &str, algorithm: Algorithm) -> io::Result<StagedBlob> {
        let path = self.uploads_dir().join(session);
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)?;
        Ok(StagedBlob {
            path,
            file,
            hasher: algorithm.hasher(),
            size: 0,
        })
    }

    /// Reopens the staging file of a session found on disk (after a restart),
    /// re-hashing what it already holds.
    pub fn reopen_staging(&self, session: &str, algorithm: Algorithm) -> io::Result<StagedBlob> {
        let path = self.uploads_dir().join(session);
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut hasher = algorithm.hasher();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(StagedBlob {
            path,
            file,
            hasher,
            size,
        })
    }

    /// Publishes a verified staging file under its digest. If the blob already
    /// exists (an identical concurrent push won), the staging file is discarded.
    pub fn publish(&self, staged: StagedBlob, digest: &Digest) -> io::Result<()> {
        let target = self.path_of(digest);
        if target.is_file() {
            drop(staged.file);
            let _ = fs::remove_file(&staged.path);
            return Ok(());
        }
        // Data must be on disk before the name points at it, or a crash could
        // leave a complete-looking name over missing bytes.
        staged.file.sync_all()?;
        drop(staged.file);
        let dir = target.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir)?;
        fs::rename(&staged.path, &target)?;
        // The rename is a directory update; sync the directory so it is durable.
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Stores a small, fully buffered blob (used for tests and tiny payloads).
    pub fn put_bytes(
        &self,
        session: &str,
        bytes: &[u8],
        algorithm: Algorithm,
    ) -> io::Result<Digest> {
        let mut staged = self.create_staging(session, algorithm)?;
        staged.write(bytes)?;
        let digest = staged.hasher.clone().finish();
        self.publish(staged, &digest)?;
        Ok(digest)
    }

    /// Removes a staging file (cancelled or expired upload).
    pub fn discard_staging(&self, session: &str) {
        let _ = fs::remove_file(self.uploads_dir().join(session));
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> io::Result<File> {
        File::open(self.path_of(digest))
    }

    /// Deletes a blob file (garbage collection only).
    pub fn remove(&self, digest: &Digest) -> io::Result<()> {
        match fs::remove_file(self.path_of(digest)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.put_bytes("s1", b"hello", Algorithm::Sha256).unwrap();
        assert_eq!(d, Algorithm::Sha256.digest_of(b"hello"));
        assert_eq!(fs::read(store.path_of(&d)).unwrap(), b"hello");
        assert!(!store.uploads_dir().join("s1").exists());
    }

    #[test]
    fn rollback_restores_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut s = store.create_staging("s", Algorithm::Sha256).unwrap();
        s.write(b"abc").unwrap();
        let cp = s.checkpoint();
        s.write(b"garbage").unwrap();
        s.rollback(cp).unwrap();
        s.write(b"def").unwrap();
        assert_eq!(s.size(), 6);
        assert_eq!(
            s.digest_as(Algorithm::Sha256).unwrap(),
            Algorithm::Sha256.digest_of(b"abcdef")
        );
        assert_eq!(
            s.digest_as(Algorithm::Sha512).unwrap(),
            Algorithm::Sha512.digest_of(b"abcdef")
        );
    }

    #[test]
    fn reopen_rehashes_existing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut s = store.create_staging("s", Algorithm::Sha512).unwrap();
        s.write(b"partial").unwrap();
        drop(s);
        let mut s = store.reopen_staging("s", Algorithm::Sha512).unwrap();
        assert_eq!(s.size(), 7);
        s.write(b"!").unwrap();
        assert_eq!(
            s.digest_as(Algorithm::Sha512).unwrap(),
            Algorithm::Sha512.digest_of(b"partial!")
        );
    }
}
