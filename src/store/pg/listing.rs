//! The listing extension on PostgreSQL: the queries `store::listing` builds for
//! SQLite (one keyset range per page, on the same indexes), with PostgreSQL's
//! numbered parameters.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::{read_conn, Cached, PgMetaStore};
use crate::store::listing::{
    manifests_query, namespaces_of, repositories_query, tags_query, AnnotationFilter, ListingStore,
    ManifestFilter, ManifestSummary, PageRequest, RepositoryRecord, TagRecord,
};
use crate::store::meta::{page, Page, StoreError};

/// Longest annotation key or value kept as it is in `manifest_annotations`:
/// both are index keys, and a PostgreSQL index entry must fit in a page.
const INDEXED_VALUE_BYTES: usize = 1024;

/// What `manifest_annotations` holds for a key or value: itself, or for a
/// longer one its SHA-256, so that a filter still finds it (filters go through
/// the same function).
pub(super) fn indexed_value(v: &str) -> std::borrow::Cow<'_, str> {
    if v.len() <= INDEXED_VALUE_BYTES {
        return v.into();
    }
    format!(
        "marina-long-value:{}",
        crate::oci::Algorithm::Sha256.digest_of(v.as_bytes())
    )
    .into()
}

/// Whether `filter` names a string with a NUL, which nothing stored holds.
fn matches_nothing(filter: &ManifestFilter) -> bool {
    filter
        .artifact_type
        .as_deref()
        .is_some_and(|t| t.contains('\0'))
        || filter.annotations.iter().any(|a| match a {
            AnnotationFilter::Present(k) => k.contains('\0'),
            AnnotationFilter::Equals(k, v) => k.contains('\0') || v.contains('\0'),
        })
}

/// `req` with its position as a cursor PostgreSQL can take.
fn as_cursor(req: &PageRequest) -> PageRequest {
    let mut r = req.clone();
    if let Some(p) = &mut r.after {
        p.key = super::cursor(&p.key).to_string();
    }
    r
}

/// `filter` with its annotation values as [`indexed_value`] stores them.
fn as_indexed(filter: &ManifestFilter) -> ManifestFilter {
    let mut f = filter.clone();
    for a in &mut f.annotations {
        match a {
            AnnotationFilter::Present(k) => *k = indexed_value(k).into_owned(),
            AnnotationFilter::Equals(k, v) => {
                *k = indexed_value(k).into_owned();
                *v = indexed_value(v).into_owned();
            }
        }
    }
    f
}

/// Keeps the listing tables in step with a manifest push (see
/// `store::listing::index_for_listing`).
pub(super) async fn index_for_listing(
    tx: &deadpool_postgres::Transaction<'_>,
    repo_id: i64,
    name: &str,
    digest: &str,
    annotations: Option<&str>,
    pushed_at: i64,
) -> Result<(), tokio_postgres::Error> {
    let annotations: BTreeMap<String, String> = annotations
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    if !annotations.is_empty() {
        let keys: Vec<String> = annotations
            .keys()
            .map(|k| indexed_value(k).into_owned())
            .collect();
        let values: Vec<String> = annotations
            .values()
            .map(|v| indexed_value(v).into_owned())
            .collect();
        tx.cx(
            "INSERT INTO manifest_annotations (repo_id, digest, key, value, pushed_at) \
             SELECT $1, $2, k, v, $5 FROM unnest($3::TEXT[], $4::TEXT[]) AS a(k, v) \
             ON CONFLICT (repo_id, digest, key) DO UPDATE SET pushed_at = excluded.pushed_at",
            &[&repo_id, &digest, &keys, &values, &pushed_at],
        )
        .await?;
    }
    let namespaces = namespaces_of(name);
    tx.cx(
        "INSERT INTO repo_namespaces (namespace, name, repo_id, pushed_at) \
         SELECT ns, $2, $3, $4 FROM unnest($1::TEXT[]) AS ns \
         ON CONFLICT (namespace, name) DO UPDATE SET pushed_at = excluded.pushed_at",
        &[&namespaces, &name, &repo_id, &pushed_at],
    )
    .await?;
    Ok(())
}

/// SQLite's `?` placeholders as `$1`, `$2`, … (the built queries hold no `?`
/// elsewhere), and the arguments as PostgreSQL parameters.
pub(crate) fn numbered(sql: &str, args: Vec<Value>) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    let params = args
        .into_iter()
        .map(|v| -> Box<dyn ToSql + Sync + Send> {
            match v {
                Value::Integer(i) => Box::new(i),
                Value::Text(t) => Box::new(t),
                Value::Real(f) => Box::new(f),
                Value::Blob(b) => Box::new(b),
                Value::Null => Box::new(None::<String>),
            }
        })
        .collect();
    (out, params)
}

async fn rows(
    c: &deadpool_postgres::Client,
    sql: &str,
    args: Vec<Value>,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let (sql, params) = numbered(sql, args);
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    c.cq(&sql, &refs).await
}

async fn repo_id(
    c: &deadpool_postgres::Client,
    repo: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    Ok(c.cq_opt("SELECT id FROM repos WHERE name = $1", &[&repo])
        .await?
        .map(|r| r.get(0)))
}

#[async_trait::async_trait]
impl ListingStore for PgMetaStore {
    async fn list_repositories(
        &self,
        namespace: &str,
        req: &PageRequest,
    ) -> Result<Page<RepositoryRecord>, StoreError> {
        let (sql, args) = repositories_query(namespace, &as_cursor(req));
        read_conn!(self, |c| {
            let items = rows(c, &sql, args)
                .await?
                .iter()
                .map(|r| RepositoryRecord {
                    name: r.get(0),
                    pushed_at: r.get(1),
                })
                .collect();
            Ok(page(items, req.n))
        })
    }

    async fn list_tag_records(
        &self,
        repo: &str,
        digest: Option<&str>,
        filter: &ManifestFilter,
        req: &PageRequest,
    ) -> Result<Option<Page<TagRecord>>, StoreError> {
        read_conn!(self, |c| {
            let Some(id) = repo_id(c, repo).await? else {
                return Ok(None);
            };
            if matches_nothing(filter) {
                return Ok(Some(page(Vec::new(), req.n)));
            }
            let (sql, args) = tags_query(id, digest, &as_indexed(filter), &as_cursor(req));
            let items = rows(c, &sql, args)
                .await?
                .iter()
                .map(|r| TagRecord {
                    name: r.get(0),
                    digest: r.get(1),
                    pushed_at: r.get(2),
                })
                .collect();
            Ok(Some(page(items, req.n)))
        })
    }

    async fn list_manifest_summaries(
        &self,
        repo: &str,
        subject: Option<&str>,
        filter: &ManifestFilter,
        req: &PageRequest,
    ) -> Result<Option<Page<ManifestSummary>>, StoreError> {
        read_conn!(self, |c| {
            let Some(id) = repo_id(c, repo).await? else {
                return Ok(None);
            };
            if matches_nothing(filter) {
                return Ok(Some(page(Vec::new(), req.n)));
            }
            let (sql, args) = manifests_query(id, subject, &as_indexed(filter), &as_cursor(req));
            let mut items: Vec<ManifestSummary> = rows(c, &sql, args)
                .await?
                .iter()
                .map(|r| ManifestSummary {
                    digest: r.get(0),
                    media_type: r.get(1),
                    artifact_type: r.get(2),
                    size: r.get(3),
                    subject: r.get(4),
                    annotations: r.get(5),
                    pushed_at: r.get(6),
                    tags: Vec::new(),
                    held_by: Vec::new(),
                })
                .collect();
            for m in items.iter_mut().take(req.n as usize) {
                m.tags = c
                    .cq(
                        "SELECT name FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY name",
                        &[&id, &m.digest],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                m.held_by = c
                        .cq(
                            "SELECT digest FROM manifest_refs WHERE repo_id = $1 AND ref = $2 ORDER BY digest LIMIT 5",
                            &[&id, &m.digest],
                        )
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
            }
            Ok(Some(page(items, req.n)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test server (`MARINA_TEST_POSTGRES_URL`); under CI its absence fails.
    fn server() -> Option<String> {
        match std::env::var("MARINA_TEST_POSTGRES_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "MARINA_TEST_POSTGRES_URL is unset under CI; .ci/run starts PostgreSQL"
                );
                eprintln!("skipped: MARINA_TEST_POSTGRES_URL is unset");
                None
            }
        }
    }

    /// Collects the node types of an `EXPLAIN (FORMAT JSON)` plan, depth first;
    /// a scan whose rows are filtered after the index is marked `(filtered)`.
    fn nodes(plan: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(t) = plan.get("Node Type").and_then(|t| t.as_str()) {
            let filtered = if plan.get("Filter").is_some() {
                " (filtered)"
            } else {
                ""
            };
            out.push(format!("{t}{filtered}"));
        }
        for child in plan
            .get("Plans")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            nodes(child, out);
        }
    }

    /// What the plan test prices out: scans that cannot deliver rows in index
    /// order, and sorting. The planner still sorts (or scans) when no index
    /// can serve a query, which is what the test looks for; on its empty
    /// tables it would otherwise pick them for being cheap.
    const PRICED_OUT: &str =
        "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off";

    /// Every paged listing query (the same set as SQLite's plan test) can be
    /// read along an index in page order, with no sort and no sequential scan,
    /// so a page costs the same anywhere in the list.
    #[test]
    fn every_page_is_an_index_range_without_a_sort() {
        let Some(url) = server() else {
            return;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let store = PgMetaStore::open_in_schema(&url, &schema).unwrap();
        for (what, (sql, args)) in crate::store::listing::tests::every_paged_query() {
            let (sql, params) = numbered(&sql, args);
            let explain = async {
                read_conn!(&store, |c| {
                    c.batch_execute(PRICED_OUT).await?;
                    let refs: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    let row = c
                        .cq_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &refs)
                        .await?;
                    c.batch_execute("RESET ALL").await?;
                    Ok(row.get::<_, serde_json::Value>(0))
                })
            };
            let plan: serde_json::Value = store.run(explain).unwrap();
            let mut found = Vec::new();
            nodes(&plan[0]["Plan"], &mut found);
            let bad = |n: &String| n.starts_with("Seq Scan") || n.contains("Sort");
            // Without filters beyond the repository (and the digest or
            // subject), the scan that drives the page reads one index range:
            // every condition it has is an index condition. (Further filters
            // are checked row by row, as on SQLite.)
            let unfiltered = what.starts_with("repos")
                || what.contains("artifact_type: None, annotations: [], tagged: None");
            let driver = found.iter().find(|n| n.contains("Scan"));
            assert!(
                !found.iter().any(bad)
                    && driver.is_some_and(|d| !unfiltered || !d.ends_with("(filtered)")),
                "{what}\n{sql}\nplan: {found:?}"
            );
        }
    }
}
