//! Upload sessions as the metadata store keeps them, so that whichever server a
//! chunk reaches can continue the session: its repository, its algorithm, how
//! many bytes it holds, the hash state after them (see `oci::Hasher::state`),
//! and where the blob store keeps the bytes. A chunk is recorded with a
//! compare-and-set on the size it started from, so two servers can never both
//! record a chunk at the same offset.

use rusqlite::{params, OptionalExtension};

use super::meta::{SqliteMetaStore, StoreError};

/// One upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// The session id (32 hex digits).
    pub id: String,
    /// The repository it uploads into.
    pub repo: String,
    /// The algorithm its running hash uses (`sha256`, `sha512`).
    pub algorithm: String,
    /// Bytes received and recorded.
    pub size: u64,
    /// The running hash's state after those bytes.
    pub hash_state: Vec<u8>,
    /// Where the blob store keeps the bytes, in its own format (empty when
    /// the session id alone finds them, as for a staging file).
    pub staging: Vec<u8>,
    /// When the session was created or last advanced (milliseconds since the
    /// epoch, from the store's clock).
    pub updated_at: i64,
}

/// Where upload sessions are recorded; part of every [`super::MetadataStore`].
#[async_trait::async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a new session (its `updated_at` is set to now).
    async fn create_upload(&self, upload: &UploadRecord) -> Result<(), StoreError>;
    /// A session by id.
    async fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError>;
    /// Records a chunk: replaces the session's size, hash state and staging
    /// with `upload`'s (and dates it now) if it still holds `from_size` bytes.
    /// False when it does not (another server recorded a chunk first) or is gone.
    async fn advance_upload(
        &self,
        upload: &UploadRecord,
        from_size: u64,
    ) -> Result<bool, StoreError>;
    /// Forgets a session (finished, cancelled or expired); false if it was gone.
    async fn remove_upload(&self, id: &str) -> Result<bool, StoreError>;
    /// Forgets a session of `repo` that holds no bytes yet, as one whole body
    /// closes it; false when there is none such (gone, another repository's,
    /// or holding bytes), and then nothing changes.
    async fn take_empty_upload(&self, id: &str, repo: &str) -> Result<bool, StoreError>;
    /// Up to `limit` sessions last created or advanced before `before`
    /// (milliseconds since the epoch), oldest first.
    async fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError>;
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRecord> {
    Ok(UploadRecord {
        id: r.get(0)?,
        repo: r.get(1)?,
        algorithm: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        hash_state: r.get(4)?,
        staging: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// The blocking implementations; `super::embedded` answers the async traits
/// with them.
impl SqliteMetaStore {
    pub(crate) fn create_upload(&self, u: &UploadRecord) -> Result<(), StoreError> {
        let now = self.now_millis();
        self.write_transient(|tx| {
            tx.prepare_cached(
                "INSERT INTO uploads (id, repo, algorithm, size, hash_state, staging, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                u.id,
                u.repo,
                u.algorithm,
                u.size as i64,
                u.hash_state,
                u.staging,
                now
            ])?;
            Ok(())
        })
    }

    pub(crate) fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, repo, algorithm, size, hash_state, staging, updated_at \
                 FROM uploads WHERE id = ?1",
            )?
            .query_row(params![id], from_row)
            .optional()
        })
    }

    pub(crate) fn advance_upload(
        &self,
        u: &UploadRecord,
        from_size: u64,
    ) -> Result<bool, StoreError> {
        let now = self.now_millis();
        self.write_transient(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE uploads SET size = ?2, hash_state = ?3, staging = ?4, updated_at = ?5 \
                     WHERE id = ?1 AND size = ?6",
                )?
                .execute(params![
                    u.id,
                    u.size as i64,
                    u.hash_state,
                    u.staging,
                    now,
                    from_size as i64
                ])?;
            Ok(n == 1)
        })
    }

    pub(crate) fn remove_upload(&self, id: &str) -> Result<bool, StoreError> {
        self.write_transient(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM uploads WHERE id = ?1")?
                .execute(params![id])?
                == 1)
        })
    }

    pub(crate) fn take_empty_upload(&self, id: &str, repo: &str) -> Result<bool, StoreError> {
        self.write_transient(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM uploads WHERE id = ?1 AND repo = ?2 AND size = 0")?
                .execute(params![id, repo])?
                == 1)
        })
    }

    pub(crate) fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id FROM uploads WHERE updated_at < ?1 ORDER BY updated_at LIMIT ?2",
            )?
            .query_map(params![before, limit], |r| r.get(0))?
            .collect()
        })
    }
}
