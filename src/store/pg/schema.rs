//! The PostgreSQL schema: the same tables and indexes as SQLite's
//! (`store::schema`, at its version 5), text keys in byte order (`COLLATE "C"`,
//! as the spec's lexical order of tags and names asks), versioned in
//! `marina_schema` and brought up to date at open under an advisory lock, so
//! that replicas starting together migrate once.

/// Migration steps; index `i` upgrades from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE repos (
    id   BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE
);

-- Every verified blob the registry holds, whichever repository it came through.
CREATE TABLE blobs (
    digest     TEXT COLLATE "C" PRIMARY KEY,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Which repositories may serve which blobs, and when each link was last made.
CREATE TABLE repo_blobs (
    repo_id   BIGINT NOT NULL REFERENCES repos(id),
    digest    TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);
CREATE INDEX repo_blobs_by_linked ON repo_blobs (linked_at);

-- Manifest bytes, exactly as pushed, shared by every repository holding them.
CREATE TABLE manifest_content (
    digest TEXT COLLATE "C" PRIMARY KEY,
    bytes  BYTEA NOT NULL
);

CREATE TABLE manifests (
    repo_id       BIGINT NOT NULL REFERENCES repos(id),
    digest        TEXT COLLATE "C" NOT NULL REFERENCES manifest_content(digest),
    media_type    TEXT NOT NULL,
    artifact_type TEXT COLLATE "C",
    size          BIGINT NOT NULL,
    subject       TEXT COLLATE "C",
    annotations   TEXT,
    pushed_at     BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repo_id, subject, digest) WHERE subject IS NOT NULL;
CREATE INDEX manifests_by_pushed ON manifests (repo_id, pushed_at, digest);
CREATE INDEX manifests_by_type ON manifests (repo_id, artifact_type, digest)
    WHERE artifact_type IS NOT NULL;
CREATE INDEX manifests_by_type_pushed ON manifests (repo_id, artifact_type, pushed_at, digest)
    WHERE artifact_type IS NOT NULL;
CREATE INDEX manifests_by_subject_pushed ON manifests (repo_id, subject, pushed_at, digest)
    WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repo_id   BIGINT NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    digest    TEXT COLLATE "C" NOT NULL,
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, name),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_by_digest ON tags (repo_id, digest, name);
CREATE INDEX tags_by_pushed ON tags (repo_id, pushed_at, name);
CREATE INDEX tags_by_digest_pushed ON tags (repo_id, digest, pushed_at, name);

-- One row per annotation of a manifest, for the listing extension's filters.
CREATE TABLE manifest_annotations (
    repo_id   BIGINT NOT NULL,
    digest    TEXT COLLATE "C" NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    value     TEXT COLLATE "C" NOT NULL,
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest, key),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX annotations_by_value ON manifest_annotations (repo_id, key, value, digest);
CREATE INDEX annotations_by_value_pushed ON manifest_annotations (repo_id, key, value, pushed_at, digest);
CREATE INDEX annotations_by_key ON manifest_annotations (repo_id, key, digest);
CREATE INDEX annotations_by_key_pushed ON manifest_annotations (repo_id, key, pushed_at, digest);

-- Each repository under the root ('') and every namespace above it, with the
-- time of its last manifest push.
CREATE TABLE repo_namespaces (
    namespace TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    repo_id   BIGINT NOT NULL REFERENCES repos(id),
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX repo_namespaces_by_pushed ON repo_namespaces (namespace, pushed_at, name);

-- What each manifest references (config, layers, index children; not its subject).
CREATE TABLE manifest_refs (
    repo_id BIGINT NOT NULL,
    digest  TEXT COLLATE "C" NOT NULL,
    ref     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repo_id, digest, ref),
    FOREIGN KEY (repo_id, digest) REFERENCES manifests (repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_by_ref ON manifest_refs (ref, repo_id);
"#,
    // 2: upload sessions, so that any server can continue one (`store::uploads`).
    r#"
CREATE TABLE uploads (
    id         TEXT COLLATE "C" PRIMARY KEY,
    repo       TEXT COLLATE "C" NOT NULL,
    algorithm  TEXT NOT NULL,
    size       BIGINT NOT NULL,
    hash_state BYTEA NOT NULL,
    staging    BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX uploads_by_updated ON uploads (updated_at);
"#,
    // 3: upload sessions opened without a record (`store::uploads`): the key
    // that signs their ids, and the ids of closed sessions, kept until they
    // would have expired anyway.
    r#"
CREATE TABLE secrets (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE closed_uploads (
    id        TEXT COLLATE "C" PRIMARY KEY,
    closed_at BIGINT NOT NULL
);
CREATE INDEX closed_uploads_by_time ON closed_uploads (closed_at);
"#,
];
