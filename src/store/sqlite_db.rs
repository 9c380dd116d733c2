//! A SQLite database as the embedded stores use it: one writing connection
//! with group commit ([`GroupWriter`]) and a small pool of read-only
//! connections, all in WAL mode so reads never wait for the writer. The
//! metadata store and the small-blob pack each keep one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::wal_frames;

use super::group_commit::{GroupWriter, IdleConnection};
use super::StoreError;

/// Read-only connections per database.
pub(crate) const READERS: usize = 4;

/// Pages the write-ahead log may hold before a commit copies them into the
/// database (SQLite's default is 1,000). A page written by many commits in
/// between (the last leaf of a table appended to, an interior page, the
/// pointer map) is copied once per checkpoint, so rarer checkpoints copy and
/// sync less: 20,000 pages (a log of about 80 MiB) gave 1.18–1.32× more small
/// uploads a second than 1,000, side by side, and a lower p99 (3.2–3.7 ms
/// against 6.8–9.6), but a checkpoint stalls the writes behind it longer: the slowest of
/// 40,000 uploads took 48 ms against 14. The log file keeps its largest size
/// between checkpoints; garbage collection empties it.
const CHECKPOINT_PAGES: i64 = 20_000;

/// The writing connection and the pool of reading ones (see the module
/// documentation).
pub(crate) struct SqliteDb {
    writer: Arc<GroupWriter>,
    readers: Mutex<ReaderPool>,
    reader_ready: Condvar,
    /// False in memory: the writer serves reads too.
    pooled: bool,
}

/// The idle read connections, and how many reads wait for one (a read gives
/// its connection back with a wake-up only when one does: a wake-up is a
/// system call).
#[derive(Default)]
struct ReaderPool {
    idle: Vec<Connection>,
    waiting: usize,
}

/// The file beside the database at `db` with `suffix` (`-wal`, `-shm`).
pub(crate) fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// A read connection taken from the pool; dropping it gives it back, also when the
/// read panicked, so the pool never shrinks (a read-only connection holds no
/// transaction a panic could leave open: its statements reset when dropped).
struct Lent<'a> {
    db: &'a SqliteDb,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut pool = self.db.readers.lock().unwrap_or_else(|e| e.into_inner());
            pool.idle.push(conn);
            if pool.waiting > 0 {
                self.db.reader_ready.notify_one();
            }
        }
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database at `path`, gives free pages
    /// back incrementally, and lets `migrate` bring its schema up to date on
    /// the writing connection before the readers open.
    pub(crate) fn open(
        path: &Path,
        migrate: impl FnOnce(&mut Connection) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        // The writer's log frames go down in one write each (`wal_frames`).
        let mut writer = if wal_frames::registered() {
            Connection::open_with_flags_and_vfs(path, OpenFlags::default(), wal_frames::VFS_NAME)?
        } else {
            Connection::open(path)?
        };
        // Deletions give pages back (`PRAGMA incremental_vacuum`); a database
        // made before this setting is rewritten once to take it.
        let auto_vacuum: i64 = writer.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
        if auto_vacuum != 2 {
            writer.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
            writer.execute_batch("VACUUM")?;
        }
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer)?;
        migrate(&mut writer)?;
        // The writer's savepoint journals in memory: each write runs in a
        // savepoint of a shared transaction, and on disk the original of every
        // page it changed went to a temporary file first (nearly half the
        // writer's `pwrite`s in a burst of small pushes). In memory each is
        // dropped as its write is released; every write is small (garbage
        // collection works in batches). Set after the migrations, which may
        // rewrite whole tables, and not on the readers, so that neither a
        // migration nor a large sort grows the process.
        writer.pragma_update(None, "temp_store", "MEMORY")?;
        writer.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&r)?;
            readers.push(r);
        }
        Ok(SqliteDb {
            writer: Arc::new(GroupWriter::new(writer, Some(beside(path, "-wal")))),
            readers: Mutex::new(ReaderPool {
                idle: readers,
                waiting: 0,
            }),
            reader_ready: Condvar::new(),
            pooled: true,
        })
    }

    /// A private database in memory: one connection serves reads and writes,
    /// since an in-memory database is per connection.
    pub(crate) fn in_memory(
        migrate: impl FnOnce(&mut Connection) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let mut writer = Connection::open_in_memory()?;
        configure(&writer)?;
        migrate(&mut writer)?;
        Ok(SqliteDb {
            writer: Arc::new(GroupWriter::new(writer, None)),
            readers: Mutex::new(ReaderPool::default()),
            reader_ready: Condvar::new(),
            pooled: false,
        })
    }

    /// Runs a read on a pooled read-only connection (the writer's, in memory).
    /// A read from inside a write of this database runs on the writing
    /// connection, and so sees what that write changed so far.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let f = match self.writer.in_own_write(f) {
            Ok(result) => return Ok(result?),
            Err(f) => f,
        };
        if !self.pooled {
            let conn = self.writer.idle();
            return Ok(f(&conn)?);
        }
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(c) = pool.idle.pop() {
                    break c;
                }
                pool.waiting += 1;
                pool = self
                    .reader_ready
                    .wait(pool)
                    .unwrap_or_else(|e| e.into_inner());
                pool.waiting -= 1;
            }
        };
        let lent = Lent {
            db: self,
            conn: Some(conn),
        };
        let result = f(lent.conn.as_ref().expect("lent until dropped"));
        drop(lent);
        Ok(result?)
    }

    /// Runs `f` as one atomic write, committed before this returns, and with
    /// `durable` synced too (perhaps together with concurrent writes).
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
        durable: bool,
    ) -> Result<T, StoreError> {
        self.writer.write(f, durable)
    }

    /// [`SqliteDb::write`] for async code: queued to the database's writer
    /// thread, so the caller needs no blocking thread (see [`GroupWriter`]).
    pub(crate) async fn write_queued<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        durable: bool,
    ) -> Result<T, StoreError> {
        self.writer.write_queued(f, durable).await
    }

    /// The writing connection with no transaction open, for statements that
    /// cannot run inside one.
    pub(crate) fn idle(&self) -> IdleConnection<'_> {
        self.writer.idle()
    }

    /// Gives the database's free pages back to the filesystem and empties its
    /// write-ahead log.
    pub(crate) fn compact(&self) -> Result<(), StoreError> {
        let conn = self.idle();
        // Each step of `incremental_vacuum` frees one page: step until done.
        let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut steps = vacuum.query([])?;
        while steps.next()?.is_some() {}
        drop(steps);
        drop(vacuum);
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional()?;
        Ok(())
    }

    /// Idle read connections (tests check the pool never shrinks).
    #[cfg(test)]
    pub(crate) fn idle_readers(&self) -> (usize, usize) {
        let pool = self.readers.lock().unwrap();
        (pool.idle.len(), pool.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(conn: &mut Connection) -> Result<(), StoreError> {
        conn.execute_batch("CREATE TABLE t (x INTEGER)")?;
        Ok(())
    }

    fn count(db: &SqliteDb) -> i64 {
        db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .unwrap()
    }

    /// A read made from inside a write (a link probing the blob it names) sees
    /// what that write changed, on a file and in memory (where it once would
    /// have waited for its own write's connection).
    #[test]
    fn a_read_inside_a_write_sees_that_write() {
        let dir = tempfile::tempdir().unwrap();
        for db in [
            SqliteDb::open(&dir.path().join("t.db"), table).unwrap(),
            SqliteDb::in_memory(table).unwrap(),
        ] {
            let seen = db
                .write(
                    |c| {
                        c.execute("INSERT INTO t VALUES (1)", [])?;
                        Ok(count(&db))
                    },
                    true,
                )
                .unwrap();
            assert_eq!(seen, 1);
            assert_eq!(count(&db), 1, "committed");
        }
    }

    /// Thousands of pages stay in the log (SQLite's own default would have
    /// copied them out at 1,000), and compacting empties it.
    #[test]
    fn the_log_is_checkpointed_in_large_steps_and_compacting_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = SqliteDb::open(&path, |c| {
            c.execute_batch("CREATE TABLE b (x BLOB)")?;
            Ok(())
        })
        .unwrap();
        // 3 writes of 1,000 rows of 3,000 bytes: one page each.
        for _ in 0..3 {
            db.write(
                |c| {
                    c.execute(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                         INSERT INTO b SELECT zeroblob(3000) FROM n",
                        [],
                    )?;
                    Ok(())
                },
                true,
            )
            .unwrap();
        }
        let wal = beside(&path, "-wal");
        let logged = std::fs::metadata(&wal).unwrap().len();
        assert!(logged > 3_000 * 4_096, "the log holds {logged} bytes");
        db.compact().unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    }
}
