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
];
