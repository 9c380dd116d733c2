//! Upload sessions as the metadata store keeps them, so that whichever server a
//! chunk reaches can continue the session: its repository, its algorithm, how
//! many bytes it holds, the hash state after them (see `oci::Hasher::state`),
//! and where the blob store keeps the bytes. A chunk is recorded with a
//! compare-and-set on the size it started from, so two servers can never both
//! record a chunk at the same offset.
//!
//! A session is opened without a record: its id is signed with a key the store
//! keeps for every server ([`UploadStore::upload_key`]), and its record is made
//! by the first chunk ([`UploadStore::open_upload`]). So that such an id cannot
//! open a session again once it is finished or cancelled, closing a session
//! keeps its id among the closed ones until it would have expired anyway.

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
    /// Forgets a session (finished, cancelled or expired) and keeps its id
    /// among the closed ones; false if it had no record.
    async fn remove_upload(&self, id: &str) -> Result<bool, StoreError>;
    /// Closes a session of `repo` that holds no bytes, as one whole body
    /// closes it: one recorded with none, or one never recorded and not
    /// closed. False when there is none such (closed, another repository's,
    /// or holding bytes), and then nothing changes.
    async fn take_empty_upload(&self, id: &str, repo: &str) -> Result<bool, StoreError>;
    /// Up to `limit` sessions last created or advanced before `before`
    /// (milliseconds since the epoch), oldest first.
    async fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError>;
    /// Records a session opened without a record (its id signed), as its
    /// first chunk arrives; `updated_at` is set to now. False, and nothing
    /// changes, when the id is recorded already or was closed.
    async fn open_upload(&self, upload: &UploadRecord) -> Result<bool, StoreError>;
    /// Whether session `id` was closed (and not forgotten since).
    async fn upload_closed(&self, id: &str) -> Result<bool, StoreError>;
    /// Forgets the ids of sessions closed before `before` (milliseconds since
    /// the epoch); returns how many.
    async fn forget_closed_uploads(&self, before: i64) -> Result<u64, StoreError>;
    /// The key that signs session ids: random, made once, the same for every
    /// server over this store.
    async fn upload_key(&self) -> Result<Vec<u8>, StoreError>;
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
            insert_record(tx, "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", u, now)?;
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
        let now = self.now_millis();
        self.write_transient(|tx| {
            close(tx, id, now)?;
            Ok(tx
                .prepare_cached("DELETE FROM uploads WHERE id = ?1")?
                .execute(params![id])?
                == 1)
        })
    }

    pub(crate) fn take_empty_upload(&self, id: &str, repo: &str) -> Result<bool, StoreError> {
        let now = self.now_millis();
        self.write_transient(|tx| {
            let recorded: Option<(String, i64)> = tx
                .prepare_cached("SELECT repo, size FROM uploads WHERE id = ?1")?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            match recorded {
                Some((r, 0)) if r == repo => {
                    tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")?
                        .execute(params![id])?;
                    close(tx, id, now)?;
                    Ok(true)
                }
                Some(_) => Ok(false),
                None => close(tx, id, now),
            }
        })
    }

    pub(crate) fn open_upload(&self, u: &UploadRecord) -> Result<bool, StoreError> {
        let now = self.now_millis();
        self.write_transient(|tx| {
            let rows = "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 \
                        WHERE NOT EXISTS (SELECT 1 FROM closed_uploads WHERE id = ?1) \
                        ON CONFLICT (id) DO NOTHING";
            Ok(insert_record(tx, rows, u, now)? == 1)
        })
    }

    pub(crate) fn upload_closed(&self, id: &str) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM closed_uploads WHERE id = ?1")?
                .exists(params![id])
        })
    }

    pub(crate) fn forget_closed_uploads(&self, before: i64) -> Result<u64, StoreError> {
        self.write_transient(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM closed_uploads WHERE closed_at < ?1")?
                .execute(params![before])? as u64)
        })
    }

    pub(crate) fn upload_key(&self) -> Result<Vec<u8>, StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO secrets (name, value) VALUES ('upload-ids', randomblob(32)) \
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute([])?;
            Ok(tx
                .prepare_cached("SELECT value FROM secrets WHERE name = 'upload-ids'")?
                .query_row([], |r| r.get(0))?)
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

/// Inserts `u` into `uploads`, dated `now`, from `rows` (the statement's
/// `VALUES` or `SELECT` part, over parameters `?1`–`?7` in column order);
/// returns the rows inserted.
fn insert_record(
    tx: &rusqlite::Connection,
    rows: &str,
    u: &UploadRecord,
    now: i64,
) -> Result<usize, StoreError> {
    let sql = format!(
        "INSERT INTO uploads (id, repo, algorithm, size, hash_state, staging, updated_at) {rows}"
    );
    Ok(tx.prepare_cached(&sql)?.execute(params![
        u.id,
        u.repo,
        u.algorithm,
        u.size as i64,
        u.hash_state,
        u.staging,
        now
    ])?)
}

/// Keeps `id` among the closed sessions; false when it was already.
fn close(tx: &rusqlite::Connection, id: &str, now: i64) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO closed_uploads (id, closed_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![id, now])?
        == 1)
}
