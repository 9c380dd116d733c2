//! The SQLite schema, versioned by `PRAGMA user_version` and compiled into the binary.
//!
//! Each entry of [`MIGRATIONS`] moves the schema one version forward; a database is
//! brought up to date at open, inside one transaction per step.

/// Migration steps; index `i` upgrades from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE repos (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;

-- Every verified blob the registry holds, whichever repository it came through.
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Which repositories may serve which blobs (deleting a blob unlinks it here).
CREATE TABLE repo_blobs (
    repo_id INTEGER NOT NULL REFERENCES repos(id),
    digest  TEXT NOT NULL REFERENCES blobs(digest),
    PRIMARY KEY (repo_id, digest)
) STRICT, WITHOUT ROWID;

-- Manifest bytes, exactly as pushed, shared by every repository holding them.
CREATE TABLE manifest_content (
    digest TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE manifests (
    repo_id       INTEGER NOT NULL REFERENCES repos(id),
    digest        TEXT NOT NULL REFERENCES manifest_content(digest),
    media_type    TEXT NOT NULL,
    artifact_type TEXT,
    size          INTEGER NOT NULL,
    subject       TEXT,
    annotations   TEXT,
    pushed_at     INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest)
) STRICT, WITHOUT ROWID;

-- The referrers API reads this index; it never scans manifests.
CREATE INDEX manifests_by_subject ON manifests (repo_id, subject, digest) WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repo_id   INTEGER NOT NULL,
    name      TEXT NOT NULL,
    digest    TEXT NOT NULL,
    pushed_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX tags_by_digest ON tags (repo_id, digest);
"#,
    // 2: find the repositories linking a blob without scanning every link
    // (anonymous mounts, garbage collection).
    r#"
CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);
"#,
    // 3: the listing extension (`_marina`, see `store::listing`). Secondary indexes
    // so that every sort order and filter of a listing page is one keyset range scan,
    // manifest annotations one row per key for filtering, and the namespaces each
    // repository sits under (with its last push time) for namespace listings.
    r#"
CREATE INDEX manifests_by_pushed ON manifests (repo_id, pushed_at, digest);
CREATE INDEX manifests_by_type ON manifests (repo_id, artifact_type, digest)
    WHERE artifact_type IS NOT NULL;
CREATE INDEX manifests_by_type_pushed ON manifests (repo_id, artifact_type, pushed_at, digest)
    WHERE artifact_type IS NOT NULL;
CREATE INDEX manifests_by_subject_pushed ON manifests (repo_id, subject, pushed_at, digest)
    WHERE subject IS NOT NULL;
CREATE INDEX tags_by_pushed ON tags (repo_id, pushed_at, name);
CREATE INDEX tags_by_digest_pushed ON tags (repo_id, digest, pushed_at, name);

-- One row per annotation of a manifest; `pushed_at` repeats the manifest's so that a
-- filtered list sorted by push time is still one index range.
CREATE TABLE manifest_annotations (
    repo_id   INTEGER NOT NULL,
    digest    TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    pushed_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, digest, key),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX annotations_by_value ON manifest_annotations (repo_id, key, value, digest);
CREATE INDEX annotations_by_value_pushed ON manifest_annotations (repo_id, key, value, pushed_at, digest);
CREATE INDEX annotations_by_key ON manifest_annotations (repo_id, key, digest);
CREATE INDEX annotations_by_key_pushed ON manifest_annotations (repo_id, key, pushed_at, digest);

-- Each repository under the registry root ('') and under every namespace above it
-- (`a/b/c` under '', 'a' and 'a/b'), with the time of its last manifest push.
CREATE TABLE repo_namespaces (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    repo_id   INTEGER NOT NULL REFERENCES repos(id),
    pushed_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX repo_namespaces_by_pushed ON repo_namespaces (namespace, pushed_at, name);

-- Backfill from what earlier versions stored.
INSERT INTO manifest_annotations (repo_id, digest, key, value, pushed_at)
SELECT m.repo_id, m.digest, j.key, CAST(j.value AS TEXT), m.pushed_at
FROM manifests m, json_each(m.annotations) j
WHERE m.annotations IS NOT NULL AND json_valid(m.annotations) AND j.type = 'text';

INSERT INTO repo_namespaces (namespace, name, repo_id, pushed_at)
WITH RECURSIVE cut (repo_id, name, pos) AS (
    SELECT id, name, 0 FROM repos
    UNION ALL
    SELECT repo_id, name, pos + instr(substr(name, pos + 1), '/') FROM cut
    WHERE instr(substr(name, pos + 1), '/') > 0
)
SELECT CASE WHEN pos = 0 THEN '' ELSE substr(name, 1, pos - 1) END, name, repo_id,
       (SELECT max(m.pushed_at) FROM manifests m WHERE m.repo_id = cut.repo_id)
FROM cut
WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = cut.repo_id);
"#,
    // 4: reachability garbage collection. What each manifest references (config,
    // layers, index children; not its subject), and when each blob link was last
    // made, so that a link lives while a manifest of its repository references
    // the blob or for a grace period after an upload or mount, and a blob while
    // any manifest anywhere references it or any repository links it.
    r#"
CREATE TABLE manifest_refs (
    repo_id INTEGER NOT NULL,
    digest  TEXT NOT NULL,
    ref     TEXT NOT NULL,
    PRIMARY KEY (repo_id, digest, ref),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX manifest_refs_by_ref ON manifest_refs (ref, repo_id);

ALTER TABLE repo_blobs ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;
-- Links made before this version get a full grace period from now.
UPDATE repo_blobs SET linked_at = CAST(unixepoch('subsec') * 1000 AS INTEGER);
CREATE INDEX repo_blobs_by_linked ON repo_blobs (linked_at);

-- Backfill the references of what earlier versions stored.
INSERT OR IGNORE INTO manifest_refs (repo_id, digest, ref)
SELECT repo_id, digest, ref FROM (
    SELECT m.repo_id, m.digest,
           json_extract(CASE WHEN json_valid(CAST(c.bytes AS TEXT)) THEN CAST(c.bytes AS TEXT) ELSE '{}' END,
                        '$.config.digest') AS ref
    FROM manifests m JOIN manifest_content c ON c.digest = m.digest
    UNION ALL
    SELECT m.repo_id, m.digest,
           CASE WHEN j.type = 'object' THEN json_extract(j.value, '$.digest') END
    FROM manifests m JOIN manifest_content c ON c.digest = m.digest,
         json_each(CASE WHEN json_valid(CAST(c.bytes AS TEXT)) THEN CAST(c.bytes AS TEXT) ELSE '{}' END,
                   '$.layers') j
    UNION ALL
    SELECT m.repo_id, m.digest,
           CASE WHEN j.type = 'object' THEN json_extract(j.value, '$.digest') END
    FROM manifests m JOIN manifest_content c ON c.digest = m.digest,
         json_each(CASE WHEN json_valid(CAST(c.bytes AS TEXT)) THEN CAST(c.bytes AS TEXT) ELSE '{}' END,
                   '$.manifests') j
) WHERE typeof(ref) = 'text';
"#,
    // 5: upload sessions, so that any server can continue one (`store::uploads`).
    r#"
CREATE TABLE uploads (
    id         TEXT PRIMARY KEY,
    repo       TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    hash_state BLOB NOT NULL,
    staging    BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX uploads_by_updated ON uploads (updated_at);
"#,
    // 6: blobs of a few KiB, kept here rather than as files (`store::small_blobs`);
    // upload sessions in one b-tree, so that opening or closing one writes a
    // page or two (the few stale sessions are found by a scan).
    r#"
CREATE TABLE small_blobs (
    digest TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE uploads_by_id (
    id         TEXT PRIMARY KEY,
    repo       TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    hash_state BLOB NOT NULL,
    staging    BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO uploads_by_id SELECT id, repo, algorithm, size, hash_state, staging, updated_at FROM uploads;
DROP TABLE uploads;
ALTER TABLE uploads_by_id RENAME TO uploads;
"#,
    // 7: small blobs in a rowid table, their digests in its own index. In one
    // b-tree keyed by digest (version 6) each row of a few KiB spilled onto
    // overflow pages that every search of the tree read again.
    r#"
CREATE TABLE small_blobs_by_rowid (
    digest TEXT PRIMARY KEY NOT NULL,
    bytes  BLOB NOT NULL
) STRICT;
INSERT INTO small_blobs_by_rowid SELECT digest, bytes FROM small_blobs;
DROP TABLE small_blobs;
ALTER TABLE small_blobs_by_rowid RENAME TO small_blobs;
"#,
    // 8: manifest bytes in a rowid table too: a manifest of a few KiB (an index
    // of many platforms) spilled onto overflow pages that every search of the
    // digest-keyed tree read again. `manifests` references it by name, which the
    // rename keeps valid (references are checked after the step).
    r#"
CREATE TABLE manifest_content_by_rowid (
    digest TEXT PRIMARY KEY NOT NULL,
    bytes  BLOB NOT NULL
) STRICT;
INSERT INTO manifest_content_by_rowid SELECT digest, bytes FROM manifest_content;
DROP TABLE manifest_content;
ALTER TABLE manifest_content_by_rowid RENAME TO manifest_content;
"#,
    // 9: upload sessions opened without a record (`store::uploads`): the key
    // that signs their ids, and the ids of closed sessions, kept until they
    // would have expired anyway.
    r#"
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE closed_uploads (
    id        TEXT PRIMARY KEY,
    closed_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
-- The expiry sweep forgets them by time; appended to, as time only grows.
CREATE INDEX closed_uploads_by_time ON closed_uploads (closed_at);
"#,
    // 10: blobs numbered in the order they arrive, and links naming blobs by
    // number. A digest falls anywhere in a tree keyed by digest, so each link
    // made a page dirty at random in two trees (the links, and the links by
    // blob); a new number goes at the end of both. Only `blobs` itself stays
    // keyed by digest (where lookups by digest start); its number is unique so
    // that a link can find it and the next number is one step away.
    r#"
CREATE TABLE blobs_numbered (
    digest     TEXT PRIMARY KEY,
    id         INTEGER NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO blobs_numbered (digest, id, size, created_at)
SELECT digest, row_number() OVER (ORDER BY created_at, digest), size, created_at FROM blobs;

CREATE TABLE blob_links (
    repo_id   INTEGER NOT NULL REFERENCES repos(id),
    blob_id   INTEGER NOT NULL REFERENCES blobs_numbered(id),
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, blob_id)
) STRICT, WITHOUT ROWID;
INSERT INTO blob_links (repo_id, blob_id, linked_at)
SELECT rb.repo_id, b.id, rb.linked_at FROM repo_blobs rb JOIN blobs_numbered b ON b.digest = rb.digest;

DROP TABLE repo_blobs;
DROP TABLE blobs;
ALTER TABLE blobs_numbered RENAME TO blobs;
CREATE INDEX blob_links_by_blob ON blob_links (blob_id);
CREATE INDEX blob_links_by_linked ON blob_links (linked_at);
"#,
];
