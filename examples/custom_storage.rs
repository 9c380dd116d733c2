//! A skeleton of a custom blob store: every blob is one file named `<alg>-<hex>` in a
//! single flat directory. It passes Marina's storage contract, and a registry runs on it.
//!
//! Start from here to put blobs somewhere else (an object store, a database): keep
//! `publish` atomic and idempotent, and make `reopen_staging` find what
//! `create_staging` left, and `marina::store::contract::check_blob_store` will tell you
//! which promise you broke, if any. Reads and removals are async (an object store
//! answers them over the network); this one answers from the filesystem at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use marina::oci::Digest;
use marina::store::{BlobReader, BlobStore, ResumedStaging, Staging};
use tokio::io::AsyncReadExt;

/// Blobs as `<root>/<alg>-<hex>`, staging areas as `<root>/staging-<id>` and notes as `<root>/note-<id>`.
#[derive(Clone)]
pub struct FlatDirBlobStore {
    root: PathBuf,
}

impl FlatDirBlobStore {
    /// Uses (and creates) `root`.
    pub fn new(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(FlatDirBlobStore {
            root: root.to_path_buf(),
        })
    }

    fn blob(&self, d: &Digest) -> PathBuf {
        self.root.join(format!("{}-{}", d.algorithm(), d.hex()))
    }

    fn staging(&self, id: &str) -> PathBuf {
        self.root.join(format!("staging-{id}"))
    }

    fn note(&self, id: &str) -> PathBuf {
        self.root.join(format!("note-{id}"))
    }
}

struct FlatStaging {
    store: FlatDirBlobStore,
    id: String,
    file: File,
    size: u64,
}

impl Staging for FlatStaging {
    fn size(&self) -> u64 {
        self.size
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, size: u64) -> io::Result<()> {
        self.file.set_len(size)?;
        self.file.seek(SeekFrom::Start(size))?;
        self.size = size;
        Ok(())
    }

    fn read_back(&self) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(File::open(self.store.staging(&self.id))?))
    }

    fn publish(self: Box<Self>, digest: &Digest) -> io::Result<()> {
        let _ = fs::remove_file(self.store.note(&self.id));
        if self.store.blob(digest).exists() {
            return fs::remove_file(self.store.staging(&self.id));
        }
        self.file.sync_all()?;
        fs::rename(self.store.staging(&self.id), self.store.blob(digest))
    }
}

#[marina::store::async_trait]
impl BlobStore for FlatDirBlobStore {
    fn create_staging(&self, id: &str, note: &[u8]) -> io::Result<Box<dyn Staging>> {
        fs::write(self.note(id), note)?;
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(self.staging(id))?;
        Ok(Box::new(FlatStaging {
            store: self.clone(),
            id: id.to_string(),
            file,
            size: 0,
        }))
    }

    fn reopen_staging(&self, id: &str) -> io::Result<Option<ResumedStaging>> {
        let (Ok(note), Ok(mut file)) = (
            fs::read(self.note(id)),
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.staging(id)),
        ) else {
            return Ok(None);
        };
        let size = file.seek(SeekFrom::End(0))?;
        let staging: Box<dyn Staging> = Box::new(FlatStaging {
            store: self.clone(),
            id: id.to_string(),
            file,
            size,
        });
        Ok(Some((staging, note)))
    }

    fn discard_staging(&self, id: &str) {
        let _ = fs::remove_file(self.staging(id));
        let _ = fs::remove_file(self.note(id));
    }

    fn stale_staging(&self, before: SystemTime) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_prefix("staging-")?.to_string();
                let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                (modified < before).then_some(id)
            })
            .collect()
    }

    async fn size_of(&self, digest: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.blob(digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobReader> {
        let mut f = File::open(self.blob(digest))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(tokio::fs::File::from_std(f).take(len)))
    }

    async fn remove(&self, digest: &Digest) -> io::Result<()> {
        match fs::remove_file(self.blob(digest)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = std::sync::Arc::new(FlatDirBlobStore::new(dir.path())?);
    marina::store::contract::check_blob_store(&|| {
        let d = tempfile::tempdir().unwrap().keep();
        std::sync::Arc::new(FlatDirBlobStore::new(&d).unwrap())
    })
    .await;
    println!("FlatDirBlobStore keeps the storage contract");
    let registry = marina::Registry::builder()
        .in_memory()
        .blob_store(store)
        .build()?;
    println!("a registry runs on it: {:?}", registry.config().listen);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn keeps_the_storage_contract() {
        let dirs = Mutex::new(Vec::new());
        marina::store::contract::check_blob_store(&|| {
            let d = tempfile::tempdir().unwrap();
            let s = FlatDirBlobStore::new(d.path()).unwrap();
            dirs.lock().unwrap().push(d);
            Arc::new(s)
        })
        .await;
    }

    #[tokio::test]
    async fn a_registry_runs_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let builder = marina::Registry::builder()
            .in_memory()
            .blob_store(Arc::new(FlatDirBlobStore::new(dir.path()).unwrap()));
        let reg = marina::testing::TestRegistry::start_with(builder, None).await;
        let image = reg.push_image("custom/store", "v1").await;
        let body = reqwest::get(format!(
            "{}/v2/custom/store/blobs/{}",
            reg.url(),
            image.blobs[1]
        ))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
        assert!(body.starts_with(b"layer "));
        assert!(dir
            .path()
            .join(format!("sha256-{}", image.blobs[1].hex()))
            .exists());
    }
}
