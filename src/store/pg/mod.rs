//! Metadata in PostgreSQL (`--metadata-url postgres://…`): the same schema ideas
//! as SQLite (keyset pages on indexes, the subject index, the listing tables),
//! for registries that outgrow one machine.
//!
//! The driver is `tokio-postgres` with a `deadpool-postgres` pool, its
//! connections on a small runtime of the store's own: the store's interface is
//! blocking (the registry calls it off its async runtime), so each method
//! drives its queries on the calling thread and waits. Every statement is parameterised.
//!
//! # Concurrency
//! Several processes may share one database. Every write transaction runs
//! `SERIALIZABLE` and is retried on a serialization failure or deadlock, so
//! the checks a write makes (a manifest's blobs are linked; a link is
//! unreferenced before it is pruned) hold at commit as they did under SQLite's
//! single writer. Writes that would often collide take advisory locks on the
//! connection before their transaction begins (so a waiter's snapshot starts
//! after the holder's commit, and waiting never turns into a retry): a
//! manifest push locks its repository. Removing a blob's bytes is a side
//! effect no rollback can undo, so it is fenced by a lock on the digest: the
//! collector holds it exclusively while it forgets the blob and removes the
//! bytes (in one READ COMMITTED transaction that nothing fenced can conflict
//! with, rolled back if the removal fails), and linking a blob or pushing a
//! manifest that references it holds it shared. A link therefore either
//! commits before the collector looks, or sees the bytes gone and fails with
//! [`StoreError::Vanished`].

mod import;
mod listing;
mod schema;
mod uploads;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::meta::{page, CatalogPage, ManifestRecord, NewManifest, Page, ReferrerRecord};
use super::{
    Clock, GarbagePreview, MetadataStore, NamespaceUsage, RepositoryUsage, StoreError, StoreTotals,
    SystemClock,
};

/// Connections kept open for upload-session records.
const UPLOADS_POOL_SIZE: usize = 8;

/// Connections kept open to the database.
const POOL_SIZE: usize = 16;
/// Attempts of a write transaction that keeps meeting concurrent writers.
const WRITE_ATTEMPTS: u32 = 20;
/// Key of the advisory lock migrations run under.
const MIGRATION_LOCK: i64 = 0x6d61_7269_6e61;

/// The server's `statement_timeout` for Marina's connections, unless the URL's
/// `options` set one (`?options=-c%20statement_timeout%3D2min`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than the statement timeout a store call waits for the
/// database before it gives up on the connection (the server cancels a slow
/// statement itself; a server that does not answer at all cannot).
const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// How long the readiness check ([`MetadataStore::ping`]) waits for an answer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `/metrics` scrape's count ([`MetadataStore::totals`]) waits:
/// less than Prometheus's default scrape timeout (10 s), so that a scrape
/// while the database does not answer still gets the other metrics.
const COUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// [`MetadataStore`] on PostgreSQL.
pub struct PgMetaStore {
    pool: Pool,
    /// Connections for upload-session records, committing without waiting for
    /// the disk (`synchronous_commit = off`): a session is not yet stored
    /// content, and PostgreSQL crashing loses at most the last moments of
    /// records, after which a client asks where its upload stands (`GET`) and
    /// goes on from there. A crash of Marina loses nothing committed.
    uploads_pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    clock: Arc<dyn Clock>,
    /// How long one store call waits for the database (`None`: as long as
    /// it takes, when the statement timeout is off).
    limit: Option<Duration>,
}

impl std::fmt::Debug for PgMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgMetaStore")
    }
}

impl Drop for PgMetaStore {
    fn drop(&mut self) {
        // Dropping a runtime may block, which is not allowed on an async thread.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if unavailable(&e) {
            StoreError::Unavailable(describe(&e))
        } else {
            StoreError::Postgres(describe(&e))
        }
    }
}

/// Whether an error says the database is out of reach rather than that the
/// request was wrong: the connection closed, failed or timed out (any I/O
/// error), or the server refused or cancelled the work (connection exceptions,
/// too many connections, shutting down or starting up, statement timeout).
fn unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08") || c.starts_with("57P") || c == "53300" || c == "57014";
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// `fut`'s output, or `None` once `deadline` passes first (no deadline: it
/// waits as long as `fut` takes).
async fn within<F: Future>(deadline: Option<tokio::time::Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// The error of a store call the database did not answer within `limit`.
fn timed_out(limit: Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "no answer from the database within {} s",
        limit.as_secs_f32()
    ))
}

/// The server's own message when there is one (the driver's Display says only
/// "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.code().code(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => e.into(),
        e @ deadpool_postgres::PoolError::Timeout(_) => {
            StoreError::Unavailable(format!("no database connection: {e}"))
        }
        other => StoreError::Postgres(other.to_string()),
    }
}

/// Whether a failed transaction may simply be run again.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Runs `$body` (which may use `$tx` and `?` on driver errors) in a
/// transaction (SERIALIZABLE unless given), retried while concurrent writers
/// make it fail. `$locks` (advisory-lock keys, `(key, shared)`) are taken on
/// the connection before the transaction begins, in key order, and released
/// after it ends: a writer that waited for one starts its snapshot after the
/// holder committed, so waiting never turns into a serialization failure.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:block) => {
        write_tx!($store, IsolationLevel::Serializable, Vec::new(), |$tx| {
            $body
        })
    };
    ($store:expr, $locks:expr, |$tx:ident| $body:block) => {
        write_tx!($store, IsolationLevel::Serializable, $locks, |$tx| $body)
    };
    ($store:expr, $isolation:expr, $locks:expr, |$tx:ident| $body:block) => {{
        let store: &PgMetaStore = $store;
        let mut locks: Vec<(String, bool)> = $locks;
        locks.sort();
        locks.dedup_by(|a, b| {
            a.0 == b.0 && {
                b.1 &= a.1;
                true
            }
        });
        let limit = store.limit;
        let call = async {
            let mut held = Held::new(store.pool.get().await.map_err(pool_error)?);
            let client = held.client();
            // One statement per kind, each taking its keys in order.
            for (shared, sql) in [
                (true, "SELECT pg_advisory_lock_shared(hashtextextended(k, 0)) FROM unnest($1::TEXT[]) WITH ORDINALITY AS u(k, i) ORDER BY i"),
                (false, "SELECT pg_advisory_lock(hashtextextended(k, 0)) FROM unnest($1::TEXT[]) WITH ORDINALITY AS u(k, i) ORDER BY i"),
            ] {
                let keys: Vec<&str> = locks
                    .iter()
                    .filter(|l| l.1 == shared)
                    .map(|l| l.0.as_str())
                    .collect();
                if !keys.is_empty() {
                    client.cq(sql, &[&keys]).await?;
                }
            }
            let mut attempt = 0;
            let result = loop {
                attempt += 1;
                let $tx = client
                    .build_transaction()
                    .isolation_level($isolation)
                    .start()
                    .await?;
                let outcome: Result<_, Attempt> = async { $body }.await;
                let failure = match outcome {
                    Ok(value) => match $tx.commit().await {
                        Ok(()) => break Ok(value),
                        Err(e) => Attempt::Db(e),
                    },
                    Err(a) => a,
                };
                match failure {
                    Attempt::Db(e) if retryable(&e) && attempt < WRITE_ATTEMPTS => {
                        // Jittered backoff, so that retries do not collide again.
                        let ms = rand::random::<u64>() % (u64::from(attempt) * 4 + 1);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    Attempt::Db(e) => break Err(StoreError::from(e)),
                    Attempt::Store(e) => break Err(e),
                }
            };
            if !locks.is_empty() {
                client
                    .execute("SELECT pg_advisory_unlock_all()", &[])
                    .await?;
            }
            held.release();
            result
        };
        // A connection given up on is closed, not pooled (`Held`).
        within(limit.map(|l| tokio::time::Instant::now() + l), call)
            .await
            .unwrap_or_else(|| Err(timed_out(limit.unwrap_or_default())))
    }};
}

/// A pooled connection that may hold session-level advisory locks. It goes
/// back to the pool only through [`Held::release`], after its locks are
/// released; if the write ends any other way (an error, or its caller giving up
/// on it mid-way, as when a client disconnects), the connection is closed
/// instead, which releases whatever it held.
pub(super) struct Held(Option<deadpool_postgres::Object>, bool);

impl Held {
    pub(super) fn new(client: deadpool_postgres::Object) -> Held {
        Held(Some(client), false)
    }

    pub(super) fn client(&mut self) -> &mut deadpool_postgres::Object {
        self.0.as_mut().expect("held until dropped")
    }

    /// Marks the connection clean: it returns to the pool when dropped.
    pub(super) fn release(&mut self) {
        self.1 = true;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let (Some(client), false) = (self.0.take(), self.1) {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// The advisory-lock key serialising the writes into a repository.
fn repo_lock(repo: &str) -> (String, bool) {
    (format!("repo:{repo}"), false)
}

/// Runs `$body` (which may use the pooled connection `$c` and `?` on driver
/// errors) and waits for its result, at most the store's limit (or `$limit`):
/// after that the call fails as [`StoreError::Unavailable`] and the
/// connection, which may still be waiting for an answer, is closed rather than
/// pooled.
macro_rules! read_conn {
    ($store:expr, |$c:ident| $body:block) => {
        read_conn!($store, pool, |$c| $body)
    };
    ($store:expr, $pool:ident, |$c:ident| $body:block) => {{
        let store: &PgMetaStore = $store;
        read_conn!(store, $pool, store.limit, |$c| $body)
    }};
    ($store:expr, $pool:ident, $limit:expr, |$c:ident| $body:block) => {{
        let store: &PgMetaStore = $store;
        let limit: Option<std::time::Duration> = $limit;
        async {
            let deadline = limit.map(|l| tokio::time::Instant::now() + l);
            let late = || $crate::store::pg::timed_out(limit.unwrap_or_default());
            let client = $crate::store::pg::within(deadline, store.$pool.get())
                .await
                .ok_or_else(late)?
                .map_err($crate::store::pg::pool_error)?;
            let $c = &client;
            let result: Option<Result<_, tokio_postgres::Error>> =
                $crate::store::pg::within(deadline, async { $body }).await;
            match result {
                Some(r) => Ok::<_, StoreError>(r?),
                None => {
                    drop(deadpool_postgres::Object::take(client));
                    Err(late())
                }
            }
        }
        .await
    }};
}
pub(super) use read_conn;

/// Why one attempt of a write transaction ended: the database (maybe worth
/// another attempt) or the store's own verdict.
enum Attempt {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        Attempt::Db(e)
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        Attempt::Store(e)
    }
}

impl PgMetaStore {
    /// Connects to `url` (`postgres://USER:PASS@HOST:PORT/DB`, libpq's keys in
    /// the query, e.g. `?sslmode=disable`) and brings the schema up to date.
    pub fn open(url: &str) -> Result<PgMetaStore, StoreError> {
        Self::open_with(url, None)
    }

    /// Like [`PgMetaStore::open`], but in the schema `schema` (created if
    /// needed): a private namespace per test, so tests share one server.
    pub fn open_in_schema(url: &str, schema: &str) -> Result<PgMetaStore, StoreError> {
        Self::open_with(url, Some(schema))
    }

    /// Records times from `clock` instead of the system clock (tests move it by
    /// hand rather than sleep).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn open_with(url: &str, schema: Option<&str>) -> Result<PgMetaStore, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                StoreError::Postgres(format!("bad PostgreSQL URL: {e}"))
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // A connection whose peer went silent (a host gone, a partition) is
        // noticed within about a minute instead of the kernel's ~15.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(STATEMENT_TIMEOUT);
        }
        if config.get_keepalives_idle() == tokio_postgres::Config::new().get_keepalives_idle() {
            config.keepalives_idle(Duration::from_secs(30));
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(10));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if let Some(s) = schema {
            if !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::Postgres(format!("bad schema name {s:?}")));
            }
            config.options(format!("-c search_path={s}"));
        }
        // The statement timeout the URL's options set, else ours.
        let statement_timeout = match config.get_options().and_then(statement_timeout) {
            Some(given) => given,
            None => {
                let options = format!(
                    "{} -c statement_timeout={}ms",
                    config.get_options().unwrap_or(""),
                    STATEMENT_TIMEOUT.as_millis()
                );
                config.options(options.trim());
                Some(STATEMENT_TIMEOUT)
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("marina-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres(format!("cannot start the database runtime: {e}")))?;
        let mut uploads_config = config.clone();
        let options = format!(
            "{} -c synchronous_commit=off",
            config.get_options().unwrap_or("")
        );
        uploads_config.options(options.trim());
        let pool = |config: tokio_postgres::Config, size: usize| -> Result<Pool, StoreError> {
            let manager = Manager::from_config(
                config,
                tls()?,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(30)))
                .create_timeout(Some(Duration::from_secs(10)))
                .build()
                .map_err(|e| StoreError::Postgres(e.to_string()))
        };
        let store = PgMetaStore {
            pool: pool(config, POOL_SIZE)?,
            uploads_pool: pool(uploads_config, UPLOADS_POOL_SIZE)?,
            runtime: Some(runtime),
            clock: Arc::new(SystemClock),
            limit: statement_timeout
                .filter(|t| !t.is_zero())
                .map(|t| t + ANSWER_MARGIN),
        };
        store.run(async {
            let client = store.pool.get().await.map_err(pool_error)?;
            if let Some(s) = schema {
                client
                    .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                    .await?;
            }
            migrate(&client).await
        })?;
        Ok(store)
    }

    /// Runs `fut` to completion on the calling thread and waits for it. The
    /// connections' I/O and timers belong to the store's own runtime (entered
    /// here, driven by its threads), so this works from any thread: the
    /// registry's blocking pool, a plain thread, or (briefly, at start) an
    /// async task, where a runtime's own `block_on` would refuse.
    fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        let _context = self
            .runtime
            .as_ref()
            .expect("runtime lives until drop")
            .enter();
        futures_executor::block_on(fut)
    }
}

/// TLS to the database, used as the URL's `sslmode` asks (`prefer`, the
/// default, falls back to plain TCP when the server offers no TLS): the web's
/// root certificates, plus those of the PEM file `PGSSLROOTCERT` names (libpq's
/// variable) for a private CA.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use tokio_rustls::rustls;
    let bad = |e: String| StoreError::Postgres(format!("TLS to the database: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = std::env::var_os("PGSSLROOTCERT") {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let pem = std::fs::read(&path).map_err(|e| {
            bad(format!(
                "cannot read PGSSLROOTCERT {}: {e}",
                path.to_string_lossy()
            ))
        })?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("PGSSLROOTCERT: {e:?}")))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The `statement_timeout` that libpq-style `options` (`-c
/// statement_timeout=5s`, `--statement_timeout=5000`) set: `Some(None)` when
/// it is there but not understood, `None` when it is not there.
fn statement_timeout(options: &str) -> Option<Option<Duration>> {
    let at = options.rfind("statement_timeout=")?;
    let value = options[at + "statement_timeout=".len()..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches(['\'', '"']);
    let digits = value.len() - value.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = value.split_at(digits);
    let Ok(n) = number.parse::<u64>() else {
        return Some(None);
    };
    // PostgreSQL's units for time settings; a bare number is milliseconds.
    let millis = match unit.trim() {
        "" | "ms" => Some(n),
        "us" => Some(n / 1000),
        "s" => n.checked_mul(1000),
        "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    };
    Some(millis.map(Duration::from_millis))
}

async fn migrate(client: &deadpool_postgres::Client) -> Result<(), StoreError> {
    // A migration may rewrite big tables: no statement timeout for it (the
    // setting goes back to the connection's own at the end).
    client.batch_execute("SET statement_timeout = 0").await?;
    let migrated = migrate_steps(client).await;
    let reset = client.batch_execute("RESET statement_timeout").await;
    migrated?;
    Ok(reset?)
}

async fn migrate_steps(client: &deadpool_postgres::Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS marina_schema (version INTEGER NOT NULL)")
            .await?;
        let version: i32 = match client
            .query_opt("SELECT version FROM marina_schema", &[])
            .await?
        {
            Some(row) => row.get(0),
            None => {
                client
                    .execute("INSERT INTO marina_schema (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        let current = schema::MIGRATIONS.len() as i32;
        if version > current {
            return Err(StoreError::Schema(format!(
                "the database schema is at version {version}, newer than this build's {current}"
            )));
        }
        for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            client.batch_execute("BEGIN").await?;
            let applied = async {
                client.batch_execute(step).await?;
                client
                    .execute(
                        "UPDATE marina_schema SET version = $1",
                        &[&((i + 1) as i32)],
                    )
                    .await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            if let Err(e) = applied {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e.into());
            }
        }
        Ok(())
    }
    .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    result
}

/// Queries through each connection's statement cache: a statement is parsed
/// once per connection, then only bound and executed.
pub(super) trait Cached {
    /// The prepared statement for `sql`.
    async fn statement(
        &self,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error>;

    /// `query` with a cached statement.
    async fn cq(
        &self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error>;
    /// `query_opt` with a cached statement.
    async fn cq_opt(
        &self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error>;
    /// `query_one` with a cached statement.
    async fn cq_one(
        &self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error>;
    /// `execute` with a cached statement.
    async fn cx(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64, tokio_postgres::Error>;
}

macro_rules! cached_queries {
    ($t:ty) => {
        impl Cached for $t {
            async fn statement(
                &self,
                sql: &str,
            ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
                self.prepare_cached(sql).await
            }
            async fn cq(
                &self,
                sql: &str,
                p: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, tokio_postgres::Error> {
                let s = self.statement(sql).await?;
                self.query(&s, p).await
            }
            async fn cq_opt(
                &self,
                sql: &str,
                p: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, tokio_postgres::Error> {
                let s = self.statement(sql).await?;
                self.query_opt(&s, p).await
            }
            async fn cq_one(
                &self,
                sql: &str,
                p: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, tokio_postgres::Error> {
                let s = self.statement(sql).await?;
                self.query_one(&s, p).await
            }
            async fn cx(
                &self,
                sql: &str,
                p: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, tokio_postgres::Error> {
                let s = self.statement(sql).await?;
                self.execute(&s, p).await
            }
        }
    };
}
cached_queries!(deadpool_postgres::ClientWrapper);
cached_queries!(deadpool_postgres::Transaction<'_>);

fn size(row: &Row, i: usize) -> u64 {
    row.get::<_, i64>(i) as u64
}

/// The id of `name`, creating the repository if needed.
async fn ensure_repo(
    tx: &deadpool_postgres::Transaction<'_>,
    name: &str,
) -> Result<i64, tokio_postgres::Error> {
    // One round trip: the row just made, or the one already there.
    Ok(tx
        .cq_one(
            "WITH made AS (INSERT INTO repos (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id) \
             SELECT id FROM made UNION ALL SELECT id FROM repos WHERE name = $1 LIMIT 1",
            &[&name],
        )
        .await?
        .get(0))
}

/// Drops a manifest's bytes once no repository holds the manifest.
async fn forget_unused_content(
    tx: &deadpool_postgres::Transaction<'_>,
    digest: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.cx(
        "DELETE FROM manifest_content WHERE digest = $1 \
         AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = $1)",
        &[&digest],
    )
    .await?;
    Ok(())
}

/// A keyset cursor PostgreSQL can take. Stored keys never hold NUL (names,
/// tags and digests exclude it; pushes refuse it elsewhere), and for such keys
/// `key > "a\0b"` is `key > "a"`, so a cursor is cut at its first NUL.
pub(super) fn cursor(s: &str) -> &str {
    s.split('\0').next().unwrap_or("")
}

/// What retention may delete of manifest `m` (`$2`: the cutoff); see the SQLite
/// store's `EXPENDABLE`.
const EXPENDABLE: &str = "m.pushed_at <= $2 \
     AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest) \
     AND NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo_id = m.repo_id AND x.ref = m.digest) \
     AND (m.subject IS NULL OR NOT EXISTS \
          (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject))";

#[async_trait::async_trait]
impl MetadataStore for PgMetaStore {
    async fn link_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        present: super::Probe<'_, bool>,
    ) -> Result<(), StoreError> {
        // The digest shared with other links; the collector takes it
        // exclusively for its commit and the removal of the bytes.
        write_tx!(self, vec![(digest.to_string(), true)], |tx| {
            if !present().await {
                return Err(StoreError::Vanished(digest.to_string()).into());
            }
            let repo_id = ensure_repo(&tx, repo).await?;
            let now = self.clock.now_millis();
            tx.cx(
                "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
                &[&digest, &(size as i64), &now],
            )
            .await?;
            tx.cx(
                "INSERT INTO repo_blobs (repo_id, digest, linked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (repo_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
                &[&repo_id, &digest, &now],
            )
            .await?;
            Ok(())
        })
    }

    async fn blob_in_repo(&self, repo: &str, digest: &str) -> Result<Option<u64>, StoreError> {
        read_conn!(self, |c| {
            Ok(c.cq_opt(
                "SELECT b.size FROM repo_blobs rb JOIN repos r ON r.id = rb.repo_id \
                     JOIN blobs b ON b.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2",
                &[&repo, &digest],
            )
            .await?
            .map(|r| size(&r, 0)))
        })
    }

    async fn blob_anywhere(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        read_conn!(self, |c| {
            Ok(c.cq_opt(
                "SELECT b.size FROM blobs b WHERE b.digest = $1 \
                     AND EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = b.digest)",
                &[&digest],
            )
            .await?
            .map(|r| size(&r, 0)))
        })
    }

    async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let n = tx
                .cx(
                    "DELETE FROM repo_blobs WHERE digest = $2 \
                     AND repo_id = (SELECT id FROM repos WHERE name = $1)",
                    &[&repo, &digest],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn prune_links(&self, cutoff: i64, limit: u32) -> Result<u64, StoreError> {
        write_tx!(self, |tx| {
            let n = tx
                .cx(
                    "DELETE FROM repo_blobs WHERE (repo_id, digest) IN ( \
                       SELECT rb.repo_id, rb.digest FROM repo_blobs rb \
                       WHERE rb.linked_at <= $1 AND NOT EXISTS ( \
                         SELECT 1 FROM manifest_refs r WHERE r.ref = rb.digest AND r.repo_id = rb.repo_id) \
                       LIMIT $2)",
                    &[&cutoff, &i64::from(limit)],
                )
                .await?;
            Ok(n)
        })
    }

    async fn unreferenced_blobs(&self, limit: u32) -> Result<Vec<(String, u64)>, StoreError> {
        read_conn!(self, |c| {
            let rows = c
                    .cq(
                        "SELECT b.digest, b.size FROM blobs b \
                         WHERE NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = b.digest) \
                         AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.ref = b.digest) LIMIT $1",
                        &[&i64::from(limit)],
                    )
                    .await?;
            Ok(rows.iter().map(|r| (r.get(0), size(r, 1))).collect())
        })
    }

    async fn collect_blob(
        &self,
        digest: &str,
        remove: super::Probe<'_, std::io::Result<()>>,
    ) -> Result<bool, StoreError> {
        // The exclusive lock fences every writer that could give the blob a
        // link or a reference (they hold it shared), so READ COMMITTED sees all
        // that matters and cannot fail to serialize; the bytes go inside the
        // transaction, and a failed removal rolls the forgetting back.
        write_tx!(
            self,
            IsolationLevel::ReadCommitted,
            vec![(digest.to_string(), false)],
            |tx| {
                let n = tx
                    .cx(
                        "DELETE FROM blobs WHERE digest = $1 \
                     AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = $1) \
                     AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.ref = $1)",
                        &[&digest],
                    )
                    .await?;
                if n == 0 {
                    return Ok(false);
                }
                remove()
                    .await
                    .map_err(|e| StoreError::Postgres(format!("removing blob {digest}: {e}")))?;
                Ok(true)
            }
        )
    }

    async fn collect_unrecorded(
        &self,
        digest: &str,
        remove: super::Probe<'_, std::io::Result<()>>,
    ) -> Result<bool, StoreError> {
        let recorded = read_conn!(self, |c| {
            let rows = c
                .cq("SELECT 1 FROM blobs WHERE digest = $1", &[&digest])
                .await?;
            Ok(!rows.is_empty())
        })?;
        if recorded {
            return Ok(false);
        }
        // As in `collect_blob`: the exclusive lock on the digest fences the
        // writer that would record it.
        write_tx!(
            self,
            IsolationLevel::ReadCommitted,
            vec![(digest.to_string(), false)],
            |tx| {
                let rows = tx
                    .cq("SELECT 1 FROM blobs WHERE digest = $1", &[&digest])
                    .await?;
                if !rows.is_empty() {
                    return Ok(false);
                }
                remove()
                    .await
                    .map_err(|e| StoreError::Postgres(format!("removing blob {digest}: {e}")))?;
                Ok(true)
            }
        )
    }

    async fn tags_by_age(&self, repo: &str) -> Result<Vec<(String, i64)>, StoreError> {
        read_conn!(self, |c| {
            let rows = c
                .cq(
                    "SELECT t.name, t.pushed_at FROM tags t JOIN repos r ON r.id = t.repo_id \
                         WHERE r.name = $1 ORDER BY t.pushed_at DESC, t.name",
                    &[&repo],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    async fn delete_tag_pushed_at(
        &self,
        repo: &str,
        tag: &str,
        pushed_at: i64,
    ) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let n = tx
                .cx(
                    "DELETE FROM tags WHERE name = $2 AND pushed_at = $3 \
                     AND repo_id = (SELECT id FROM repos WHERE name = $1)",
                    &[&repo, &tag, &pushed_at],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn expendable_untagged(
        &self,
        repo: &str,
        cutoff: i64,
    ) -> Result<Vec<String>, StoreError> {
        read_conn!(self, |c| {
            let rows = c
                .cq(
                    &format!(
                        "SELECT m.digest FROM manifests m JOIN repos r ON r.id = m.repo_id \
                             WHERE r.name = $1 AND {EXPENDABLE} ORDER BY m.pushed_at, m.digest"
                    ),
                    &[&repo, &cutoff],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    async fn delete_expendable(
        &self,
        repo: &str,
        digest: &str,
        cutoff: i64,
    ) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let n = tx
                .cx(
                    &format!(
                        "DELETE FROM manifests m WHERE m.digest = $3 \
                         AND m.repo_id = (SELECT id FROM repos WHERE name = $1) AND {EXPENDABLE}"
                    ),
                    &[&repo, &cutoff, &digest],
                )
                .await?;
            if n > 0 {
                forget_unused_content(&tx, digest).await?;
            }
            Ok(n > 0)
        })
    }

    async fn repository_usage(&self, repo: &str) -> Result<RepositoryUsage, StoreError> {
        read_conn!(self, |c| {
            let r = c
                    .cq_one(
                        "WITH me AS (SELECT id FROM repos WHERE name = $1), \
                         held AS (SELECT digest FROM repo_blobs WHERE repo_id = (SELECT id FROM me) \
                                  UNION SELECT ref FROM manifest_refs WHERE repo_id = (SELECT id FROM me)) \
                         SELECT COALESCE(SUM(b.size), 0)::BIGINT, \
                                COALESCE(SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM repo_blobs o \
                                      WHERE o.digest = b.digest AND o.repo_id <> (SELECT id FROM me)) \
                                  AND NOT EXISTS (SELECT 1 FROM manifest_refs x \
                                      WHERE x.ref = b.digest AND x.repo_id <> (SELECT id FROM me)) \
                                THEN b.size ELSE 0 END), 0)::BIGINT \
                         FROM blobs b WHERE b.digest IN (SELECT digest FROM held)",
                        &[&repo],
                    )
                    .await?;
            Ok(RepositoryUsage {
                bytes: size(&r, 0),
                unique_bytes: size(&r, 1),
            })
        })
    }

    async fn namespace_usage(&self, namespace: &str) -> Result<NamespaceUsage, StoreError> {
        read_conn!(self, |c| {
            let r = c
                    .cq_one(
                        "WITH under AS (SELECT id FROM repos \
                             WHERE $1::TEXT = '' OR left(name, length($1::TEXT) + 1) = $1::TEXT || '/'), \
                         held AS (SELECT digest FROM repo_blobs WHERE repo_id IN (SELECT id FROM under) \
                                  UNION SELECT ref FROM manifest_refs WHERE repo_id IN (SELECT id FROM under)) \
                         SELECT (SELECT COUNT(*) FROM under u WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = u.id) \
                                    OR EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.repo_id = u.id)), \
                                COUNT(*), COALESCE(SUM(b.size), 0)::BIGINT \
                         FROM blobs b WHERE b.digest IN (SELECT digest FROM held)",
                        &[&namespace],
                    )
                    .await?;
            Ok(NamespaceUsage {
                repositories: size(&r, 0),
                blobs: size(&r, 1),
                bytes: size(&r, 2),
            })
        })
    }

    async fn prune_repositories(&self) -> Result<u64, StoreError> {
        write_tx!(self, |tx| {
            let empty = "SELECT id FROM repos r WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id) \
                         AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.repo_id = r.id)";
            tx.cx(
                &format!("DELETE FROM repo_namespaces WHERE repo_id IN ({empty})"),
                &[],
            )
            .await?;
            let n = tx
                .cx(&format!("DELETE FROM repos WHERE id IN ({empty})"), &[])
                .await?;
            Ok(n)
        })
    }

    async fn garbage_preview(&self, cutoff: i64) -> Result<GarbagePreview, StoreError> {
        read_conn!(self, |c| {
            let links: i64 = c
                    .cq_one(
                        "SELECT COUNT(*) FROM repo_blobs rb WHERE rb.linked_at <= $1 AND NOT EXISTS ( \
                           SELECT 1 FROM manifest_refs r WHERE r.ref = rb.digest AND r.repo_id = rb.repo_id)",
                        &[&cutoff],
                    )
                    .await?
                    .get(0);
            let r = c
                    .cq_one(
                        "SELECT COUNT(*), COALESCE(SUM(b.size), 0)::BIGINT FROM blobs b \
                         WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.ref = b.digest) \
                         AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.digest = b.digest AND rb.linked_at > $1)",
                        &[&cutoff],
                    )
                    .await?;
            Ok(GarbagePreview {
                links: links as u64,
                blobs: size(&r, 0),
                bytes: size(&r, 1),
            })
        })
    }

    async fn totals(&self) -> Result<Option<StoreTotals>, StoreError> {
        read_conn!(self, pool, Some(COUNT_TIMEOUT), |c| {
            let b = c
                .cq_one(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0)::BIGINT FROM blobs",
                    &[],
                )
                .await?;
            let m = c.cq_one("SELECT COUNT(*) FROM manifests", &[]).await?;
            Ok(Some(StoreTotals {
                blobs: size(&b, 0),
                blob_bytes: size(&b, 1),
                manifests: size(&m, 0),
            }))
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let version: i32 = read_conn!(self, pool, Some(PING_TIMEOUT), |c| {
            Ok(c.cq_one("SELECT version FROM marina_schema", &[])
                .await?
                .get(0))
        })?;
        let current = schema::MIGRATIONS.len() as i32;
        if version == current {
            Ok(())
        } else {
            Err(StoreError::Schema(format!(
                "the database schema is at version {version}, this build needs {current}"
            )))
        }
    }

    async fn repo_exists(&self, repo: &str) -> Result<bool, StoreError> {
        read_conn!(self, |c| {
            Ok(c.cq_opt("SELECT 1 FROM repos WHERE name = $1", &[&repo])
                .await?
                .is_some())
        })
    }

    async fn put_manifest(&self, m: &NewManifest<'_>) -> Result<(), StoreError> {
        // Everything it references, locked shared: the collector cannot forget
        // one of them meanwhile; and the repository, exclusively: pushes into
        // one repository (which update the same rows) queue instead of failing
        // to serialize.
        let mut locks: Vec<(String, bool)> =
            m.references.iter().map(|d| (d.clone(), true)).collect();
        locks.push(repo_lock(m.repo));
        write_tx!(self, locks, |tx| {
            let repo_id = ensure_repo(&tx, m.repo).await?;
            // What is required and absent, in one query, in the order given.
            let missing: Vec<String> = tx
                .cq(
                    "SELECT d FROM unnest($2::TEXT[]) WITH ORDINALITY AS b(d, i) \
                     WHERE NOT EXISTS (SELECT 1 FROM repo_blobs WHERE repo_id = $1 AND digest = b.d) \
                     UNION ALL \
                     SELECT d FROM unnest($3::TEXT[]) WITH ORDINALITY AS c(d, i) \
                     WHERE NOT EXISTS (SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = c.d)",
                    &[&repo_id, &m.required_blobs, &m.required_manifests],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !missing.is_empty() {
                return Err(StoreError::MissingReferences(missing).into());
            }
            let now = self.clock.now_millis();
            tx.cx(
                "INSERT INTO manifest_content (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                &[&m.digest, &m.bytes],
            )
            .await?;
            tx.cx(
                "INSERT INTO manifests (repo_id, digest, media_type, artifact_type, size, subject, annotations, pushed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (repo_id, digest) DO UPDATE SET media_type = excluded.media_type, pushed_at = excluded.pushed_at",
                &[
                    &repo_id,
                    &m.digest,
                    &m.media_type,
                    &m.artifact_type,
                    &(m.bytes.len() as i64),
                    &m.subject,
                    &m.annotations,
                    &now,
                ],
            )
            .await?;
            if !m.tags.is_empty() {
                tx.cx(
                    "INSERT INTO tags (repo_id, name, digest, pushed_at) \
                     SELECT $1, t, $3, $4 FROM unnest($2::TEXT[]) AS t \
                     ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, pushed_at = excluded.pushed_at",
                    &[&repo_id, &m.tags, &m.digest, &now],
                )
                .await?;
            }
            if !m.references.is_empty() {
                tx.cx(
                    "INSERT INTO manifest_refs (repo_id, digest, ref) \
                     SELECT DISTINCT $1::BIGINT, $2::TEXT, r FROM unnest($3::TEXT[]) AS r ON CONFLICT DO NOTHING",
                    &[&repo_id, &m.digest, &m.references],
                )
                .await?;
            }
            listing::index_for_listing(
                &tx,
                repo_id,
                m.repo,
                m.digest,
                m.annotations.as_deref(),
                now,
            )
            .await?;
            Ok(())
        })
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        let sql = if reference.contains(':') {
            "SELECT m.digest, m.media_type, mc.bytes FROM manifests m JOIN repos r ON r.id = m.repo_id \
             JOIN manifest_content mc ON mc.digest = m.digest WHERE r.name = $1 AND m.digest = $2"
        } else {
            "SELECT m.digest, m.media_type, mc.bytes FROM tags t JOIN repos r ON r.id = t.repo_id \
             JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest \
             JOIN manifest_content mc ON mc.digest = m.digest WHERE r.name = $1 AND t.name = $2"
        };
        read_conn!(self, |c| {
            Ok(c.cq_opt(sql, &[&repo, &reference])
                .await?
                .map(|r| ManifestRecord {
                    digest: r.get(0),
                    media_type: r.get(1),
                    bytes: r.get(2),
                }))
        })
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let n = tx
                .cx(
                    "DELETE FROM manifests WHERE digest = $2 AND repo_id = (SELECT id FROM repos WHERE name = $1)",
                    &[&repo, &digest],
                )
                .await?;
            if n > 0 {
                forget_unused_content(&tx, digest).await?;
            }
            Ok(n > 0)
        })
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let n = tx
                .cx(
                    "DELETE FROM tags WHERE name = $2 AND repo_id = (SELECT id FROM repos WHERE name = $1)",
                    &[&repo, &tag],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        n: u32,
    ) -> Result<Option<Page<String>>, StoreError> {
        let last = cursor(last.unwrap_or(""));
        read_conn!(self, |c| {
            let Some(id) = c
                .cq_opt("SELECT id FROM repos WHERE name = $1", &[&repo])
                .await?
            else {
                return Ok(None);
            };
            let id: i64 = id.get(0);
            let rows = c
                .cq(
                    "SELECT name FROM tags WHERE repo_id = $1 AND name > $2 ORDER BY name LIMIT $3",
                    &[&id, &last, &(i64::from(n) + 1)],
                )
                .await?;
            Ok(Some(page(rows.iter().map(|r| r.get(0)).collect(), n)))
        })
    }

    async fn referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: u32,
    ) -> Result<Page<ReferrerRecord>, StoreError> {
        let last = cursor(last.unwrap_or(""));
        if artifact_type.is_some_and(|t| t.contains('\0')) {
            // Nothing stored holds a NUL (pushes refuse it), and PostgreSQL
            // text cannot carry one to compare.
            return Ok(page(Vec::new(), n));
        }
        read_conn!(self, |c| {
            let rows = c
                    .cq(
                        "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM manifests m \
                         WHERE m.repo_id = (SELECT id FROM repos WHERE name = $1) AND m.subject = $2 AND m.digest > $3 \
                         AND ($4::TEXT IS NULL OR m.artifact_type = $4::TEXT) ORDER BY m.digest LIMIT $5",
                        &[&repo, &subject, &last, &artifact_type, &(i64::from(n) + 1)],
                    )
                    .await?;
            let items = rows
                .iter()
                .map(|r| ReferrerRecord {
                    digest: r.get(0),
                    media_type: r.get(1),
                    size: r.get(2),
                    artifact_type: r.get(3),
                    annotations: r.get(4),
                })
                .collect();
            Ok(page(items, n))
        })
    }

    async fn catalog(&self, last: Option<&str>, n: u32) -> Result<CatalogPage, StoreError> {
        let last = cursor(last.unwrap_or(""));
        read_conn!(self, |c| {
            let rows = c
                    .cq(
                        "SELECT r.name FROM repos r WHERE r.name > $1 \
                         AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id) ORDER BY r.name LIMIT $2",
                        &[&last, &(i64::from(n) + 1)],
                    )
                    .await?;
            Ok(page(rows.iter().map(|r| r.get(0)).collect(), n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_of_the_url_options_is_read_with_postgres_units() {
        let secs = |s: u64| Some(Some(Duration::from_secs(s)));
        assert_eq!(statement_timeout("-c statement_timeout=5s"), secs(5));
        assert_eq!(statement_timeout("-c statement_timeout=2min"), secs(120));
        assert_eq!(
            statement_timeout("--statement_timeout=1500"),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            statement_timeout("-c search_path=x -c statement_timeout=1h -c work_mem=4MB"),
            secs(3600)
        );
        assert_eq!(statement_timeout("-c statement_timeout=0"), secs(0));
        // There, but not a duration this store understands.
        assert_eq!(statement_timeout("-c statement_timeout=soon"), Some(None));
        assert_eq!(statement_timeout("-c search_path=x"), None);
    }
}
