//! Small blobs kept as rows of the metadata database (`meta.db`, table
//! `small_blobs`) rather than as files.
//!
//! A blob file is durable only after two syncs of its own: its bytes, then
//! the directory entry its rename made. A row is durable after one sync of
//! the database's log, and that sync is shared by every write that arrives
//! together (group commit): the row and the link the registry records next are
//! made durable by the link's one sync. Their order holds across a crash,
//! because the log is replayed in order and only up to its last whole commit:
//! a link on disk always has its row. A burst of small pushes (config blobs,
//! small layers: most of a registry's blobs by count) then costs a few syncs
//! in all instead of three each. Blobs up to [`SMALL_BLOB_MAX`] bytes are kept
//! here; larger ones stay files, read with `pread` and sent in large chunks.
//!
//! Rows are content-addressed like files: a row is written once, whole, and
//! only after its digest was verified; a second write of the same digest
//! keeps the first. Removing one gives its pages back to the filesystem.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, OptionalExtension};

use super::sqlite_db::SqliteDb;
use super::{StoreError, Together};
use crate::oci::Digest;

/// Blobs of at most this many bytes are kept in the database.
pub(crate) const SMALL_BLOB_MAX: u64 = 64 << 10;

/// The small blobs of a metadata database (see the module documentation).
pub(crate) struct SmallBlobs {
    db: Arc<SqliteDb>,
}

impl std::fmt::Debug for SmallBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmallBlobs")
    }
}

/// The blob store's error for a database one: a full disk stays one (so it is
/// answered 507, like a full disk under a blob file).
fn io_error(e: StoreError) -> io::Error {
    let kind = if e.is_full() {
        io::ErrorKind::StorageFull
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, format!("small-blob database: {e}"))
}

impl SmallBlobs {
    /// The small blobs of the metadata database `db`.
    pub(crate) fn new(db: Arc<SqliteDb>) -> Self {
        SmallBlobs { db }
    }

    /// Keeps `bytes` as blob `digest` unless it is kept already: committed
    /// when this returns, and on disk with the next durable write of the
    /// database (the link that names it).
    pub(crate) fn put(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        let key = digest.to_string();
        self.db
            .write(
                |c| {
                    c.prepare_cached(
                        "INSERT INTO small_blobs (digest, bytes) VALUES (?1, ?2)
                         ON CONFLICT (digest) DO NOTHING",
                    )?
                    .execute(params![key, bytes])?;
                    Ok(())
                },
                false,
            )
            .map_err(io_error)
    }

    /// Runs `f` inside one durable write of the database: the writes it makes
    /// there (rows of this table, the metadata store's records) join it.
    pub(crate) fn write_together(&self, f: &mut dyn FnMut()) -> io::Result<()> {
        self.db
            .write(
                |_| {
                    f();
                    Ok(())
                },
                true,
            )
            .map_err(io_error)
    }

    /// [`SmallBlobs::write_together`] for async code: `f` runs on the
    /// database's writer thread, with the writes queued meanwhile.
    pub(crate) async fn write_together_queued(&self, f: Together) -> io::Result<()> {
        self.db
            .write_queued(
                move |_| {
                    f();
                    Ok(())
                },
                true,
            )
            .await
            .map_err(io_error)
    }

    /// The bytes of blob `digest`, if kept.
    pub(crate) fn get(&self, digest: &Digest) -> io::Result<Option<Bytes>> {
        let key = digest.to_string();
        self.db
            .read(|c| {
                c.prepare_cached("SELECT bytes FROM small_blobs WHERE digest = ?1")?
                    .query_row(params![key], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            })
            .map(|b| b.map(Bytes::from))
            .map_err(io_error)
    }

    /// The size of blob `digest`, if kept.
    pub(crate) fn size(&self, digest: &Digest) -> io::Result<Option<u64>> {
        let key = digest.to_string();
        self.db
            .read(|c| {
                c.prepare_cached("SELECT length(bytes) FROM small_blobs WHERE digest = ?1")?
                    .query_row(params![key], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map(|n| n.map(|n| n as u64))
            .map_err(io_error)
    }

    /// Removes blob `digest` and gives its pages back; false when it was not
    /// kept. Called while garbage collection forgets the blob, this joins that
    /// write and is committed with it.
    pub(crate) fn remove(&self, digest: &Digest) -> io::Result<bool> {
        let key = digest.to_string();
        self.db
            .write(
                |c| {
                    let gone = c
                        .prepare_cached("DELETE FROM small_blobs WHERE digest = ?1")?
                        .execute(params![key])?;
                    if gone > 0 {
                        // Moves the freed pages to the end and cuts them off
                        // at the commit; each row returned is one page.
                        let mut vacuum = c.prepare_cached("PRAGMA incremental_vacuum")?;
                        let mut steps = vacuum.query([])?;
                        while steps.next()?.is_some() {}
                    }
                    Ok(gone > 0)
                },
                true,
            )
            .map_err(io_error)
    }

    /// A cheap read that proves the database answers.
    pub(crate) fn ping(&self) -> io::Result<()> {
        self.db
            .read(|c| c.query_row("SELECT count(*) FROM small_blobs WHERE 0", [], |_| Ok(())))
            .map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Algorithm;
    use crate::store::SqliteMetaStore;

    #[test]
    fn kept_blobs_read_back_and_removal_gives_the_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let meta = SqliteMetaStore::open(&path).unwrap();
        let blobs = meta.small_blobs();
        let contents: Vec<Vec<u8>> = (0..200u32)
            .map(|i| i.to_le_bytes().repeat(1000 + i as usize))
            .collect();
        let digests: Vec<Digest> = contents
            .iter()
            .map(|c| Algorithm::Sha256.digest_of(c))
            .collect();
        for (d, c) in digests.iter().zip(&contents) {
            blobs.put(d, c).unwrap();
        }
        // A second write of a digest keeps the first (content-addressed).
        blobs.put(&digests[0], b"other bytes").unwrap();
        for (d, c) in digests.iter().zip(&contents) {
            assert_eq!(blobs.get(d).unwrap().as_deref(), Some(&c[..]));
            assert_eq!(blobs.size(d).unwrap(), Some(c.len() as u64));
        }
        let absent = Algorithm::Sha256.digest_of(b"absent");
        assert_eq!(blobs.get(&absent).unwrap(), None);
        assert_eq!(blobs.size(&absent).unwrap(), None);
        assert!(!blobs.remove(&absent).unwrap());

        let pages = |b: &SmallBlobs| -> i64 {
            b.db.read(|c| c.query_row("PRAGMA page_count", [], |r| r.get(0)))
                .unwrap()
        };
        let full = pages(&blobs);
        for d in &digests[..190] {
            assert!(blobs.remove(d).unwrap());
        }
        assert_eq!(blobs.get(&digests[0]).unwrap(), None);
        assert_eq!(
            blobs.get(&digests[195]).unwrap().as_deref(),
            Some(&contents[195][..])
        );
        let left = pages(&blobs);
        assert!(left * 5 < full, "{left} pages left of {full}");
        // And from another connection on the file, as another process sees it.
        drop((blobs, meta));
        let again = SqliteMetaStore::open(&path).unwrap().small_blobs();
        assert_eq!(
            again.get(&digests[199]).unwrap().as_deref(),
            Some(&contents[199][..])
        );
        assert_eq!(again.get(&digests[5]).unwrap(), None);
    }
}
