//! Metadata in SQLite: repositories, blob links, manifests, tags and the subject index.
//!
//! One writer connection behind a mutex (SQLite allows one writer at a time; making
//! that explicit avoids `SQLITE_BUSY` retries) and a small pool of read-only
//! connections, all in WAL mode so reads never wait for the writer. Every method is
//! blocking: callers run them off the async runtime. Lists use keyset pagination
//! (`WHERE key > ? ORDER BY key LIMIT n+1`) on an index, so a page costs the same
//! whatever its position.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::read_cache::ReadCache;
use super::schema::MIGRATIONS;
#[cfg(test)]
use super::sqlite_db::READERS;
use super::sqlite_db::{beside, SqliteDb};
use super::{Clock, SystemClock};

/// Storage-level failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database's schema is not the one this build expects.
    #[error("{0}")]
    Schema(String),
    /// A manifest names blobs or manifests the repository does not hold.
    #[error("manifest references unknown content: {0:?}")]
    MissingReferences(Vec<String>),
    /// A blob's bytes were collected while it was being linked; upload it again.
    #[error("blob {0} was garbage-collected while it was being stored; upload it again")]
    Vanished(String),
    /// PostgreSQL (or the connection to it) reported an error.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The database could not grow: its disk is full (a write that shared a
    /// commit with the one that hit the limit fails with it).
    #[error("the database's disk is full: {0}")]
    Full(String),
    /// The database cannot be reached or did not answer in time (refused,
    /// reset or timed-out connections, a server shutting down): nothing is
    /// wrong with the request, and it may succeed once the database is back.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether this says the database's disk is full (SQLite's `SQLITE_FULL`).
    pub(crate) fn is_full(&self) -> bool {
        match self {
            StoreError::Full(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}

/// One page of a keyset-paginated list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// True when more items follow the last one.
    pub more: bool,
}

/// A page of repository names.
pub type CatalogPage = Page<String>;

/// What a manifest GET needs.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    /// The manifest's digest.
    pub digest: String,
    /// The Content-Type it was pushed with.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// A referrer as the referrers API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerRecord {
    /// Referrer digest.
    pub digest: String,
    /// Referrer media type.
    pub media_type: String,
    /// Referrer size in bytes.
    pub size: i64,
    /// Derived artifact type, if any.
    pub artifact_type: Option<String>,
    /// Annotations as a JSON object string, if any.
    pub annotations: Option<String>,
}

/// A manifest about to be stored, with what it requires.
#[derive(Debug, Clone)]
pub struct NewManifest<'a> {
    /// Repository name (validated by the caller).
    pub repo: &'a str,
    /// Digest of `bytes`.
    pub digest: &'a str,
    /// Content-Type to serve it with.
    pub media_type: &'a str,
    /// Derived artifact type.
    pub artifact_type: Option<&'a str>,
    /// Subject digest, when the manifest refers to another.
    pub subject: Option<&'a str>,
    /// Annotations as a JSON object string.
    pub annotations: Option<String>,
    /// The exact bytes.
    pub bytes: &'a [u8],
    /// Tags to point at it.
    pub tags: &'a [String],
    /// Blobs that must be linked in the repository.
    pub required_blobs: Vec<String>,
    /// Everything the manifest references (config, layers, index children; not its
    /// subject), required or not: what keeps blobs alive for the garbage collector.
    pub references: Vec<String>,
    /// Manifests that must exist in the repository (index children).
    pub required_manifests: Vec<String>,
}

/// [`MetadataStore`](super::MetadataStore) on SQLite: a file in production, or memory for tests.
/// Clones share the connections.
#[derive(Clone)]
pub struct SqliteMetaStore {
    db: Arc<SqliteDb>,
    clock: Arc<dyn Clock>,
    /// Hot answers kept while the database is unchanged (a file database only).
    cache: Option<Arc<ReadCache>>,
}

impl std::fmt::Debug for SqliteMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteMetaStore")
    }
}

impl SqliteMetaStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(SqliteMetaStore {
            db: Arc::new(SqliteDb::open(path, migrate)?),
            clock: Arc::new(SystemClock),
            cache: ReadCache::open(&beside(path, "-shm")).map(Arc::new),
        })
    }

    /// Writes the SQLite log out to its full size and keeps it there (see
    /// `RegistryConfig::preallocate_log`); false when there was no room, and
    /// the log then grows as it did.
    pub(crate) fn preallocate_log(&self) -> Result<bool, StoreError> {
        self.db.preallocate_log()
    }

    /// A private in-memory database (tests, throwaway registries): one connection
    /// serves reads and writes, since in-memory databases are per connection.
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(SqliteMetaStore {
            db: Arc::new(SqliteDb::in_memory(migrate)?),
            clock: Arc::new(SystemClock),
            cache: None,
        })
    }

    /// The database, for the async side's queued writes (`super::embedded`).
    pub(super) fn db(&self) -> &SqliteDb {
        &self.db
    }

    /// The small blobs kept in this database, for a blob store beside it.
    pub(crate) fn small_blobs(&self) -> super::small_blobs::SmallBlobs {
        super::small_blobs::SmallBlobs::new(self.db.clone())
    }

    /// Now, by the store's clock.
    pub(crate) fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Records times from `clock` instead of the system clock (tests move it by
    /// hand rather than sleep).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs a read on a pooled read-only connection (the writer's, in memory).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.db.read(f)
    }

    /// Runs `f` as one atomic write, committed (durably, perhaps together
    /// with concurrent writes) before this returns.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.write(f, true)
    }

    /// [`SqliteMetaStore::write`] for state a power cut may lose (upload
    /// sessions' progress, whose bytes are not synced either: a client asks
    /// where its upload stands and goes on from there): committed before this
    /// returns, but not waiting for the log's sync.
    pub(crate) fn write_transient<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.write(f, false)
    }
}

/// The blocking implementations; `super::embedded` answers the async traits
/// with them.
impl SqliteMetaStore {
    /// Records a verified blob and links it into `repo`, dated now.
    pub(crate) fn link_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        present: &dyn Fn() -> bool,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            // The collector removes bytes inside its own write transaction, so
            // under this one they cannot go between the check and the commit.
            if !present() {
                return Err(StoreError::Vanished(digest.to_string()));
            }
            let repo_id = ensure_repo(tx, repo)?;
            let now = self.clock.now_millis();
            // The next number is the last one's successor: the writer is alone,
            // and the number's index answers `max` at its end.
            tx.prepare_cached(
                "INSERT OR IGNORE INTO blobs (digest, id, size, created_at) \
                 VALUES (?1, (SELECT COALESCE(MAX(id), 0) + 1 FROM blobs), ?2, ?3)",
            )?
            .execute(params![digest, size as i64, now])?;
            tx.prepare_cached(
                "INSERT INTO blob_links (repo_id, blob_id, linked_at) \
                 SELECT ?1, id, ?3 FROM blobs WHERE digest = ?2 \
                 ON CONFLICT (repo_id, blob_id) DO UPDATE SET linked_at = excluded.linked_at",
            )?
            .execute(params![repo_id, digest, now])?;
            Ok(())
        })
    }

    /// Size of a blob if `repo` may serve it.
    pub(crate) fn blob_in_repo(&self, repo: &str, digest: &str) -> Result<Option<u64>, StoreError> {
        let seen = match self.cache.as_deref().map(|c| c.link(repo, digest)) {
            Some(Ok(kept)) => return Ok(kept),
            Some(Err(seen)) => seen,
            None => None,
        };
        let answer = self.read(|c| {
            c.prepare_cached(
                "SELECT b.size FROM blobs b JOIN blob_links l ON l.blob_id = b.id \
                 JOIN repos r ON r.id = l.repo_id WHERE r.name = ?1 AND b.digest = ?2",
            )?
            .query_row(params![repo, digest], |row| row.get::<_, i64>(0))
            .optional()
            .map(|o| o.map(|s| s as u64))
        })?;
        if let (Some(cache), Some(seen)) = (self.cache.as_deref(), seen) {
            cache.keep_link(seen, repo, digest, answer);
        }
        Ok(answer)
    }

    /// Size of a blob if any repository holds it.
    pub(crate) fn blob_anywhere(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT b.size FROM blobs b WHERE b.digest = ?1 \
                 AND EXISTS (SELECT 1 FROM blob_links l WHERE l.blob_id = b.id)",
            )?
            .query_row(params![digest], |row| row.get::<_, i64>(0))
            .optional()
            .map(|o| o.map(|s| s as u64))
        })
    }

    /// Unlinks a blob from a repository; false when it was not linked.
    pub(crate) fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM blob_links WHERE blob_id = (SELECT id FROM blobs WHERE digest = ?2) \
                     AND repo_id = (SELECT id FROM repos WHERE name = ?1)",
                )?
                .execute(params![repo, digest])?;
            Ok(n > 0)
        })
    }

    pub(crate) fn prune_links(&self, cutoff: i64, limit: u32) -> Result<u64, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM blob_links WHERE (repo_id, blob_id) IN ( \
                       SELECT l.repo_id, l.blob_id FROM blob_links l JOIN blobs b ON b.id = l.blob_id \
                       WHERE l.linked_at <= ?1 AND NOT EXISTS ( \
                         SELECT 1 FROM manifest_refs r WHERE r.ref = b.digest AND r.repo_id = l.repo_id) \
                       LIMIT ?2)",
                )?
                .execute(params![cutoff, limit as i64])?;
            Ok(n as u64)
        })
    }

    pub(crate) fn unreferenced_blobs(&self, limit: u32) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT b.digest, b.size FROM blobs b \
                 WHERE NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.blob_id = b.id) \
                 AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.ref = b.digest) LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect()
        })
    }

    pub(crate) fn collect_blob(
        &self,
        digest: &str,
        remove: &mut dyn FnMut() -> std::io::Result<()>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM blobs AS b WHERE b.digest = ?1 \
                     AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.blob_id = b.id) \
                     AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.ref = ?1)",
                )?
                .execute(params![digest])?;
            if n == 0 {
                return Ok(false);
            }
            // Inside the transaction: a concurrent link waits for it, then finds
            // the bytes gone and fails rather than linking them.
            remove().map_err(|e| {
                StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?;
            Ok(true)
        })
    }

    pub(crate) fn collect_unrecorded(
        &self,
        digest: &str,
        remove: &mut dyn FnMut() -> std::io::Result<()>,
    ) -> Result<bool, StoreError> {
        let recorded = |c: &rusqlite::Connection| -> rusqlite::Result<bool> {
            c.prepare_cached("SELECT 1 FROM blobs WHERE digest = ?1")?
                .exists(params![digest])
        };
        // Most blobs are recorded: a read says so without taking the writer.
        if self.read(recorded)? {
            return Ok(false);
        }
        self.write(|tx| {
            if recorded(tx)? {
                return Ok(false);
            }
            remove().map_err(|e| {
                StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?;
            Ok(true)
        })
    }

    pub(crate) fn tags_by_age(&self, repo: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare_cached(
                "SELECT t.name, t.pushed_at FROM tags t JOIN repos r ON r.id = t.repo_id \
                 WHERE r.name = ?1 ORDER BY t.pushed_at DESC, t.name",
            )?;
            let rows = q.query_map(params![repo], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    pub(crate) fn delete_tag_pushed_at(
        &self,
        repo: &str,
        tag: &str,
        pushed_at: i64,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM tags WHERE name = ?2 AND pushed_at = ?3 \
                     AND repo_id = (SELECT id FROM repos WHERE name = ?1)",
                )?
                .execute(params![repo, tag, pushed_at])?;
            Ok(n > 0)
        })
    }

    pub(crate) fn expendable_untagged(
        &self,
        repo: &str,
        cutoff: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT m.digest FROM manifests m JOIN repos r ON r.id = m.repo_id \
                 WHERE r.name = ?1 AND {EXPENDABLE} ORDER BY m.pushed_at, m.digest"
            ))?;
            let rows = q.query_map(params![repo, cutoff], |r| r.get(0))?;
            rows.collect()
        })
    }

    pub(crate) fn delete_expendable(
        &self,
        repo: &str,
        digest: &str,
        cutoff: i64,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(&format!(
                    "DELETE FROM manifests AS m WHERE m.digest = ?3 \
                     AND m.repo_id = (SELECT id FROM repos WHERE name = ?1) AND {EXPENDABLE}"
                ))?
                .execute(params![repo, cutoff, digest])?;
            if n > 0 {
                forget_unused_content(tx, digest)?;
            }
            Ok(n > 0)
        })
    }

    pub(crate) fn repository_usage(
        &self,
        repo: &str,
    ) -> Result<super::RepositoryUsage, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "WITH me AS (SELECT id FROM repos WHERE name = ?1), \
                 held AS (SELECT b.digest FROM blob_links l JOIN blobs b ON b.id = l.blob_id \
                          WHERE l.repo_id = (SELECT id FROM me) \
                          UNION SELECT ref FROM manifest_refs WHERE repo_id = (SELECT id FROM me)) \
                 SELECT COALESCE(SUM(b.size), 0), \
                        COALESCE(SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM blob_links o \
                              WHERE o.blob_id = b.id AND o.repo_id != (SELECT id FROM me)) \
                          AND NOT EXISTS (SELECT 1 FROM manifest_refs x \
                              WHERE x.ref = b.digest AND x.repo_id != (SELECT id FROM me)) \
                        THEN b.size ELSE 0 END), 0) \
                 FROM blobs b WHERE b.digest IN (SELECT digest FROM held)",
            )?
            .query_row(params![repo], |r| {
                Ok(super::RepositoryUsage {
                    bytes: r.get::<_, i64>(0)? as u64,
                    unique_bytes: r.get::<_, i64>(1)? as u64,
                })
            })
        })
    }

    pub(crate) fn namespace_usage(
        &self,
        namespace: &str,
    ) -> Result<super::NamespaceUsage, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "WITH under AS (SELECT id FROM repos \
                     WHERE ?1 = '' OR substr(name, 1, length(?1) + 1) = ?1 || '/'), \
                 held AS (SELECT b.digest FROM blob_links l JOIN blobs b ON b.id = l.blob_id \
                          WHERE l.repo_id IN (SELECT id FROM under) \
                          UNION SELECT ref FROM manifest_refs WHERE repo_id IN (SELECT id FROM under)) \
                 SELECT (SELECT COUNT(*) FROM under u WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = u.id) \
                            OR EXISTS (SELECT 1 FROM blob_links l WHERE l.repo_id = u.id)), \
                        COUNT(*), COALESCE(SUM(b.size), 0) \
                 FROM blobs b WHERE b.digest IN (SELECT digest FROM held)",
            )?
            .query_row(params![namespace], |r| {
                Ok(super::NamespaceUsage {
                    repositories: r.get::<_, i64>(0)? as u64,
                    blobs: r.get::<_, i64>(1)? as u64,
                    bytes: r.get::<_, i64>(2)? as u64,
                })
            })
        })
    }

    pub(crate) fn prune_repositories(&self) -> Result<u64, StoreError> {
        self.write(|tx| {
            let empty = "SELECT id FROM repos r WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id) \
                         AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.repo_id = r.id)";
            tx.execute(
                &format!("DELETE FROM repo_namespaces WHERE repo_id IN ({empty})"),
                [],
            )?;
            let n = tx.execute(&format!("DELETE FROM repos WHERE id IN ({empty})"), [])?;
            Ok(n as u64)
        })
    }

    pub(crate) fn garbage_preview(&self, cutoff: i64) -> Result<super::GarbagePreview, StoreError> {
        self.read(|c| {
            let links: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM blob_links l JOIN blobs b ON b.id = l.blob_id \
                     WHERE l.linked_at <= ?1 AND NOT EXISTS ( \
                       SELECT 1 FROM manifest_refs r WHERE r.ref = b.digest AND r.repo_id = l.repo_id)",
                )?
                .query_row(params![cutoff], |r| r.get(0))?;
            // Blobs referenced by no manifest whose every link is old: once those
            // links go, nothing holds them.
            let (blobs, bytes): (i64, i64) = c
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(b.size), 0) FROM blobs b \
                     WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.ref = b.digest) \
                     AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.blob_id = b.id AND l.linked_at > ?1)",
                )?
                .query_row(params![cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(super::GarbagePreview {
                links: links as u64,
                blobs: blobs as u64,
                bytes: bytes as u64,
            })
        })
    }

    pub(crate) fn compact(&self) -> Result<(), StoreError> {
        self.db.compact()
    }

    /// Whether the repository has ever been written to.
    pub(crate) fn totals(&self) -> Result<Option<super::StoreTotals>, StoreError> {
        self.read(|c| {
            let (blobs, blob_bytes) = c
                .prepare_cached("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs")?
                .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            let manifests = c
                .prepare_cached("SELECT COUNT(*) FROM manifests")?
                .query_row([], |r| r.get::<_, i64>(0))?;
            Ok(Some(super::StoreTotals {
                blobs: blobs as u64,
                blob_bytes: blob_bytes as u64,
                manifests: manifests as u64,
            }))
        })
    }

    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        let version: i64 = self.read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
        let current = super::schema::MIGRATIONS.len() as i64;
        if version == current {
            Ok(())
        } else {
            Err(StoreError::Schema(format!(
                "the database schema is at version {version}, this build needs {current}"
            )))
        }
    }

    pub(crate) fn repo_exists(&self, repo: &str) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM repos WHERE name = ?1")?
                .exists(params![repo])
        })
    }

    /// Stores a manifest and its tags in one transaction, after checking that every
    /// required blob and child manifest is present in the repository.
    pub(crate) fn put_manifest(&self, m: &NewManifest<'_>) -> Result<(), StoreError> {
        self.write(|tx| {
            let repo_id = ensure_repo(tx, m.repo)?;
            let mut missing = Vec::new();
            {
                let mut blob_q =
                    tx.prepare_cached(
                        "SELECT 1 FROM blob_links l JOIN blobs b ON b.id = l.blob_id \
                         WHERE l.repo_id = ?1 AND b.digest = ?2",
                    )?;
                for d in &m.required_blobs {
                    if !blob_q.exists(params![repo_id, d])? {
                        missing.push(d.clone());
                    }
                }
                let mut man_q =
                    tx.prepare_cached("SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2")?;
                for d in &m.required_manifests {
                    if !man_q.exists(params![repo_id, d])? {
                        missing.push(d.clone());
                    }
                }
            }
            if !missing.is_empty() {
                return Err(StoreError::MissingReferences(missing));
            }
            let now = self.clock.now_millis();
            tx.prepare_cached("INSERT OR IGNORE INTO manifest_content (digest, bytes) VALUES (?1, ?2)")?
                .execute(params![m.digest, m.bytes])?;
            tx.prepare_cached(
                "INSERT INTO manifests (repo_id, digest, media_type, artifact_type, size, subject, annotations, pushed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (repo_id, digest) DO UPDATE SET media_type = excluded.media_type, pushed_at = excluded.pushed_at",
            )?
            .execute(params![
                repo_id,
                m.digest,
                m.media_type,
                m.artifact_type,
                m.bytes.len() as i64,
                m.subject,
                m.annotations,
                now
            ])?;
            let mut tag_q = tx.prepare_cached(
                "INSERT INTO tags (repo_id, name, digest, pushed_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, pushed_at = excluded.pushed_at",
            )?;
            for t in m.tags {
                tag_q.execute(params![repo_id, t, m.digest, now])?;
            }
            let mut ref_q = tx.prepare_cached(
                "INSERT OR IGNORE INTO manifest_refs (repo_id, digest, ref) VALUES (?1, ?2, ?3)",
            )?;
            for r in &m.references {
                ref_q.execute(params![repo_id, m.digest, r])?;
            }
            // listing extension: annotations and namespace push times for `store::listing`.
            super::listing::index_for_listing(tx, repo_id, m.digest, m.annotations.as_deref())?;
            Ok(())
        })
    }

    /// A manifest by tag or digest (as a string; tags never contain `:`).
    pub(crate) fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        let seen = match self.cache.as_deref().map(|c| c.manifest(repo, reference)) {
            Some(Ok(kept)) => return Ok(kept),
            Some(Err(seen)) => seen,
            None => None,
        };
        let by_digest = reference.contains(':');
        let answer = self.read(|c| {
            let sql = if by_digest {
                "SELECT m.digest, m.media_type, mc.bytes FROM manifests m JOIN repos r ON r.id = m.repo_id \
                 JOIN manifest_content mc ON mc.digest = m.digest WHERE r.name = ?1 AND m.digest = ?2"
            } else {
                "SELECT m.digest, m.media_type, mc.bytes FROM tags t JOIN repos r ON r.id = t.repo_id \
                 JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest \
                 JOIN manifest_content mc ON mc.digest = m.digest WHERE r.name = ?1 AND t.name = ?2"
            };
            c.prepare_cached(sql)?
                .query_row(params![repo, reference], |row| {
                    Ok(ManifestRecord {
                        digest: row.get(0)?,
                        media_type: row.get(1)?,
                        bytes: row.get(2)?,
                    })
                })
                .optional()
        })?;
        if let (Some(cache), Some(seen)) = (self.cache.as_deref(), seen) {
            cache.keep_manifest(seen, repo, reference, &answer);
        }
        Ok(answer)
    }

    /// Deletes a manifest, its tags (cascade) and its place in the subject index.
    pub(crate) fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM manifests WHERE digest = ?2 AND repo_id = (SELECT id FROM repos WHERE name = ?1)",
                )?
                .execute(params![repo, digest])?;
            if n > 0 {
                forget_unused_content(tx, digest)?;
            }
            Ok(n > 0)
        })
    }

    /// Deletes one tag; the manifest stays.
    pub(crate) fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM tags WHERE name = ?2 AND repo_id = (SELECT id FROM repos WHERE name = ?1)",
                )?
                .execute(params![repo, tag])?;
            Ok(n > 0)
        })
    }

    /// Tags of a repository after `last`, at most `n`; `None` if the repository is unknown.
    pub(crate) fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        n: u32,
    ) -> Result<Option<Page<String>>, StoreError> {
        self.read(|c| {
            let Some(repo_id) = c
                .prepare_cached("SELECT id FROM repos WHERE name = ?1")?
                .query_row(params![repo], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT name FROM tags WHERE repo_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![repo_id, last.unwrap_or(""), n as i64 + 1], |r| {
                r.get(0)
            })?;
            Ok(Some(page(
                rows.collect::<rusqlite::Result<Vec<String>>>()?,
                n,
            )))
        })
    }

    /// Referrers of `subject` in `repo`, after `last` (a referrer digest), at most `n`,
    /// optionally only those of one artifact type.
    pub(crate) fn referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: u32,
    ) -> Result<Page<ReferrerRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM manifests m \
                 WHERE m.repo_id = (SELECT id FROM repos WHERE name = ?1) AND m.subject = ?2 AND m.digest > ?3 \
                 AND (?4 IS NULL OR m.artifact_type = ?4) ORDER BY m.digest LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![repo, subject, last.unwrap_or(""), artifact_type, n as i64 + 1],
                |r| {
                    Ok(ReferrerRecord {
                        digest: r.get(0)?,
                        media_type: r.get(1)?,
                        size: r.get(2)?,
                        artifact_type: r.get(3)?,
                        annotations: r.get(4)?,
                    })
                },
            )?;
            Ok(page(rows.collect::<rusqlite::Result<Vec<_>>>()?, n))
        })
    }

    /// Repositories holding at least one manifest, after `last`, at most `n`.
    pub(crate) fn catalog(&self, last: Option<&str>, n: u32) -> Result<CatalogPage, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.name FROM repos r WHERE r.name > ?1 \
                 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id) ORDER BY r.name LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![last.unwrap_or(""), n as i64 + 1], |r| r.get(0))?;
            Ok(page(rows.collect::<rusqlite::Result<Vec<String>>>()?, n))
        })
    }
}

pub(crate) fn page<T>(mut items: Vec<T>, n: u32) -> Page<T> {
    let more = items.len() > n as usize;
    items.truncate(n as usize);
    Page { items, more }
}

/// What retention may delete of manifest `m` (parameter 2: the cutoff): untagged,
/// old enough, no manifest of its repository references it (an index's children
/// stay), and its subject, if any, is not in the repository (a live subject keeps
/// its referrers).
const EXPENDABLE: &str = "m.pushed_at <= ?2 \
     AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest) \
     AND NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo_id = m.repo_id AND x.ref = m.digest) \
     AND (m.subject IS NULL OR NOT EXISTS \
          (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject))";

/// Drops a manifest's bytes once no repository holds the manifest.
fn forget_unused_content(tx: &Connection, digest: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "DELETE FROM manifest_content WHERE digest = ?1 \
         AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)",
    )?
    .execute(params![digest])?;
    Ok(())
}

pub(crate) fn ensure_repo(tx: &Connection, name: &str) -> Result<i64, StoreError> {
    tx.prepare_cached("INSERT OR IGNORE INTO repos (name) VALUES (?1)")?
        .execute(params![name])?;
    Ok(tx
        .prepare_cached("SELECT id FROM repos WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))?)
}

impl SqliteMetaStore {
    /// The schema version of the database at `path` and the version this
    /// build needs, when the database exists and is older: what a command
    /// that runs beside a server (which may be of the older release) must not
    /// convert. Opens the file read-only and writes nothing.
    pub(crate) fn schema_behind(path: &Path) -> Result<Option<(i64, i64)>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let current = MIGRATIONS.len() as i64;
        Ok((version < current).then_some((version, current)))
    }
}

/// Brings the schema up to date, one step per transaction. A step may rebuild
/// a table others reference (SQLite's way to change a table's kind), so
/// references are checked after each step rather than during it: a step that
/// leaves more broken references than it found is rolled back.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = MIGRATIONS.len() as i64;
    if version > current {
        // A later release converted it: this build's statements would fail
        // on tables it does not know, one request at a time.
        return Err(StoreError::Schema(format!(
            "the database schema is at version {version}, newer than this build's {current}"
        )));
    }
    if version == current {
        return Ok(());
    }
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let stepped = migrate_steps(conn, MIGRATIONS, version as usize);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    stepped
}

fn migrate_steps(conn: &mut Connection, steps: &[&str], from: usize) -> Result<(), StoreError> {
    let broken = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<i64> {
        tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
    };
    for (i, step) in steps.iter().enumerate().skip(from) {
        let tx = conn.transaction()?;
        let before = broken(&tx)?;
        tx.execute_batch(step)?;
        let after = broken(&tx)?;
        if after > before {
            return Err(StoreError::Schema(format!(
                "schema step {} would break {} references; the database is left at step {i}",
                i + 1,
                after - before
            )));
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_read_pool_gets_its_connection_back_when_a_read_panics() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteMetaStore::open(&dir.path().join("m.db")).unwrap());
        for _ in 0..=READERS {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = store.read(|_| -> rusqlite::Result<()> { panic!("a read that fails") });
            }));
            assert!(panicked.is_err());
        }
        // Had a connection been lost per panic, this read would wait forever.
        let (tx, rx) = std::sync::mpsc::channel();
        let s = store.clone();
        std::thread::spawn(move || {
            let _ = tx.send(s.repo_exists("anything"));
        });
        let answer = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a read after panicked reads still gets a connection");
        assert!(!answer.unwrap());
        assert_eq!(store.db.idle_readers(), (READERS, 0));
    }

    use super::*;

    fn store() -> (tempfile::TempDir, SqliteMetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn more_readers_than_connections_all_get_one_in_turn() {
        let (_dir, store) = store();
        let (tx, rx) = std::sync::mpsc::channel();
        let threads = READERS * 4;
        for _ in 0..threads {
            let (s, tx) = (store.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut ok = true;
                for _ in 0..200 {
                    ok &= s
                        .read(|c| {
                            std::thread::yield_now();
                            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                        })
                        .is_ok_and(|v| v == 1);
                }
                let _ = tx.send(ok);
            });
        }
        for _ in 0..threads {
            let ok = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a waiting read is woken when a connection comes back");
            assert!(ok);
        }
        assert_eq!(store.db.idle_readers(), (READERS, 0));
    }

    fn manifest<'a>(
        repo: &'a str,
        digest: &'a str,
        tags: &'a [String],
        blobs: Vec<String>,
    ) -> NewManifest<'a> {
        NewManifest {
            repo,
            digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            artifact_type: None,
            subject: None,
            annotations: None,
            bytes: b"{}",
            tags,
            references: blobs.clone(),
            required_blobs: blobs,
            required_manifests: vec![],
        }
    }

    /// Two stores over one file stand for two processes: each has its own
    /// connections and its own cache of answers.
    #[test]
    fn kept_answers_never_outlive_a_commit_from_this_or_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let a = SqliteMetaStore::open(&path).unwrap();
        let b = SqliteMetaStore::open(&path).unwrap();
        assert!(
            a.cache.is_some() && b.cache.is_some(),
            "file databases keep answers"
        );
        let tag = |s: &SqliteMetaStore| s.get_manifest("r", "t").unwrap().map(|m| m.digest);
        let link = |s: &SqliteMetaStore| s.blob_in_repo("r", "sha256:b").unwrap();
        // Missing, twice (the second from the cache).
        assert_eq!((tag(&a), tag(&a)), (None, None));
        assert_eq!((link(&a), link(&a)), (None, None));
        // The other process links and tags: seen at once.
        b.link_blob("r", "sha256:b", 3, &|| true).unwrap();
        assert_eq!(link(&a), Some(3));
        b.put_manifest(&manifest(
            "r",
            "sha256:m1",
            &["t".into()],
            vec!["sha256:b".into()],
        ))
        .unwrap();
        assert_eq!(tag(&a).as_deref(), Some("sha256:m1"));
        assert_eq!(tag(&a).as_deref(), Some("sha256:m1"));
        // The tag moves, here and there.
        a.put_manifest(&manifest(
            "r",
            "sha256:m2",
            &["t".into()],
            vec!["sha256:b".into()],
        ))
        .unwrap();
        assert_eq!(tag(&a).as_deref(), Some("sha256:m2"));
        assert_eq!(tag(&b).as_deref(), Some("sha256:m2"));
        b.put_manifest(&manifest(
            "r",
            "sha256:m3",
            &["t".into()],
            vec!["sha256:b".into()],
        ))
        .unwrap();
        assert_eq!(tag(&a).as_deref(), Some("sha256:m3"));
        // Deletions, too.
        assert!(b.delete_tag("r", "t").unwrap());
        assert_eq!(tag(&a), None);
        assert!(a
            .get_manifest("r", "sha256:m3")
            .unwrap()
            .is_some_and(|m| m.bytes == b"{}"));
        assert!(b.delete_manifest("r", "sha256:m3").unwrap());
        assert!(a.get_manifest("r", "sha256:m3").unwrap().is_none());
        assert!(b.unlink_blob("r", "sha256:b").unwrap());
        assert_eq!(link(&a), None);
    }

    #[test]
    fn missing_blobs_reject_the_manifest_and_store_nothing() {
        let (_d, s) = store();
        let err = s
            .put_manifest(&manifest(
                "r",
                "sha256:m",
                &["t".into()],
                vec!["sha256:b".into()],
            ))
            .unwrap_err();
        assert!(matches!(err, StoreError::MissingReferences(v) if v == ["sha256:b"]));
        assert!(s.get_manifest("r", "t").unwrap().is_none());
        s.link_blob("r", "sha256:b", 3, &|| true).unwrap();
        s.put_manifest(&manifest(
            "r",
            "sha256:m",
            &["t".into()],
            vec!["sha256:b".into()],
        ))
        .unwrap();
        assert_eq!(
            s.get_manifest("r", "t").unwrap().unwrap().digest,
            "sha256:m"
        );
    }

    #[test]
    fn deleting_a_manifest_removes_its_tags() {
        let (_d, s) = store();
        s.put_manifest(&manifest(
            "r",
            "sha256:m",
            &["a".into(), "b".into()],
            vec![],
        ))
        .unwrap();
        assert_eq!(
            s.list_tags("r", None, 10).unwrap().unwrap().items,
            ["a", "b"]
        );
        assert!(s.delete_manifest("r", "sha256:m").unwrap());
        assert!(s
            .list_tags("r", None, 10)
            .unwrap()
            .unwrap()
            .items
            .is_empty());
        assert!(s.catalog(None, 10).unwrap().items.is_empty());
    }

    #[test]
    fn tag_pages_are_keyset_ordered() {
        let (_d, s) = store();
        let tags: Vec<String> = ["b", "A", "a", "c", "B"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        s.put_manifest(&manifest("r", "sha256:m", &tags, vec![]))
            .unwrap();
        let p1 = s.list_tags("r", None, 2).unwrap().unwrap();
        assert_eq!(
            (p1.items.clone(), p1.more),
            (vec!["A".to_string(), "B".into()], true)
        );
        let p2 = s.list_tags("r", Some("B"), 2).unwrap().unwrap();
        assert_eq!(p2.items, ["a", "b"]);
        let p3 = s.list_tags("r", Some("b"), 2).unwrap().unwrap();
        assert_eq!((p3.items.clone(), p3.more), (vec!["c".to_string()], false));
    }

    /// Manifests stored by version 7 (their bytes in one b-tree keyed by
    /// digest) read back byte for byte after the move to a rowid table, and
    /// references are enforced again afterwards.
    #[test]
    fn upgrading_keeps_the_manifests_and_their_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let big = "x".repeat(6000);
        {
            let conn = database_at(&path, 7);
            conn.execute_batch(&format!(
                "INSERT INTO repos (id, name) VALUES (1, 'app');
                 INSERT INTO manifest_content (digest, bytes) VALUES ('sha256:small', CAST('{{}}' AS BLOB)),
                     ('sha256:big', CAST('{big}' AS BLOB));
                 INSERT INTO manifests (repo_id, digest, media_type, size, pushed_at) VALUES
                     (1, 'sha256:small', 'x', 2, 0), (1, 'sha256:big', 'x', 6000, 0);"
            ))
            .unwrap();
        }
        let s = SqliteMetaStore::open(&path).unwrap();
        let (table, version): (String, i64) = s
            .read(|c| {
                Ok((
                    c.query_row(
                        "SELECT sql FROM sqlite_master WHERE name = 'manifest_content'",
                        [],
                        |r| r.get(0),
                    )?,
                    c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert!(!table.contains("WITHOUT ROWID"), "{table}");
        assert_eq!(version as usize, MIGRATIONS.len());
        let bytes = |d: &str| {
            s.get_manifest("app", d)
                .unwrap()
                .map(|m| String::from_utf8(m.bytes).unwrap())
        };
        assert_eq!(bytes("sha256:small").as_deref(), Some("{}"));
        assert_eq!(bytes("sha256:big"), Some(big));
        let dangling = s.db.write(
            |c| {
                c.execute(
                    "INSERT INTO manifests (repo_id, digest, media_type, size, pushed_at)
                     VALUES (1, 'sha256:none', 'x', 1, 0)",
                    [],
                )?;
                Ok(())
            },
            true,
        );
        assert!(dangling.is_err(), "a manifest without bytes was accepted");
    }

    /// A database file at `path` brought to schema version `version`, as an
    /// earlier release left it.
    fn database_at(path: &std::path::Path, version: usize) -> Connection {
        let mut conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        migrate_steps(&mut conn, &MIGRATIONS[..version], 0).unwrap();
        conn
    }

    /// A schema step that would leave a manifest without its bytes is rolled
    /// back whole, and the version stays where it was.
    #[test]
    fn a_step_that_breaks_references_is_rolled_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO repos (id, name) VALUES (1, 'app');
             INSERT INTO manifest_content (digest, bytes) VALUES ('sha256:m', x'7b7d');
             INSERT INTO manifests (repo_id, digest, media_type, size, pushed_at)
                 VALUES (1, 'sha256:m', 'x', 2, 0);",
        )
        .unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        let mut steps = MIGRATIONS.to_vec();
        steps.push("CREATE TABLE marker (x INTEGER); DELETE FROM manifest_content;");
        let e = migrate_steps(&mut conn, &steps, MIGRATIONS.len()).unwrap_err();
        assert!(e.to_string().contains("would break 1 references"), "{e}");
        let (version, kept, marker): (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version),
                        (SELECT count(*) FROM manifest_content),
                        (SELECT count(*) FROM sqlite_master WHERE name = 'marker')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((version as usize, kept, marker), (MIGRATIONS.len(), 1, 0));
    }

    /// Small blobs kept by version 6 (one b-tree keyed by digest) are there
    /// byte for byte after the move to a rowid table, and new ones join them.
    #[test]
    fn upgrading_keeps_the_small_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let (a, b, c) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
            format!("sha256:{}", "c".repeat(64)),
        );
        {
            let conn = database_at(&path, 6);
            conn.execute_batch(&format!(
                "INSERT INTO small_blobs (digest, bytes) VALUES ('{a}', x'0102'), ('{b}', zeroblob(5000));"
            ))
            .unwrap();
        }
        let s = SqliteMetaStore::open(&path).unwrap();
        let table: String = s
            .read(|c| {
                c.query_row(
                    "SELECT sql FROM sqlite_master WHERE name = 'small_blobs'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert!(!table.contains("WITHOUT ROWID"), "{table}");
        let small = s.small_blobs();
        let get = |d: &str| small.get(&d.parse().unwrap()).unwrap().map(|b| b.to_vec());
        assert_eq!(get(&a), Some(vec![1, 2]));
        assert_eq!(get(&b), Some(vec![0; 5000]));
        small.put(&c.parse().unwrap(), b"new").unwrap();
        assert_eq!(get(&c), Some(b"new".to_vec()));
        assert_eq!(small.size(&b.parse().unwrap()).unwrap(), Some(5000));
    }

    /// A database written by the previous version learns what its manifests
    /// reference, so the collector keeps their blobs: nothing stored before the
    /// upgrade becomes garbage because of it.
    #[test]
    fn upgrading_records_what_existing_manifests_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let (config, layer, child, loose) = ("sha256:c", "sha256:l", "sha256:m", "sha256:x");
        {
            let conn = database_at(&path, 3);
            let image = format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{config}","size":1}},"layers":[{{"digest":"{layer}","size":1}},"not an object"]}}"#
            );
            let index =
                format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{child}","size":1}}]}}"#);
            conn.execute_batch(&format!(
                "INSERT INTO repos (id, name) VALUES (1, 'app');
                 INSERT INTO blobs (digest, size, created_at) VALUES ('{config}', 1, 0), ('{layer}', 1, 0), ('{loose}', 1, 0);
                 INSERT INTO repo_blobs (repo_id, digest) VALUES (1, '{config}'), (1, '{layer}'), (1, '{loose}');
                 INSERT INTO manifest_content (digest, bytes) VALUES ('sha256:i', CAST('{image}' AS BLOB)),
                     ('sha256:n', CAST('{index}' AS BLOB)), ('sha256:bad', CAST('not json' AS BLOB));
                 INSERT INTO manifests (repo_id, digest, media_type, size, pushed_at) VALUES
                     (1, 'sha256:i', 'x', 1, 0), (1, 'sha256:n', 'x', 1, 0), (1, 'sha256:bad', 'x', 1, 0);"
            ))
            .unwrap();
        }
        let s = SqliteMetaStore::open(&path).unwrap();
        let refs: Vec<(String, String)> = s
            .read(|c| {
                let mut q =
                    c.prepare("SELECT digest, ref FROM manifest_refs ORDER BY digest, ref")?;
                let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .unwrap();
        let want: Vec<(String, String)> = [
            ("sha256:i", config),
            ("sha256:i", layer),
            ("sha256:n", child),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(refs, want);
        // Past every grace period, only the link nothing references goes.
        assert_eq!(s.prune_links(i64::MAX, 100).unwrap(), 1);
        assert_eq!(s.blob_in_repo("app", config).unwrap(), Some(1));
        assert_eq!(s.blob_in_repo("app", layer).unwrap(), Some(1));
        assert_eq!(s.blob_in_repo("app", loose).unwrap(), None);
    }

    /// Links made by version 9 (keyed by digest) are kept by the move to
    /// numbered blobs: every repository serves what it served, a blob shared
    /// by two stays shared, and the blobs pushed next get the next numbers.
    #[test]
    fn upgrading_numbers_the_blobs_and_keeps_every_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let (shared, own, loose) = ("sha256:s", "sha256:o", "sha256:l");
        {
            let conn = database_at(&path, 9);
            conn.execute_batch(&format!(
                "INSERT INTO repos (id, name) VALUES (1, 'a'), (2, 'b');
                 INSERT INTO blobs (digest, size, created_at) VALUES
                     ('{shared}', 10, 5), ('{own}', 20, 3), ('{loose}', 30, 4);
                 INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES
                     (1, '{shared}', 7), (2, '{shared}', 8), (2, '{own}', 9);"
            ))
            .unwrap();
        }
        let s = SqliteMetaStore::open(&path).unwrap();
        assert_eq!(s.blob_in_repo("a", shared).unwrap(), Some(10));
        assert_eq!(s.blob_in_repo("b", shared).unwrap(), Some(10));
        assert_eq!(s.blob_in_repo("b", own).unwrap(), Some(20));
        assert_eq!(s.blob_in_repo("a", own).unwrap(), None);
        assert_eq!(s.blob_anywhere(loose).unwrap(), None);
        assert_eq!(s.unreferenced_blobs(10).unwrap(), [(loose.to_string(), 30)]);
        assert!(s.unlink_blob("a", shared).unwrap());
        assert_eq!(s.blob_in_repo("b", shared).unwrap(), Some(10));
        assert_eq!(s.blob_in_repo("a", shared).unwrap(), None);

        s.link_blob("a", "sha256:new", 1, &|| true).unwrap();
        s.link_blob("b", "sha256:newer", 2, &|| true).unwrap();
        let numbers: Vec<(String, i64)> = s
            .read(|c| {
                let mut q = c.prepare("SELECT digest, id FROM blobs ORDER BY id")?;
                let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .unwrap();
        // Numbered by age at the upgrade, then in the order pushed.
        let want: Vec<(String, i64)> = [own, loose, shared, "sha256:new", "sha256:newer"]
            .iter()
            .zip(1..)
            .map(|(d, n)| (d.to_string(), n))
            .collect();
        assert_eq!(numbers, want);
        assert_eq!(s.blob_in_repo("b", "sha256:newer").unwrap(), Some(2));
        let dangling = s.db.write(
            |c| {
                c.execute(
                    "INSERT INTO blob_links (repo_id, blob_id, linked_at) VALUES (1, 99, 0)",
                    [],
                )?;
                Ok(())
            },
            true,
        );
        assert!(dangling.is_err(), "a link to no blob was accepted");
    }

    /// A database a later release converted is refused at open, naming both
    /// versions, rather than served with statements for tables it lacks; one
    /// of an earlier release is reported as behind without being written.
    #[test]
    fn a_newer_schema_is_refused_and_an_older_one_is_only_reported() {
        let dir = tempfile::tempdir().unwrap();
        let newer = dir.path().join("newer.db");
        let current = MIGRATIONS.len() as i64;
        database_at(&newer, MIGRATIONS.len())
            .pragma_update(None, "user_version", current + 1)
            .unwrap();
        let e = SqliteMetaStore::open(&newer).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "version {}, newer than this build's {current}",
                current + 1
            )),
            "{e}"
        );

        let older = dir.path().join("older.db");
        drop(database_at(&older, 9));
        let before = std::fs::read(&older).unwrap();
        assert_eq!(
            SqliteMetaStore::schema_behind(&older).unwrap(),
            Some((9, current))
        );
        assert_eq!(
            std::fs::read(&older).unwrap(),
            before,
            "the file was written"
        );
        assert_eq!(SqliteMetaStore::schema_behind(&newer).unwrap(), None);
        assert_eq!(
            SqliteMetaStore::schema_behind(&dir.path().join("absent.db")).unwrap(),
            None
        );
    }

    #[test]
    fn reopening_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        {
            let s = SqliteMetaStore::open(&path).unwrap();
            s.link_blob("r", "sha256:b", 1, &|| true).unwrap();
        }
        let s = SqliteMetaStore::open(&path).unwrap();
        assert_eq!(s.blob_in_repo("r", "sha256:b").unwrap(), Some(1));
        assert_eq!(s.blob_in_repo("other", "sha256:b").unwrap(), None);
        assert_eq!(s.blob_anywhere("sha256:b").unwrap(), Some(1));
    }
}
