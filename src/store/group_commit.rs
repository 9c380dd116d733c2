//! SQLite's one writing connection, with group commit.
//!
//! Every write is durable before it returns, and writes that arrive together
//! share the work:
//! - A write runs in its own savepoint inside the transaction that is open
//!   (beginning one if none is), then lets go of the connection so the next
//!   write can join; whichever member of the batch comes back first commits
//!   the whole batch, and the others find it committed. A write that fails
//!   rolls back its own savepoint only; a commit that fails fails every member
//!   of its batch.
//! - A commit writes the write-ahead log without syncing it (`synchronous =
//!   NORMAL`, which still syncs around checkpoints). The log is synced after,
//!   outside the connection's lock, by one member for every batch committed
//!   so far; members whose batch that sync covers return without one. While a
//!   sync runs, the next batches commit, and the next sync covers them all.
//!
//! A write begun from inside another (on its thread, from its function, as
//! garbage collection removes a small blob's row while it forgets the blob)
//! joins it: it runs in a savepoint of its own inside the outer write, and is
//! committed, synced or rolled back with it.
//!
//! A write from async code is queued instead ([`GroupWriter::write_queued`]):
//! one thread per database takes every write queued meanwhile, runs each in
//! its savepoint, commits them together, syncs, and answers each. The caller
//! needs no blocking thread of its own, and the connection's lock is taken
//! once per batch rather than twice per write.
//!
//! Nobody returns before the commit and the sync that hold its changes, so a
//! reader on another connection never misses an acknowledged write, and a
//! power cut loses none. (Writes of state a power cut may lose, such as an
//! upload's progress, skip the wait for the sync; the next sync covers them.) A failed sync fails every write after it: the kernel
//! may have dropped what it could not write, so nothing is acknowledged again
//! until a restart.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::File;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, Weak};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

/// Failed batches remembered for members that look late.
const FAILED_KEPT: usize = 64;

thread_local! {
    /// The writer whose write function this thread is running, with its
    /// connection, while it runs: a write begun inside joins it.
    static WRITING: Cell<Option<(*const GroupWriter, *const Connection)>> =
        const { Cell::new(None) };
}

/// The connection and the state of its batches.
struct State {
    conn: Connection,
    /// The batch whose transaction is open, if any.
    open: Option<u64>,
    /// The last batch number handed out.
    last: u64,
    /// Every batch up to this one is finished (committed or failed).
    finished: u64,
    /// Recent batches that did not commit, and why.
    failed: VecDeque<(u64, BatchFailure)>,
}

/// Why a batch did not commit.
struct BatchFailure {
    why: String,
    /// The disk was full: its writes are answered as such (507, not 500).
    full: bool,
}

impl BatchFailure {
    /// The error each write of the batch gets.
    fn error(&self) -> StoreError {
        let why = format!("a database commit failed: {}", self.why);
        if self.full {
            StoreError::Full(why)
        } else {
            StoreError::Schema(why)
        }
    }
}

/// The error a write gets when its batch ended with `e`: the same kind.
fn shared(e: &StoreError) -> StoreError {
    if e.is_full() {
        StoreError::Full(e.to_string())
    } else {
        StoreError::Schema(e.to_string())
    }
}

/// The log's syncs.
struct Syncs {
    /// The write-ahead log's path; `None` for a database in memory.
    path: Option<PathBuf>,
    /// The log, once opened.
    wal: Option<File>,
    /// Every batch up to this one is on disk.
    synced: u64,
    /// Why a sync failed, once one has.
    broken: Option<String>,
}

/// Most queued writes one batch takes, so a steady stream of them still
/// commits (and answers) every so often.
const QUEUED_BATCH: usize = 256;

/// A write's function, type-erased for the queue.
type Job = Box<dyn FnOnce(&Connection) -> Result<Box<dyn Any + Send>, StoreError> + Send>;

/// How a queued write ended, for its caller.
type Reply = Result<Box<dyn Any + Send>, Failed>;

/// A queued write that did not land: an error, or its function's panic.
enum Failed {
    Store(StoreError),
    Panicked(Box<dyn Any + Send>),
}

/// A queued write that ran, waiting for its batch to land: what its
/// function did, whether it waits for the sync, and where it is answered.
type RanQueued = (Ran<Box<dyn Any + Send>>, bool, oneshot::Sender<Reply>);

/// A write waiting for the writer thread.
struct Queued {
    job: Job,
    durable: bool,
    reply: oneshot::Sender<Reply>,
}

/// The writing connection (see the module documentation).
pub(crate) struct GroupWriter {
    state: Mutex<State>,
    syncs: Mutex<Syncs>,
    /// The queue to the writer thread, started by the first queued write.
    queue: OnceLock<mpsc::Sender<Queued>>,
}

impl GroupWriter {
    /// Wraps the writing connection of the database whose write-ahead log is
    /// at `wal` (`None` in memory: nothing to sync).
    pub(crate) fn new(conn: Connection, wal: Option<PathBuf>) -> Self {
        GroupWriter {
            state: Mutex::new(State {
                conn,
                open: None,
                last: 0,
                finished: 0,
                failed: VecDeque::new(),
            }),
            syncs: Mutex::new(Syncs {
                path: wal,
                wal: None,
                synced: 0,
                broken: None,
            }),
            queue: OnceLock::new(),
        }
    }

    /// Runs `f` as one write on the writer thread, with the writes queued
    /// meanwhile, and returns once it is committed, and with `durable` once
    /// the log is synced through it. A panic in `f` reaches the caller.
    pub(crate) async fn write_queued<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        durable: bool,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |c| f(c).map(|v| Box::new(v) as Box<dyn Any + Send>));
        let queued = Queued {
            job,
            durable,
            reply,
        };
        let sent = self.queue.get_or_init(|| self.start_thread()).send(queued);
        let stopped = || StoreError::Schema("the database's writer thread stopped".to_string());
        if sent.is_err() {
            return Err(stopped());
        }
        match answer.await {
            Ok(Ok(v)) => match v.downcast::<T>() {
                Ok(v) => Ok(*v),
                Err(_) => unreachable!("a queued write answers with its own type"),
            },
            Ok(Err(Failed::Store(e))) => Err(e),
            Ok(Err(Failed::Panicked(p))) => resume_unwind(p),
            Err(_) => Err(stopped()),
        }
    }

    /// Starts the writer thread and returns its queue. The thread holds the
    /// writer weakly: it ends once the database is dropped (the queue with it).
    fn start_thread(self: &Arc<Self>) -> mpsc::Sender<Queued> {
        let (tx, rx) = mpsc::channel::<Queued>();
        let writer: Weak<GroupWriter> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("marina-sqlite-writer".to_string())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    jobs.extend(rx.try_iter().take(QUEUED_BATCH - 1));
                    match writer.upgrade() {
                        Some(w) => w.run_batch(jobs),
                        None => return,
                    }
                }
            });
        // Without a thread the queue's receiver is gone: every queued write
        // then fails, saying so.
        if let Err(e) = spawned {
            tracing::error!("could not start the database's writer thread: {e}");
        }
        tx
    }

    /// Runs queued writes as one batch: each in its savepoint, one commit, one
    /// sync if any asks for it; then answers each.
    fn run_batch(&self, jobs: Vec<Queued>) {
        let mut state = self.lock();
        let batch = match begin(&mut state) {
            Ok(b) => b,
            Err(e) => {
                for q in jobs {
                    let _ = q.reply.send(Err(Failed::Store(shared(&e))));
                }
                return;
            }
        };
        let mut ran = Vec::with_capacity(jobs.len());
        for q in jobs {
            let outcome = run_in_savepoint(self, &mut state, batch, q.job);
            ran.push((outcome, q.durable, q.reply));
        }
        if state.open == Some(batch) {
            commit(&mut state, batch);
        }
        let committed = settled(&state, batch);
        drop(state);
        let durable = ran.iter().any(|(_, durable, _)| *durable);
        // Writes that need no sync are answered before it.
        let (now, later): (Vec<_>, Vec<_>) = ran.into_iter().partition(|(_, d, _)| !d);
        answer(now, &committed);
        if durable {
            let synced = committed.and_then(|()| self.sync_through(batch));
            answer(later, &synced);
        }
    }

    /// Returns once the log is on disk up to `batch` (syncing it if no one
    /// has since).
    fn sync_through(&self, batch: u64) -> Result<(), StoreError> {
        let mut syncs = self.syncs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &syncs.broken {
            return Err(StoreError::Schema(format!(
                "an earlier sync of the database log failed ({why}); restart the server"
            )));
        }
        if syncs.synced >= batch {
            return Ok(());
        }
        // Everything committed so far is covered by this sync.
        let target = self.lock().finished;
        let Syncs { path, wal, .. } = &mut *syncs;
        let synced = match (&*path, wal) {
            (None, _) => Ok(()),
            (Some(_), Some(wal)) => wal.sync_data(),
            (Some(path), wal @ None) => File::open(path).and_then(|f| {
                let r = f.sync_data();
                *wal = Some(f);
                r
            }),
        };
        match synced {
            Ok(()) => {
                syncs.synced = target;
                Ok(())
            }
            Err(e) => {
                syncs.broken = Some(e.to_string());
                Err(StoreError::Schema(format!(
                    "syncing the database log failed: {e}"
                )))
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection with no transaction open (the open batch committed
    /// first): for statements that cannot run inside one.
    pub(crate) fn idle(&self) -> IdleConnection<'_> {
        let mut state = self.lock();
        if let Some(batch) = state.open {
            commit(&mut state, batch);
        }
        IdleConnection(state)
    }

    /// Runs `f` on the writing connection when this thread is inside a write
    /// function of this writer (so `f` sees that write's changes); gives `f`
    /// back otherwise.
    pub(crate) fn in_own_write<T, F: FnOnce(&Connection) -> T>(&self, f: F) -> Result<T, F> {
        match WRITING.with(Cell::get) {
            // SAFETY: as in `write`: the connection's lock is held further up
            // this very stack.
            Some((writer, conn)) if std::ptr::eq(writer, self) => Ok(f(unsafe { &*conn })),
            _ => Err(f),
        }
    }

    /// Runs `f` as one write and returns once it is committed, and with
    /// `durable` once the log is synced through it.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
        durable: bool,
    ) -> Result<T, StoreError> {
        if let Some((writer, conn)) = WRITING.with(Cell::get) {
            if std::ptr::eq(writer, self) {
                // SAFETY: `WRITING` names this writer's connection only while
                // this thread runs a write function of it, which holds the
                // connection's lock further up this very stack.
                return nested(unsafe { &*conn }, f);
            }
        }
        let mut state = self.lock();
        let batch = begin(&mut state)?;
        let outcome = run_in_savepoint(self, &mut state, batch, f);
        drop(state);
        // Writes waiting for the connection join the batch here.
        let mut state = self.lock();
        if state.open == Some(batch) {
            commit(&mut state, batch);
        }
        let committed = settled(&state, batch);
        drop(state);
        let done = match committed {
            Ok(()) if durable => self.sync_through(batch),
            other => other,
        };
        match outcome {
            Ran::Value(v) => done.map(|()| v),
            Ran::Failed(e) => Err(e),
            Ran::Panicked(p) => resume_unwind(p),
        }
    }
}

/// The open batch, or a new one (its transaction begun).
fn begin(state: &mut State) -> Result<u64, StoreError> {
    if let Some(b) = state.open {
        return Ok(b);
    }
    state.conn.execute_batch("BEGIN IMMEDIATE")?;
    state.last += 1;
    state.open = Some(state.last);
    Ok(state.last)
}

/// Whether `batch`, finished, committed.
fn settled(state: &State, batch: u64) -> Result<(), StoreError> {
    match state.failed.iter().find(|(b, _)| *b == batch) {
        Some((_, failure)) => Err(failure.error()),
        None if state.finished >= batch => Ok(()),
        None => Err(StoreError::Schema(
            "a database commit was not recorded".to_string(),
        )),
    }
}

/// Answers queued writes whose batch ended with `landed`.
fn answer(ran: Vec<RanQueued>, landed: &Result<(), StoreError>) {
    for (outcome, _, reply) in ran {
        let reply_with = match (outcome, landed) {
            (Ran::Value(v), Ok(())) => Ok(v),
            (Ran::Value(_), Err(e)) => Err(Failed::Store(shared(e))),
            (Ran::Failed(e), _) => Err(Failed::Store(e)),
            (Ran::Panicked(p), _) => Err(Failed::Panicked(p)),
        };
        let _ = reply.send(reply_with);
    }
}

/// The connection, held with no transaction open.
pub(crate) struct IdleConnection<'a>(MutexGuard<'a, State>);

impl std::ops::Deref for IdleConnection<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

/// What one write's function did.
enum Ran<T> {
    Value(T),
    Failed(StoreError),
    Panicked(Box<dyn std::any::Any + Send>),
}

/// Runs `f` in a savepoint of the open batch; on failure only the savepoint
/// is rolled back, unless SQLite rolled back the whole transaction (then the
/// batch has failed for everyone in it).
fn run_in_savepoint<T>(
    writer: &GroupWriter,
    state: &mut State,
    batch: u64,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Ran<T> {
    if let Err(e) = state.conn.execute_batch("SAVEPOINT write") {
        return Ran::Failed(e.into());
    }
    let conn: &Connection = &state.conn;
    let writing = || {
        let _restore = Writing(WRITING.with(|w| w.replace(Some((writer, conn)))));
        f(conn)
    };
    let ran = match catch_unwind(AssertUnwindSafe(writing)) {
        Ok(Ok(v)) => match state.conn.execute_batch("RELEASE write") {
            Ok(()) => return Ran::Value(v),
            Err(e) => Ran::Failed(e.into()),
        },
        Ok(Err(e)) => Ran::Failed(e),
        Err(p) => Ran::Panicked(p),
    };
    if state.conn.is_autocommit() {
        // SQLite ended the transaction itself (an I/O error, a full disk).
        let full = matches!(&ran, Ran::Failed(e) if e.is_full());
        fail(
            state,
            batch,
            "the transaction was rolled back by an error in it",
            full,
        );
    } else if state
        .conn
        .execute_batch("ROLLBACK TO write; RELEASE write")
        .is_err()
    {
        let _ = state.conn.execute_batch("ROLLBACK");
        fail(
            state,
            batch,
            "a failed write could not be undone alone",
            false,
        );
    }
    ran
}

/// Puts back what `WRITING` held before a write function ran (also when it
/// panics).
struct Writing(Option<(*const GroupWriter, *const Connection)>);

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(self.0));
    }
}

/// A write begun inside another's function: its own savepoint in the outer
/// write's transaction, rolled back alone if it fails.
fn nested<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT nested")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE nested")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO nested; RELEASE nested")?;
            Err(e)
        }
    }
}

/// Commits the open batch; on failure rolls it back and fails its members.
fn commit(state: &mut State, batch: u64) {
    match state.conn.execute_batch("COMMIT") {
        Ok(()) => {
            state.open = None;
            state.finished = batch;
        }
        Err(e) => {
            if !state.conn.is_autocommit() {
                let _ = state.conn.execute_batch("ROLLBACK");
            }
            let why = e.to_string();
            let full = StoreError::Sqlite(e).is_full();
            fail(state, batch, &why, full);
        }
    }
}

/// Marks the batch finished and failed.
fn fail(state: &mut State, batch: u64, why: &str, full: bool) {
    state.open = None;
    state.finished = batch;
    if state.failed.len() == FAILED_KEPT {
        state.failed.pop_front();
    }
    let why = why.to_string();
    state.failed.push_back((batch, BatchFailure { why, full }));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    fn writer(dir: &std::path::Path) -> GroupWriter {
        let conn = Connection::open(dir.join("db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        GroupWriter::new(conn, Some(dir.join("db-wal")))
    }

    fn reader(dir: &std::path::Path) -> Connection {
        Connection::open(dir.join("db")).unwrap()
    }

    /// Inserts key `k` as one write.
    fn insert(w: &GroupWriter, k: &str, durable: bool) {
        w.write(
            |c| Ok(c.execute("INSERT INTO t VALUES (?1, 1)", [k])?),
            durable,
        )
        .unwrap();
    }

    /// The keys of `t`, in order.
    fn keys(c: &Connection) -> Vec<String> {
        c.prepare("SELECT k FROM t ORDER BY k")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_commit_that_found_the_disk_full_says_so_to_every_write_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        let disk_full = || {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full".into()),
            ))
        };
        // The write that ran into it, and the others answered with its batch.
        let mut state = w.lock();
        fail(&mut state, 7, &disk_full().to_string(), true);
        fail(&mut state, 8, "disk I/O error", false);
        assert!(settled(&state, 7).unwrap_err().is_full());
        assert!(!settled(&state, 8).unwrap_err().is_full());
        drop(state);
        let (tx, rx) = oneshot::channel();
        let value: Box<dyn Any + Send> = Box::new(());
        answer(vec![(Ran::Value(value), true, tx)], &Err(disk_full()));
        match rx.blocking_recv().unwrap() {
            Err(Failed::Store(e)) => assert!(e.is_full(), "{e}"),
            _ => panic!("the batch's failure reaches its writes"),
        }
    }

    #[test]
    fn a_write_is_visible_to_other_connections_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        let r = reader(dir.path());
        for i in 0..5 {
            insert(&w, &format!("k{i}"), true);
            assert_eq!(count(&r), i + 1);
        }
    }

    #[test]
    fn a_failed_write_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        insert(&w, "a", true);
        let dup = w.write(
            |c| {
                c.execute("INSERT INTO t VALUES ('b', 1)", [])?;
                Ok(c.execute("INSERT INTO t VALUES ('a', 2)", [])?)
            },
            true,
        );
        assert!(dup.is_err(), "a duplicate key fails");
        let r = reader(dir.path());
        assert_eq!(count(&r), 1, "its first insert was undone too");
        // A panic is undone as well, and reaches the caller.
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            w.write::<()>(
                |c| {
                    c.execute("INSERT INTO t VALUES ('c', 1)", []).unwrap();
                    panic!("boom")
                },
                true,
            )
        }));
        assert!(panicked.is_err());
        insert(&w, "d", false);
        assert_eq!(keys(&r), ["a", "d"]);
    }

    #[test]
    fn concurrent_writes_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(writer(dir.path()));
        let threads = 8;
        let per_thread = 50;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (w, start) = (w.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..per_thread {
                        let insert =
                            |c: &Connection| {
                                Ok(c.execute(
                                    "INSERT INTO t VALUES (?1, ?2)",
                                    (format!("{t}-{i}"), i),
                                )?)
                            };
                        // Durable and transient writes mixed.
                        w.write(insert, i % 2 == 0).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(count(&reader(dir.path())), (threads * per_thread) as i64);
        let state = w.lock();
        assert!(state.open.is_none(), "no transaction left open");
        assert!(state.failed.is_empty());
        let finished = state.finished;
        drop(state);
        let syncs = w.syncs.lock().unwrap();
        assert!(syncs.synced > 0 && syncs.synced <= finished);
        assert!(syncs.wal.is_some() && syncs.broken.is_none());
        drop(syncs);
        // A durable write syncs everything committed before it too.
        insert(&w, "last", true);
        let finished = w.lock().finished;
        assert_eq!(w.syncs.lock().unwrap().synced, finished);
    }

    #[test]
    fn a_write_begun_inside_another_joins_it() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        // Joined: both rows land with the outer write (without the join this
        // would wait forever for the connection the outer write holds).
        w.write(
            |c| {
                c.execute("INSERT INTO t VALUES ('outer', 1)", [])?;
                insert(&w, "inner", true);
                Ok(())
            },
            true,
        )
        .unwrap();
        assert_eq!(count(&reader(dir.path())), 2);
        // A failing inner write undoes itself only.
        w.write(
            |c| {
                c.execute("INSERT INTO t VALUES ('kept', 1)", [])?;
                let inner = w.write(
                    |c| {
                        c.execute("INSERT INTO t VALUES ('undone', 1)", [])?;
                        Err::<(), _>(StoreError::Schema("inner fails".into()))
                    },
                    true,
                );
                assert!(inner.is_err());
                Ok(())
            },
            true,
        )
        .unwrap();
        let r = reader(dir.path());
        assert_eq!(count(&r), 3);
        // A failing outer write takes its inner writes with it.
        let outer = w.write(
            |_| {
                insert(&w, "gone", true);
                Err::<(), _>(StoreError::Schema("outer fails".into()))
            },
            true,
        );
        assert!(outer.is_err());
        assert_eq!(count(&r), 3);
        // Outside any write, a write is its own again.
        insert(&w, "alone", true);
        assert_eq!(count(&r), 4);
    }

    #[test]
    fn a_transient_write_is_committed_but_not_waited_for_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        insert(&w, "a", true);
        let synced = w.syncs.lock().unwrap().synced;
        insert(&w, "b", false);
        assert_eq!(count(&reader(dir.path())), 2, "committed");
        assert_eq!(w.syncs.lock().unwrap().synced, synced, "no sync for it");
    }

    #[test]
    fn statements_that_need_no_transaction_get_an_idle_connection() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        insert(&w, "a", true);
        let idle = w.idle();
        assert!(idle.is_autocommit());
        idle.execute_batch("VACUUM").unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_share_commits_and_are_visible_when_they_return() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(writer(dir.path()));
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let w = w.clone();
                let path = dir.path().to_path_buf();
                tokio::spawn(async move {
                    let k = format!("q{i}");
                    let key = k.clone();
                    let insert = move |c: &Connection| {
                        c.execute("INSERT INTO t VALUES (?1, 1)", [&key])?;
                        Ok(i)
                    };
                    // Durable and transient writes mixed; each answers with its own value.
                    assert_eq!(w.write_queued(insert, i % 2 == 0).await.unwrap(), i);
                    let seen: i64 = reader(&path)
                        .query_row("SELECT count(*) FROM t WHERE k = ?1", [&k], |r| r.get(0))
                        .unwrap();
                    assert_eq!(seen, 1, "{k} is committed when its write returns");
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(count(&reader(dir.path())), 64);
        assert!(
            w.syncs.lock().unwrap().synced >= 1,
            "durable writes were synced"
        );
    }

    #[tokio::test]
    async fn writes_queued_while_the_writer_is_busy_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(writer(dir.path()));
        insert(&w, "first", true);
        let before = w.lock().finished;
        // Another write holds the connection while ten are queued.
        let (held, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let holder = {
            let (w, held, release) = (w.clone(), held.clone(), release.clone());
            std::thread::spawn(move || {
                let _state = w.lock();
                held.wait();
                release.wait();
            })
        };
        held.wait();
        let writes = (0..10).map(|i| {
            let key = format!("k{i}");
            w.write_queued(
                move |c| Ok(c.execute("INSERT INTO t VALUES (?1, 1)", [key])?),
                true,
            )
        });
        let mut all = std::pin::pin!(futures_util::future::join_all(writes));
        // One poll queues all ten (each sends before it waits); then the
        // connection is let go.
        assert!(futures_util::poll!(all.as_mut()).is_pending());
        release.wait();
        for r in all.await {
            r.unwrap();
        }
        holder.join().unwrap();
        let batches = w.lock().finished - before;
        // The thread may have taken the first before it met the held lock.
        assert!(
            (1..=2).contains(&batches),
            "{batches} commits for ten writes"
        );
        assert_eq!(count(&reader(dir.path())), 11);
    }

    #[tokio::test]
    async fn a_failed_or_panicking_queued_write_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(writer(dir.path()));
        let ok = |k: &'static str| {
            move |c: &Connection| Ok(c.execute("INSERT INTO t VALUES (?1, 1)", [k])?)
        };
        w.write_queued(ok("a"), true).await.unwrap();
        let dup = w
            .write_queued(
                |c| {
                    c.execute("INSERT INTO t VALUES ('b', 1)", [])?;
                    Ok(c.execute("INSERT INTO t VALUES ('a', 2)", [])?)
                },
                true,
            )
            .await;
        assert!(dup.is_err(), "a duplicate key fails");
        let w2 = w.clone();
        let panicked = tokio::spawn(async move {
            w2.write_queued::<()>(
                |c| {
                    c.execute("INSERT INTO t VALUES ('c', 1)", []).unwrap();
                    panic!("boom")
                },
                true,
            )
            .await
        })
        .await;
        assert!(
            panicked.unwrap_err().is_panic(),
            "the panic reaches the caller"
        );
        // The writer thread lives on, and a write begun inside a queued one joins it.
        let inner = w.clone();
        w.write_queued(
            move |c| {
                c.execute("INSERT INTO t VALUES ('d', 1)", [])?;
                inner.write(
                    |c| Ok(c.execute("INSERT INTO t VALUES ('e', 1)", [])?),
                    true,
                )
            },
            true,
        )
        .await
        .unwrap();
        assert_eq!(keys(&reader(dir.path())), ["a", "d", "e"]);
    }

    #[tokio::test]
    async fn the_writer_thread_ends_with_its_database() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(writer(dir.path()));
        w.write_queued(
            |c| Ok(c.execute("INSERT INTO t VALUES ('a', 1)", [])?),
            true,
        )
        .await
        .unwrap();
        let weak = Arc::downgrade(&w);
        drop(w);
        // The thread holds the writer only while it runs a batch.
        for _ in 0..100 {
            if weak.upgrade().is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            weak.upgrade().is_none(),
            "the writer (and its connection) was dropped"
        );
    }
}
