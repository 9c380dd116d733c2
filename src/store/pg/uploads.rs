//! Upload sessions on PostgreSQL (`store::uploads`): single statements, each
//! atomic on its own; a chunk is recorded with a compare-and-set on the size.
//! They run on the store's connections with `synchronous_commit = off` (see
//! `PgMetaStore::uploads_pool`).

use tokio_postgres::Row;

use super::{read_conn, Cached, PgMetaStore};
use crate::store::meta::StoreError;
use crate::store::uploads::{UploadRecord, UploadStore};

fn from_row(r: &Row) -> UploadRecord {
    UploadRecord {
        id: r.get(0),
        repo: r.get(1),
        algorithm: r.get(2),
        size: r.get::<_, i64>(3) as u64,
        hash_state: r.get(4),
        staging: r.get(5),
        updated_at: r.get(6),
    }
}

/// Inserts `u` into `uploads`, dated `now`, from `rows` (the statement's
/// `VALUES` or `SELECT` part, over parameters `$1`–`$7` in column order);
/// returns the rows inserted.
async fn insert_record(
    c: &deadpool_postgres::ClientWrapper,
    rows: &str,
    u: &UploadRecord,
    now: i64,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO uploads (id, repo, algorithm, size, hash_state, staging, updated_at) {rows}"
    );
    let size = u.size as i64;
    c.cx(
        &sql,
        &[
            &u.id,
            &u.repo,
            &u.algorithm,
            &size,
            &u.hash_state,
            &u.staging,
            &now,
        ],
    )
    .await
}

#[async_trait::async_trait]
impl UploadStore for PgMetaStore {
    async fn create_upload(&self, u: &UploadRecord) -> Result<(), StoreError> {
        let now = self.clock.now_millis();
        read_conn!(self, uploads_pool, |c| {
            insert_record(c, "VALUES ($1, $2, $3, $4, $5, $6, $7)", u, now).await?;
            Ok(())
        })
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadRecord>, StoreError> {
        read_conn!(self, uploads_pool, |c| {
            Ok(c.cq_opt(
                "SELECT id, repo, algorithm, size, hash_state, staging, updated_at \
                 FROM uploads WHERE id = $1",
                &[&id],
            )
            .await?
            .as_ref()
            .map(from_row))
        })
    }

    async fn advance_upload(&self, u: &UploadRecord, from_size: u64) -> Result<bool, StoreError> {
        let now = self.clock.now_millis();
        let (size, from) = (u.size as i64, from_size as i64);
        read_conn!(self, uploads_pool, |c| {
            let n = c
                .cx(
                    "UPDATE uploads SET size = $2, hash_state = $3, staging = $4, updated_at = $5 \
                     WHERE id = $1 AND size = $6",
                    &[&u.id, &size, &u.hash_state, &u.staging, &now, &from],
                )
                .await?;
            Ok(n == 1)
        })
    }

    async fn remove_upload(&self, id: &str) -> Result<bool, StoreError> {
        let now = self.clock.now_millis();
        read_conn!(self, uploads_pool, |c| {
            Ok(c.cx(
                "WITH closed AS (INSERT INTO closed_uploads (id, closed_at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO NOTHING) \
                 DELETE FROM uploads WHERE id = $1",
                &[&id, &now],
            )
            .await?
                == 1)
        })
    }

    async fn take_empty_upload(&self, id: &str, repo: &str) -> Result<bool, StoreError> {
        let now = self.clock.now_millis();
        read_conn!(self, uploads_pool, |c| {
            // Closed unless recorded with bytes or for another repository; an
            // empty record goes with it. One statement, so one snapshot.
            let row = c
                .cq_opt(
                    "WITH closed AS ( \
                       INSERT INTO closed_uploads (id, closed_at) SELECT $1, $3 \
                       WHERE NOT EXISTS (SELECT 1 FROM uploads \
                                         WHERE id = $1 AND (repo <> $2 OR size <> 0)) \
                       ON CONFLICT (id) DO NOTHING RETURNING 1), \
                     taken AS (DELETE FROM uploads WHERE id = $1 AND EXISTS (SELECT 1 FROM closed)) \
                     SELECT 1 FROM closed",
                    &[&id, &repo, &now],
                )
                .await?;
            Ok(row.is_some())
        })
    }

    async fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        let limit = i64::from(limit);
        read_conn!(self, uploads_pool, |c| {
            Ok(c.cq(
                "SELECT id FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2",
                &[&before, &limit],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    async fn open_upload(&self, u: &UploadRecord) -> Result<bool, StoreError> {
        let now = self.clock.now_millis();
        let rows = "SELECT $1, $2, $3, $4, $5, $6, $7 \
                    WHERE NOT EXISTS (SELECT 1 FROM closed_uploads WHERE id = $1) \
                    ON CONFLICT (id) DO NOTHING";
        read_conn!(self, uploads_pool, |c| {
            Ok(insert_record(c, rows, u, now).await? == 1)
        })
    }

    async fn upload_closed(&self, id: &str) -> Result<bool, StoreError> {
        read_conn!(self, uploads_pool, |c| {
            Ok(
                c.cq_opt("SELECT 1 FROM closed_uploads WHERE id = $1", &[&id])
                    .await?
                    .is_some(),
            )
        })
    }

    async fn forget_closed_uploads(&self, before: i64) -> Result<u64, StoreError> {
        read_conn!(self, uploads_pool, |c| {
            c.cx(
                "DELETE FROM closed_uploads WHERE closed_at < $1",
                &[&before],
            )
            .await
        })
    }

    async fn upload_key(&self) -> Result<Vec<u8>, StoreError> {
        let fresh: [u8; 32] = rand::random();
        let fresh = fresh.to_vec();
        // On the connections that wait for the commit: the key must outlive a crash.
        read_conn!(self, |c| {
            c.cx(
                "INSERT INTO secrets (name, value) VALUES ('upload-ids', $1) \
                 ON CONFLICT (name) DO NOTHING",
                &[&fresh],
            )
            .await?;
            Ok(
                c.cq_opt("SELECT value FROM secrets WHERE name = 'upload-ids'", &[])
                    .await?
                    .map(|r| r.get(0))
                    .unwrap_or(fresh.clone()),
            )
        })
    }
}
