//! Listing queries of the `_marina` extension: repositories (of the registry or of a
//! namespace), tags, manifests and referrers, filtered and sorted, one keyset page at
//! a time.
//!
//! Every page is one range scan of an index whose leading columns are the equality
//! filters and whose next columns are the sort key, so SQLite never sorts and never
//! scans outside the range: a page costs the same on the first and on the last
//! position. Which index drives the scan depends on the filters (the most selective
//! one that still yields the sort order); the other filters are checked row by row
//! through primary-key lookups. The tests at the bottom assert the plans.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::meta::{page, Page, SqliteMetaStore, StoreError};

/// What a list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// Repository name, tag name, or manifest digest.
    Name,
    /// Time of the last push, then the name as a tie-breaker.
    Pushed,
}

/// Direction of a sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// A sort: field and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// What to sort by.
    pub field: SortField,
    /// Which way.
    pub order: SortOrder,
}

/// The sort key of the last item of the previous page; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Push time in milliseconds (ignored when sorting by name).
    pub pushed_at: i64,
    /// Name, tag or digest.
    pub key: String,
}

/// One annotation condition on a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationFilter {
    /// The key is present, whatever its value.
    Present(String),
    /// The key is present with exactly this value.
    Equals(String, String),
}

/// Conditions a manifest (or the manifest a tag points at) must meet; all must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestFilter {
    /// Exactly this artifact type.
    pub artifact_type: Option<String>,
    /// Every one of these annotation conditions.
    pub annotations: Vec<AnnotationFilter>,
    /// Only tagged (`Some(true)`) or only untagged (`Some(false)`) manifests.
    pub tagged: Option<bool>,
}

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Order of the list.
    pub sort: Sort,
    /// Continue after this position (`None`: from the start).
    pub after: Option<Position>,
    /// Most items to return.
    pub n: u32,
}

/// A repository as the listing extension shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRecord {
    /// Full repository name.
    pub name: String,
    /// Last manifest push into it, in milliseconds since the epoch.
    pub pushed_at: i64,
}

/// A tag with what it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    /// The tag.
    pub name: String,
    /// Digest of the manifest it points at.
    pub digest: String,
    /// When the tag was last pushed, in milliseconds since the epoch.
    pub pushed_at: i64,
}

/// A manifest with the fields the listing extension reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSummary {
    /// Digest.
    pub digest: String,
    /// Media type it is served with.
    pub media_type: String,
    /// Artifact type (explicit, else the config media type), if any.
    pub artifact_type: Option<String>,
    /// Size in bytes.
    pub size: i64,
    /// Digest of its subject, if it refers to another manifest.
    pub subject: Option<String>,
    /// Annotations as a JSON object string, if any.
    pub annotations: Option<String>,
    /// When it was last pushed, in milliseconds since the epoch.
    pub pushed_at: i64,
    /// Tags pointing at it, in lexical order.
    pub tags: Vec<String>,
    /// Manifests of the repository that reference it (an index holding it), at
    /// most a few, in digest order: an untagged manifest held by an index is part
    /// of an image, not garbage.
    pub held_by: Vec<String>,
}

impl Position {
    /// The position of a repository in a list sorted by `sort`.
    pub fn of_repository(r: &RepositoryRecord) -> Position {
        Position {
            pushed_at: r.pushed_at,
            key: r.name.clone(),
        }
    }

    /// The position of a tag.
    pub fn of_tag(t: &TagRecord) -> Position {
        Position {
            pushed_at: t.pushed_at,
            key: t.name.clone(),
        }
    }

    /// The position of a manifest.
    pub fn of_manifest(m: &ManifestSummary) -> Position {
        Position {
            pushed_at: m.pushed_at,
            key: m.digest.clone(),
        }
    }
}

/// Namespaces a repository sits under: the root `""`, then each proper prefix
/// ending before a `/` (`a/b/c` → `""`, `a`, `a/b`).
pub(crate) fn namespaces_of(name: &str) -> Vec<&str> {
    std::iter::once("")
        .chain(name.match_indices('/').map(|(i, _)| &name[..i]))
        .collect()
}

/// Keeps the listing tables in step with a manifest push; called at the end of the
/// push transaction (`SqliteMetaStore::put_manifest`), after the manifest row is written.
/// Records its annotations one row per key and the repository's last push time
/// under every namespace above it. Deleting the manifest removes its annotation rows
/// through `ON DELETE CASCADE`.
pub(crate) fn index_for_listing(
    tx: &Connection,
    repo_id: i64,
    digest: &str,
    annotations: Option<&str>,
) -> Result<(), StoreError> {
    let (name, pushed_at): (String, i64) = tx
        .prepare_cached(
            "SELECT r.name, m.pushed_at FROM manifests m JOIN repos r ON r.id = m.repo_id \
             WHERE m.repo_id = ?1 AND m.digest = ?2",
        )?
        .query_row(params![repo_id, digest], |r| Ok((r.get(0)?, r.get(1)?)))?;
    // The registry layer writes this JSON from a parsed string map, so it always parses.
    let annotations: BTreeMap<String, String> = annotations
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    let mut put_annotation = tx.prepare_cached(
        "INSERT INTO manifest_annotations (repo_id, digest, key, value, pushed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (repo_id, digest, key) DO UPDATE SET pushed_at = excluded.pushed_at",
    )?;
    for (key, value) in &annotations {
        put_annotation.execute(params![repo_id, digest, key, value, pushed_at])?;
    }
    let mut put_namespace = tx.prepare_cached(
        "INSERT INTO repo_namespaces (namespace, name, repo_id, pushed_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (namespace, name) DO UPDATE SET pushed_at = excluded.pushed_at",
    )?;
    for ns in namespaces_of(&name) {
        put_namespace.execute(params![ns, name, repo_id, pushed_at])?;
    }
    Ok(())
}

/// A `SELECT` assembled from parts, with its positional arguments in order.
struct Query {
    from: String,
    conds: Vec<String>,
    args: Vec<Value>,
}

impl Query {
    fn new(from: &str) -> Self {
        Query {
            from: from.to_string(),
            conds: Vec::new(),
            args: Vec::new(),
        }
    }

    fn and(&mut self, cond: impl Into<String>, args: impl IntoIterator<Item = Value>) {
        self.conds.push(cond.into());
        self.args.extend(args);
    }

    /// Adds the keyset condition and returns the `ORDER BY` list. `pushed` and `key`
    /// are the columns of the driving index.
    fn keyset(&mut self, pushed: &str, key: &str, req: &PageRequest) -> String {
        let (cmp, dir) = match req.sort.order {
            SortOrder::Asc => (">", "ASC"),
            SortOrder::Desc => ("<", "DESC"),
        };
        match (req.sort.field, &req.after) {
            (SortField::Name, Some(p)) => {
                self.and(format!("{key} {cmp} ?"), [p.key.clone().into()])
            }
            (SortField::Pushed, Some(p)) => self.and(
                format!("({pushed}, {key}) {cmp} (?, ?)"),
                [p.pushed_at.into(), p.key.clone().into()],
            ),
            (_, None) => {}
        }
        match req.sort.field {
            SortField::Name => format!("{key} {dir}"),
            SortField::Pushed => format!("{pushed} {dir}, {key} {dir}"),
        }
    }

    fn sql(&self, columns: &str, order: &str) -> String {
        format!(
            "SELECT {columns} FROM {} WHERE {} ORDER BY {order} LIMIT ?",
            self.from,
            self.conds.join(" AND ")
        )
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// Adds `EXISTS` checks of annotation conditions on the manifest `{alias}.digest`.
fn annotation_checks(q: &mut Query, alias: &str, filters: &[AnnotationFilter]) {
    for f in filters {
        let base = format!(
            "EXISTS (SELECT 1 FROM manifest_annotations x WHERE x.repo_id = {alias}.repo_id \
             AND x.digest = {alias}.digest AND x.key = ?"
        );
        match f {
            AnnotationFilter::Present(k) => q.and(format!("{base})"), [text(k)]),
            AnnotationFilter::Equals(k, v) => {
                q.and(format!("{base} AND x.value = ?)"), [text(k), text(v)])
            }
        }
    }
}

fn repo_id(c: &Connection, repo: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT id FROM repos WHERE name = ?1")?
        .query_row(params![repo], |r| r.get(0))
        .optional()
}

/// The query for one page of repositories (also used by the plan tests).
pub(crate) fn repositories_query(namespace: &str, req: &PageRequest) -> (String, Vec<Value>) {
    let mut q = Query::new("repo_namespaces r");
    q.and("r.namespace = ?", [text(namespace)]);
    let order = q.keyset("r.pushed_at", "r.name", req);
    // Repositories whose manifests were all deleted drop out, as in `_catalog`.
    q.and(
        "EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.repo_id)",
        [],
    );
    q.args.push((req.n as i64 + 1).into());
    (q.sql("r.name, r.pushed_at", &order), q.args)
}

/// The query for one page of tags of the repository `repo_id`.
pub(crate) fn tags_query(
    repo_id: i64,
    digest: Option<&str>,
    filter: &ManifestFilter,
    req: &PageRequest,
) -> (String, Vec<Value>) {
    let mut q = Query::new("tags t");
    q.and("t.repo_id = ?", [repo_id.into()]);
    if let Some(d) = digest {
        q.and("t.digest = ?", [text(d)]);
    }
    let order = q.keyset("t.pushed_at", "t.name", req);
    if let Some(a) = &filter.artifact_type {
        q.and(
            "EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = t.repo_id \
             AND m.digest = t.digest AND m.artifact_type = ?)",
            [text(a)],
        );
    }
    annotation_checks(&mut q, "t", &filter.annotations);
    q.args.push((req.n as i64 + 1).into());
    (q.sql("t.name, t.digest, t.pushed_at", &order), q.args)
}

/// The query for one page of manifests of `repo_id` (referrers of `subject` when given).
pub(crate) fn manifests_query(
    repo_id: i64,
    subject: Option<&str>,
    filter: &ManifestFilter,
    req: &PageRequest,
) -> (String, Vec<Value>) {
    let mut annotations = filter.annotations.as_slice();
    let mut artifact_type = filter.artifact_type.as_deref();
    let (mut q, pushed, key) = match (subject, annotations.first(), artifact_type) {
        (Some(s), _, _) => {
            let mut q = Query::new("manifests m");
            q.and("m.repo_id = ?", [repo_id.into()]);
            q.and("m.subject = ?", [text(s)]);
            (q, "m.pushed_at", "m.digest")
        }
        (None, Some(first), _) => {
            // The annotation index drives; the manifest is a primary-key lookup.
            let mut q = Query::new("manifest_annotations a CROSS JOIN manifests m");
            q.and("a.repo_id = ?", [repo_id.into()]);
            match first {
                AnnotationFilter::Present(k) => q.and("a.key = ?", [text(k)]),
                AnnotationFilter::Equals(k, v) => {
                    q.and("a.key = ? AND a.value = ?", [text(k), text(v)])
                }
            }
            q.and("m.repo_id = a.repo_id AND m.digest = a.digest", []);
            annotations = &annotations[1..];
            (q, "a.pushed_at", "a.digest")
        }
        (None, None, Some(t)) => {
            let mut q = Query::new("manifests m");
            q.and("m.repo_id = ?", [repo_id.into()]);
            q.and("m.artifact_type = ?", [text(t)]);
            artifact_type = None;
            (q, "m.pushed_at", "m.digest")
        }
        (None, None, None) => {
            let mut q = Query::new("manifests m");
            q.and("m.repo_id = ?", [repo_id.into()]);
            (q, "m.pushed_at", "m.digest")
        }
    };
    let order = q.keyset(pushed, key, req);
    if let Some(t) = artifact_type {
        q.and("m.artifact_type = ?", [text(t)]);
    }
    annotation_checks(&mut q, "m", annotations);
    match filter.tagged {
        Some(true) => q.and(
            "EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)",
            [],
        ),
        Some(false) => q.and(
            "NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)",
            [],
        ),
        None => {}
    }
    q.args.push((req.n as i64 + 1).into());
    let columns =
        "m.digest, m.media_type, m.artifact_type, m.size, m.subject, m.annotations, m.pushed_at";
    (q.sql(columns, &order), q.args)
}

/// The listing extension's queries: a part of every metadata backend
/// (`MetadataStore` requires it). Async, like the rest of the store.
#[async_trait::async_trait]
pub trait ListingStore: Send + Sync {
    /// One page of the repositories under `namespace` (`""`: the whole registry;
    /// `"a/b"`: every repository whose name starts with `a/b/`), holding at least one
    /// manifest.
    async fn list_repositories(
        &self,
        namespace: &str,
        req: &PageRequest,
    ) -> Result<Page<RepositoryRecord>, StoreError>;

    /// One page of the tags of `repo` (only those pointing at `digest`, when given)
    /// whose manifests pass `filter` (`tagged` is ignored); `None` if the repository
    /// is unknown.
    async fn list_tag_records(
        &self,
        repo: &str,
        digest: Option<&str>,
        filter: &ManifestFilter,
        req: &PageRequest,
    ) -> Result<Option<Page<TagRecord>>, StoreError>;

    /// One page of the manifests of `repo` passing `filter`, tagged or not; with
    /// `subject`, only the manifests that refer to it (its referrers). `None` if the
    /// repository is unknown.
    async fn list_manifest_summaries(
        &self,
        repo: &str,
        subject: Option<&str>,
        filter: &ManifestFilter,
        req: &PageRequest,
    ) -> Result<Option<Page<ManifestSummary>>, StoreError>;
}

/// Runs a built listing query (cached statement) and maps every row.
fn query_rows<T>(
    c: &Connection,
    sql: &str,
    args: Vec<Value>,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(args), row)?;
    rows.collect()
}

/// The blocking implementations; `super::embedded` answers the async traits
/// with them.
impl SqliteMetaStore {
    pub(crate) fn list_repositories(
        &self,
        namespace: &str,
        req: &PageRequest,
    ) -> Result<Page<RepositoryRecord>, StoreError> {
        let (sql, args) = repositories_query(namespace, req);
        self.read(|c| {
            let rows = query_rows(c, &sql, args, |r| {
                Ok(RepositoryRecord {
                    name: r.get(0)?,
                    pushed_at: r.get(1)?,
                })
            })?;
            Ok(page(rows, req.n))
        })
    }

    pub(crate) fn list_tag_records(
        &self,
        repo: &str,
        digest: Option<&str>,
        filter: &ManifestFilter,
        req: &PageRequest,
    ) -> Result<Option<Page<TagRecord>>, StoreError> {
        self.read(|c| {
            let Some(id) = repo_id(c, repo)? else {
                return Ok(None);
            };
            let (sql, args) = tags_query(id, digest, filter, req);
            let rows = query_rows(c, &sql, args, |r| {
                Ok(TagRecord {
                    name: r.get(0)?,
                    digest: r.get(1)?,
                    pushed_at: r.get(2)?,
                })
            })?;
            Ok(Some(page(rows, req.n)))
        })
    }

    pub(crate) fn list_manifest_summaries(
        &self,
        repo: &str,
        subject: Option<&str>,
        filter: &ManifestFilter,
        req: &PageRequest,
    ) -> Result<Option<Page<ManifestSummary>>, StoreError> {
        self.read(|c| {
            let Some(id) = repo_id(c, repo)? else {
                return Ok(None);
            };
            let (sql, args) = manifests_query(id, subject, filter, req);
            let mut items = query_rows(c, &sql, args, |r| {
                Ok(ManifestSummary {
                    digest: r.get(0)?,
                    media_type: r.get(1)?,
                    artifact_type: r.get(2)?,
                    size: r.get(3)?,
                    subject: r.get(4)?,
                    annotations: r.get(5)?,
                    pushed_at: r.get(6)?,
                    tags: Vec::new(),
                    held_by: Vec::new(),
                })
            })?;
            items.truncate(req.n as usize + 1);
            let mut tags = c.prepare_cached(
                "SELECT name FROM tags WHERE repo_id = ?1 AND digest = ?2 ORDER BY name",
            )?;
            let mut holders = c.prepare_cached(
                "SELECT digest FROM manifest_refs WHERE repo_id = ?1 AND ref = ?2 ORDER BY digest LIMIT 5",
            )?;
            for m in items.iter_mut().take(req.n as usize) {
                m.tags = tags
                    .query_map(params![id, m.digest], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                m.held_by = holders
                    .query_map(params![id, m.digest], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
            }
            Ok(Some(page(items, req.n)))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
