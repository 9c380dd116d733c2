//! Copying a SQLite registry's metadata into PostgreSQL (`marina migrate`): the
//! same tables, row for row, with repository ids renumbered and every time
//! kept. Rows the target already holds are skipped, so a second run finishes
//! an interrupted one.

use std::collections::HashMap;

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::listing::indexed_value;
use super::{pool_error, Cached, PgMetaStore};
use crate::store::meta::StoreError;

/// Rows inserted per transaction.
const BATCH: usize = 500;

/// One table: what to read from SQLite, how to insert into PostgreSQL, and
/// which columns need translating.
struct Table {
    name: &'static str,
    select: &'static str,
    insert: &'static str,
    /// Column holding a repository id.
    repo_id: Option<usize>,
    /// Columns holding an annotation key and value (stored as the listing
    /// index keeps them).
    annotation: Option<(usize, usize)>,
}

const TABLES: &[Table] = &[
    Table {
        name: "blobs",
        select: "SELECT digest, size, created_at FROM blobs",
        insert: "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        repo_id: None,
        annotation: None,
    },
    Table {
        name: "repo_blobs",
        select: "SELECT l.repo_id, b.digest, l.linked_at FROM blob_links l JOIN blobs b ON b.id = l.blob_id",
        insert: "INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        repo_id: Some(0),
        annotation: None,
    },
    Table {
        name: "manifest_content",
        select: "SELECT digest, bytes FROM manifest_content",
        insert: "INSERT INTO manifest_content (digest, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        repo_id: None,
        annotation: None,
    },
    Table {
        name: "manifests",
        select: "SELECT repo_id, digest, media_type, artifact_type, size, subject, annotations, pushed_at FROM manifests",
        insert: "INSERT INTO manifests (repo_id, digest, media_type, artifact_type, size, subject, annotations, pushed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        repo_id: Some(0),
        annotation: None,
    },
    Table {
        name: "tags",
        select: "SELECT repo_id, name, digest, pushed_at FROM tags",
        insert: "INSERT INTO tags (repo_id, name, digest, pushed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        repo_id: Some(0),
        annotation: None,
    },
    Table {
        name: "manifest_refs",
        select: "SELECT repo_id, digest, ref FROM manifest_refs",
        insert: "INSERT INTO manifest_refs (repo_id, digest, ref) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        repo_id: Some(0),
        annotation: None,
    },
    Table {
        name: "manifest_annotations",
        select: "SELECT repo_id, digest, key, value, pushed_at FROM manifest_annotations",
        insert: "INSERT INTO manifest_annotations (repo_id, digest, key, value, pushed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        repo_id: Some(0),
        annotation: Some((2, 3)),
    },
    Table {
        name: "repo_namespaces",
        select: "SELECT repo_id, namespace, name, pushed_at FROM repo_namespaces",
        insert: "INSERT INTO repo_namespaces (repo_id, namespace, name, pushed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        repo_id: Some(0),
        annotation: None,
    },
];

type Param = Box<dyn ToSql + Sync + Send>;

fn param(v: Value) -> Param {
    match v {
        Value::Integer(i) => Box::new(i),
        Value::Text(t) => Box::new(t),
        Value::Real(f) => Box::new(f),
        Value::Blob(b) => Box::new(b),
        Value::Null => Box::new(None::<String>),
    }
}

impl PgMetaStore {
    /// Copies every row of the SQLite database `source` (at the current schema
    /// version) into this store; returns the rows inserted per table.
    pub fn import_sqlite(
        &self,
        source: &rusqlite::Connection,
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut counts = vec![("repos", self.import_repos(source)?)];
        let ids = self.repo_ids(source)?;
        for t in TABLES {
            let mut stmt = source.prepare(t.select)?;
            let width = stmt.column_count();
            let mut rows = stmt.query([])?;
            let mut batch: Vec<Vec<Param>> = Vec::new();
            let mut inserted = 0;
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    let v: Value = row.get(i)?;
                    let text_col = t.annotation.is_some_and(|(k, v)| i == k || i == v);
                    let v = match (v, t.repo_id == Some(i), text_col) {
                        (Value::Integer(id), true, _) => Value::Integer(ids[&id]),
                        (Value::Text(s), _, true) => Value::Text(indexed_value(&s).into_owned()),
                        (v, _, _) => v,
                    };
                    values.push(param(v));
                }
                batch.push(values);
                if batch.len() == BATCH {
                    inserted += self.insert_batch(t.insert, std::mem::take(&mut batch))?;
                }
            }
            inserted += self.insert_batch(t.insert, batch)?;
            counts.push((t.name, inserted));
        }
        Ok(counts)
    }

    fn import_repos(&self, source: &rusqlite::Connection) -> Result<u64, StoreError> {
        let names: Vec<String> = source
            .prepare("SELECT name FROM repos ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let batch = names
            .into_iter()
            .map(|n| vec![Box::new(n) as Param])
            .collect();
        self.insert_batch(
            "INSERT INTO repos (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            batch,
        )
    }

    /// SQLite repository id -> PostgreSQL repository id, by name.
    fn repo_ids(&self, source: &rusqlite::Connection) -> Result<HashMap<i64, i64>, StoreError> {
        let local: Vec<(i64, String)> = source
            .prepare("SELECT id, name FROM repos")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let remote: HashMap<String, i64> = self.run(async {
            let client = self.pool.get().await.map_err(pool_error)?;
            let rows = client.cq("SELECT name, id FROM repos", &[]).await?;
            Ok::<_, StoreError>(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        Ok(local
            .into_iter()
            .filter_map(|(id, name)| remote.get(&name).map(|r| (id, *r)))
            .collect())
    }

    /// Inserts `rows` with `sql` in one transaction; returns how many were new.
    fn insert_batch(&self, sql: &str, rows: Vec<Vec<Param>>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.run(async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await?;
            let mut n = 0;
            for row in &rows {
                let refs: Vec<&(dyn ToSql + Sync)> = row
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                n += tx.cx(sql, &refs).await?;
            }
            tx.commit().await?;
            Ok(n)
        })
    }
}
