//! A SQLite database as the embedded stores use it: one writing connection
//! with group commit ([`GroupWriter`]) and a small pool of read-only
//! connections, all in WAL mode so reads never wait for the writer. The
//! metadata store and the small-blob pack each keep one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::group_commit::{GroupWriter, IdleConnection};
use super::wal_frames::{self, FRAME_HEADER, LOG_HEADER};
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
/// between checkpoints; garbage collection empties it, unless it is written out
/// in advance ([`SqliteDb::preallocate_log`]), when it stays at that size.
const CHECKPOINT_PAGES: i64 = 20_000;

/// Extends the file at `path` with zeros up to `target` bytes and syncs it; a
/// longer file is left as it is. On failure the file is cut back to its
/// length before.
fn zero_fill(path: &Path, target: u64) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    let before = file.metadata()?.len();
    if before >= target {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    let filled = (|| {
        let mut at = before;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            at += n as u64;
        }
        file.sync_all()
    })();
    if filled.is_err() {
        let _ = file.set_len(before);
    }
    filled
}

/// The writing connection and the pool of reading ones (see the module
/// documentation).
pub(crate) struct SqliteDb {
    writer: Arc<GroupWriter>,
    readers: Mutex<ReaderPool>,
    reader_ready: Condvar,
    /// False in memory: the writer serves reads too.
    pooled: bool,
    /// The log's path, for a database on disk.
    log: Option<PathBuf>,
    /// The log is kept written out to its full size ([`SqliteDb::preallocate_log`]).
    log_preallocated: AtomicBool,
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
            log: Some(beside(path, "-wal")),
            log_preallocated: AtomicBool::new(false),
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
            log: None,
            log_preallocated: AtomicBool::new(false),
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
    /// write-ahead log: truncated, or, when it is kept written out to its full
    /// size, restarted from its beginning.
    pub(crate) fn compact(&self) -> Result<(), StoreError> {
        let conn = self.idle();
        // Each step of `incremental_vacuum` frees one page: step until done.
        let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut steps = vacuum.query([])?;
        while steps.next()?.is_some() {}
        drop(steps);
        drop(vacuum);
        let mode = if self.log_preallocated.load(Ordering::Relaxed) {
            "RESTART"
        } else {
            "TRUNCATE"
        };
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
            .optional()?;
        Ok(())
    }

    /// Writes the log (`-wal`) out with zeros to the size it reaches between
    /// two checkpoints, and keeps it at that size, so that the log's syncs
    /// overwrite blocks the file already has. A sync that grows a file also
    /// commits the filesystem's metadata (the file's size, its new blocks):
    /// 195 µs against 130 µs per sync on this machine's ext4, measured with 32 KiB
    /// writes. Zeros are never taken for frames: a frame counts only if its
    /// salt and checksum match the log's header. What is already in the log
    /// stays; only the space after it is written, under SQLite's write lock,
    /// so that no other connection (or process) appends meanwhile. Returns
    /// false, leaving the log as it was, when the disk has no room for it.
    pub(crate) fn preallocate_log(&self) -> Result<bool, StoreError> {
        let Some(path) = &self.log else {
            return Ok(false);
        };
        let conn = self.idle();
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let target =
            LOG_HEADER as u64 + CHECKPOINT_PAGES as u64 * (page as u64 + FRAME_HEADER as u64);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let written = zero_fill(path, target);
        conn.execute_batch("COMMIT")?;
        let kept = match written {
            Ok(()) => true,
            // No log yet (nothing was ever written), or no room for it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => false,
            Err(e) => return Err(StoreError::Schema(format!("cannot write out the log: {e}"))),
        };
        if kept {
            // A log that outgrew it (one very large write) is cut back to it
            // when it next restarts.
            conn.pragma_update(None, "journal_size_limit", target as i64)?;
        }
        self.log_preallocated.store(kept, Ordering::Relaxed);
        Ok(kept)
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
        for _ in 0..3 {
            thousand_rows(&db);
        }
        let wal = beside(&path, "-wal");
        let logged = std::fs::metadata(&wal).unwrap().len();
        assert!(logged > 3_000 * 4_096, "the log holds {logged} bytes");
        db.compact().unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    }

    /// Writes one batch of 1,000 rows of 3,000 bytes (a page each) to `b`.
    fn thousand_rows(db: &SqliteDb) {
        db.write(
            |c| {
                c.execute(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                     INSERT INTO b SELECT randomblob(3000) FROM n",
                    [],
                )?;
                Ok(())
            },
            true,
        )
        .unwrap();
    }

    /// Rows and integrity of a copy of the database and its log taken now,
    /// opened with SQLite's own file layer: what a crash at this point leaves.
    fn crash_image(path: &Path) -> (i64, String) {
        let copy = tempfile::tempdir().unwrap();
        for suffix in ["", "-wal"] {
            let name = format!("t.db{suffix}");
            std::fs::copy(path.with_file_name(&name), copy.path().join(&name)).unwrap();
        }
        let c = Connection::open(copy.path().join("t.db")).unwrap();
        c.query_row(
            "SELECT count(*), (SELECT integrity_check FROM pragma_integrity_check) FROM b",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }

    #[test]
    fn a_log_written_out_in_advance_keeps_its_size_and_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let open = || {
            SqliteDb::open(&path, |c| {
                c.execute_batch("CREATE TABLE IF NOT EXISTS b (x BLOB)")?;
                Ok(())
            })
            .unwrap()
        };
        let db = open();
        let wal = beside(&path, "-wal");
        // Frames already in the log stay when it is written out after them.
        thousand_rows(&db);
        assert!(db.preallocate_log().unwrap());
        let full = 32 + 20_000 * (4_096 + 24);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), full);
        assert_eq!(crash_image(&path), (1000, "ok".to_string()));
        for _ in 0..3 {
            thousand_rows(&db);
        }
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            full,
            "the log grew instead of being overwritten"
        );
        assert_eq!(crash_image(&path), (4000, "ok".to_string()));
        // Compacting restarts the log rather than cutting it, and writes
        // after it land in it as before.
        db.compact().unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), full);
        thousand_rows(&db);
        assert_eq!(crash_image(&path), (5000, "ok".to_string()));
        drop(db);
        let again = open();
        let rows: i64 = again
            .read(|c| c.query_row("SELECT count(*) FROM b", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(rows, 5000);
    }
}
