//! Moving a single-node registry (SQLite and files under one data directory)
//! into other stores: `marina migrate`.
//!
//! Blobs go first, each re-hashed on the way and published only when its bytes
//! match its digest, so the copied metadata never names missing or corrupt
//! bytes. Then the metadata is copied row by row into PostgreSQL with its
//! times (push times, link times) kept. Every step skips what the target
//! already holds, so an interrupted migration is finished by running it again.

use std::io::{self, Read};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::fs::FsBlobStore;
use super::meta::StoreError;
use super::BlobStore;
use crate::oci::Digest;

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Blobs copied now.
    pub blobs_copied: u64,
    /// Their bytes.
    pub bytes_copied: u64,
    /// Blobs the target already held (an earlier, interrupted run).
    pub blobs_present: u64,
    /// Blobs whose file is missing or does not match its digest (not copied).
    pub blobs_broken: Vec<String>,
    /// Rows copied per metadata table, in copy order (none without a
    /// PostgreSQL target).
    pub rows: Vec<(&'static str, u64)>,
}

/// The source's read-only SQLite database.
fn source(data_dir: &Path) -> Result<Connection, StoreError> {
    let path = data_dir.join("meta.db");
    if !path.is_file() {
        return Err(StoreError::Schema(format!(
            "{} holds no registry (no meta.db)",
            data_dir.display()
        )));
    }
    // Open (and so bring up to date) once through the store, then read only.
    drop(super::SqliteMetaStore::open(&path)?);
    Ok(Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

/// Copies every blob the source records into `target`, verifying each digest;
/// `progress` sees each blob's digest as it is done.
pub fn copy_blobs(
    data_dir: &Path,
    target: &dyn BlobStore,
    mut progress: impl FnMut(&str),
    report: &mut MigrationReport,
) -> Result<(), StoreError> {
    let db = source(data_dir)?;
    let meta = super::SqliteMetaStore::open(&data_dir.join("meta.db"))?;
    let files = FsBlobStore::with_small_blobs(data_dir, &meta)
        .map_err(|e| StoreError::Schema(e.to_string()))?;
    let mut stmt = db.prepare("SELECT digest, size FROM blobs ORDER BY digest")?;
    let rows: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (text, size) in rows {
        let Ok(digest) = text.parse::<Digest>() else {
            report.blobs_broken.push(text);
            continue;
        };
        let io = |e: io::Error| StoreError::Schema(format!("blob {digest}: {e}"));
        if futures_executor::block_on(target.size_of(&digest)).map_err(io)? == Some(size as u64) {
            report.blobs_present += 1;
        } else if copy_one(&files, target, &digest).map_err(io)? {
            report.blobs_copied += 1;
            report.bytes_copied += size as u64;
        } else {
            report.blobs_broken.push(text.clone());
        }
        progress(&text);
    }
    Ok(())
}

/// Streams one blob (a file or a small blob) into `target`, publishing it
/// only if its bytes hash to `digest`; false when it is missing or corrupt.
fn copy_one(files: &FsBlobStore, target: &dyn BlobStore, digest: &Digest) -> io::Result<bool> {
    let Some(mut file) = files.read_whole(digest)? else {
        return Ok(false);
    };
    let id = format!("migrate-{}", digest.hex());
    target.discard_staging(&id);
    let mut staging = target.create_staging(&id, b"")?;
    let mut hasher = digest.algorithm().hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        staging.append(&buf[..n])?;
    }
    if &hasher.finish() != digest {
        target.discard_staging(&id);
        return Ok(false);
    }
    staging.publish(digest)?;
    Ok(true)
}

/// Copies the source's metadata into `target`, keeping every time.
pub fn copy_metadata(
    data_dir: &Path,
    target: &super::PgMetaStore,
    report: &mut MigrationReport,
) -> Result<(), StoreError> {
    let db = source(data_dir)?;
    report.rows = target.import_sqlite(&db)?;
    Ok(())
}
