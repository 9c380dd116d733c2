//! The storage contract (`marina::store::contract`) against every shipped backend,
//! and proof that it catches a backend that breaks a rule.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use marina::oci::Digest;
use marina::store::{
    contract, BlobReader, BlobStore, FsBlobStore, MemoryBlobStore, MetadataStore, ResumedStaging,
    SqliteMetaStore, Staging,
};

#[tokio::test]
async fn filesystem_blob_store_keeps_the_contract() {
    let dirs = std::sync::Mutex::new(Vec::new());
    contract::check_blob_store(&|| {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        dirs.lock().unwrap().push(dir);
        Arc::new(store)
    })
    .await;
}

#[tokio::test]
async fn memory_blob_store_keeps_the_contract() {
    contract::check_blob_store(&|| Arc::new(MemoryBlobStore::new())).await;
}

/// On a multi-threaded runtime, where writes move off the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_metadata_store_on_disk_keeps_the_contract() {
    let dirs = std::sync::Mutex::new(Vec::new());
    contract::check_metadata_store(&|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
        dirs.lock().unwrap().push(dir);
        Arc::new(store) as Arc<dyn MetadataStore>
    })
    .await;
}

/// On a single-threaded runtime, where everything runs in place.
#[tokio::test]
async fn sqlite_metadata_store_in_memory_keeps_the_contract() {
    contract::check_metadata_store(&|| Arc::new(SqliteMetaStore::in_memory().unwrap())).await;
}

/// A blob store whose staging areas ignore truncation: uploads could not roll back.
struct NoTruncate(MemoryBlobStore);
struct NoTruncateStaging(Box<dyn Staging>);

impl Staging for NoTruncateStaging {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.append(bytes)
    }
    fn truncate(&mut self, _size: u64) -> io::Result<()> {
        Ok(())
    }
    fn read_back(&self) -> io::Result<Box<dyn io::Read + Send>> {
        self.0.read_back()
    }
    fn publish(self: Box<Self>, digest: &Digest) -> io::Result<()> {
        self.0.publish(digest)
    }
}

#[async_trait::async_trait]
impl BlobStore for NoTruncate {
    fn create_staging(&self, id: &str, note: &[u8]) -> io::Result<Box<dyn Staging>> {
        Ok(Box::new(NoTruncateStaging(
            self.0.create_staging(id, note)?,
        )))
    }
    fn reopen_staging(&self, id: &str) -> io::Result<Option<ResumedStaging>> {
        self.0.reopen_staging(id)
    }
    fn discard_staging(&self, id: &str) {
        self.0.discard_staging(id)
    }
    fn stale_staging(&self, before: SystemTime) -> Vec<String> {
        self.0.stale_staging(before)
    }
    async fn size_of(&self, digest: &Digest) -> io::Result<Option<u64>> {
        self.0.size_of(digest).await
    }
    async fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobReader> {
        self.0.open(digest, offset, len).await
    }
    async fn remove(&self, digest: &Digest) -> io::Result<()> {
        self.0.remove(digest).await
    }
}

#[tokio::test]
async fn the_contract_catches_a_backend_that_cannot_roll_back() {
    let result = tokio::spawn(async {
        contract::check_blob_store(&|| Arc::new(NoTruncate(MemoryBlobStore::new()))).await;
    })
    .await;
    let panic = result.expect_err("a store that ignores truncate must fail the contract");
    let message = panic.into_panic();
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        text.contains("staging: size counts appended bytes after truncation"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_metadata_store_keeps_the_contract() {
    let Some(url) = crate::support::postgres_url() else {
        return;
    };
    contract::check_metadata_store(&|| {
        Arc::new(
            marina::store::PgMetaStore::open_in_schema(&url, &crate::support::fresh_schema())
                .expect("PostgreSQL answers"),
        ) as Arc<dyn MetadataStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_store_keeps_the_contract() {
    let Some(url) = crate::support::s3_url() else {
        return;
    };
    let dirs = std::sync::Mutex::new(Vec::new());
    contract::check_blob_store(&|| {
        let dir = tempfile::tempdir().unwrap();
        // A prefix per store: each check starts empty.
        let (base, query) = url.split_once('?').unwrap();
        let loc = marina::store::S3Location::parse(&format!(
            "{base}/{}?{query}",
            crate::support::fresh_schema()
        ))
        .unwrap();
        let store =
            marina::store::S3BlobStore::open(loc, None, dir.path()).expect("the bucket answers");
        dirs.lock().unwrap().push(dir);
        Arc::new(store) as Arc<dyn BlobStore>
    })
    .await;
}
