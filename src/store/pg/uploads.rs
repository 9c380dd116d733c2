//! Upload sessions on PostgreSQL (`store::uploads`): single statements, each
//! atomic on its own; a chunk is recorded with a compare-and-set on the size.
//! They run on the store's connections with `synchronous_commit = off` (see
//! `PgMetaStore::uploads_pool`).

use tokio_postgres::Row;

use super::{pool_error, read_conn, Cached, PgMetaStore};
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

#[async_trait::async_trait]
impl UploadStore for PgMetaStore {
    async fn create_upload(&self, u: &UploadRecord) -> Result<(), StoreError> {
        let now = self.clock.now_millis();
        let size = u.size as i64;
        read_conn!(self, uploads_pool, |c| {
            c.cx(
                "INSERT INTO uploads (id, repo, algorithm, size, hash_state, staging, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            .await?;
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
        read_conn!(self, uploads_pool, |c| {
            Ok(c.cx("DELETE FROM uploads WHERE id = $1", &[&id]).await? == 1)
        })
    }

    async fn take_empty_upload(&self, id: &str, repo: &str) -> Result<bool, StoreError> {
        read_conn!(self, uploads_pool, |c| {
            Ok(c.cx(
                "DELETE FROM uploads WHERE id = $1 AND repo = $2 AND size = 0",
                &[&id, &repo],
            )
            .await?
                == 1)
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
}
