//! SQLite's own file layer (the `unix` VFS) with one change: each frame of
//! the write-ahead log goes to the file in one write instead of two.
//!
//! SQLite writes a log frame as its 24-byte header, then its page: two
//! `pwrite`s into the same pages of the page cache, each a system call with the
//! filesystem's per-write work. A burst of small pushes writes several frames
//! per upload, and the writer thread spent a large part of its time in those
//! calls. Here a log file holds a frame header back until the next call on
//! that file; when the call writes the bytes right after the header (the
//! frame's page), header and page go down together. Any other call (another
//! write, a read, a sync, a size, a lock, a file control, closing) sends the
//! header first, so every call SQLite makes sees the file as it would without
//! this layer. Only the writing connection opens its database through it
//! ([`VFS_NAME`]); readers never write the log.
//!
//! Nothing held back is ever visible to another connection either: SQLite
//! writes a frame's page right after its header, and publishes frames to
//! readers (in the shared-memory index) only after the commit frame's page is
//! written, so a commit never ends with a header held. A crash with a header
//! held loses that header and a page that was never written, as a crash
//! between SQLite's two writes would.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name the writing connection opens its database with.
pub(crate) const VFS_NAME: &CStr = c"marina-joined-frames";

/// Bytes of a log frame's header (SQLite's `WAL_FRAME_HDRSIZE`).
pub(super) const FRAME_HEADER: usize = 24;

/// Bytes of the log's own header (`WAL_HDRSIZE`): frames start after it.
pub(super) const LOG_HEADER: i64 = 32;

/// Registers the VFS (once per process); false if SQLite refused it, and
/// then connections open with SQLite's default.
pub(crate) fn registered() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        // SAFETY: the default VFS lives as long as the process; the copy is
        // leaked so it does too, as `sqlite3_vfs_register` requires.
        unsafe {
            let real = ffi::sqlite3_vfs_find(ptr::null());
            if real.is_null() {
                return false;
            }
            REAL.store(real, Ordering::Release);
            let mut vfs = *real;
            vfs.szOsFile = INNER_AT as c_int + (*real).szOsFile;
            vfs.pNext = ptr::null_mut();
            vfs.zName = VFS_NAME.as_ptr();
            vfs.xOpen = Some(open);
            ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0) == ffi::SQLITE_OK
        }
    })
}

/// The default VFS that does the work.
static REAL: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// Frame headers held back until the call after them (see the module
/// documentation); independent of SQLite, so that it can be tested alone.
#[derive(Default)]
struct FrameJoiner {
    /// A header written but not yet sent, and where it goes.
    held: Option<(i64, [u8; FRAME_HEADER])>,
    /// A header and its page side by side, reused from write to write.
    joined: Vec<u8>,
}

/// Where a [`FrameJoiner`] sends bytes: a write at an offset, answering
/// SQLite's result code.
type Sink<'a> = &'a mut dyn FnMut(&[u8], i64) -> c_int;

impl FrameJoiner {
    /// Writes `data` at `offset` through `sink`, holding a frame header back.
    fn write(&mut self, data: &[u8], offset: i64, sink: Sink<'_>) -> c_int {
        if let Some((at, header)) = self.held.take() {
            if at + FRAME_HEADER as i64 == offset {
                self.joined.clear();
                self.joined.extend_from_slice(&header);
                self.joined.extend_from_slice(data);
                return sink(&self.joined, at);
            }
            let rc = sink(&header, at);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        match <[u8; FRAME_HEADER]>::try_from(data) {
            Ok(header) if offset >= LOG_HEADER => {
                self.held = Some((offset, header));
                ffi::SQLITE_OK
            }
            _ => sink(data, offset),
        }
    }

    /// Sends a held header, if any.
    fn flush(&mut self, sink: Sink<'_>) -> c_int {
        match self.held.take() {
            Some((at, header)) => sink(&header, at),
            None => ffi::SQLITE_OK,
        }
    }
}

/// A log file opened through this VFS: SQLite's file, its methods ours.
#[repr(C)]
struct LogFile {
    base: ffi::sqlite3_file,
    joiner: *mut FrameJoiner,
}

/// Where the default VFS's file sits in the block SQLite allocates.
const INNER_AT: usize = std::mem::size_of::<LogFile>().next_multiple_of(16);

/// The default VFS's file inside `f`.
///
/// # Safety
/// `f` must be a file of this VFS.
unsafe fn inner(f: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    f.cast::<u8>().add(INNER_AT).cast()
}

/// The default VFS's methods for the file inside `f`.
///
/// # Safety
/// `f` must be an open log file of this VFS.
unsafe fn methods(f: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*inner(f)).pMethods
}

/// Sends what the log file `f` holds back; SQLite's result code.
///
/// # Safety
/// `f` must be an open log file of this VFS.
unsafe fn flush(f: *mut ffi::sqlite3_file) -> c_int {
    let joiner = &mut *(*f.cast::<LogFile>()).joiner;
    let inner = inner(f);
    let write = methods(f).xWrite.expect("a file writes");
    joiner.flush(&mut |bytes, at| write(inner, bytes.as_ptr().cast(), bytes.len() as c_int, at))
}

unsafe extern "C" fn open(
    _: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    f: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real = REAL.load(Ordering::Acquire);
    let real_open = (*real).xOpen.expect("a VFS opens files");
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Anything but a log is the default VFS's file as it is (the block
        // is larger than it needs).
        return real_open(real, name, f, flags, out_flags);
    }
    (*f).pMethods = ptr::null();
    let rc = real_open(real, name, inner(f), flags, out_flags);
    if !(*inner(f)).pMethods.is_null() {
        // SQLite closes a file whose methods are set, even after a failed open.
        (*f.cast::<LogFile>()).joiner = Box::into_raw(Box::default());
        (*f).pMethods = &LOG_METHODS;
    }
    rc
}

/// The methods of a log file: each sends what is held back, then does what
/// the default VFS does.
static LOG_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    let sent = flush(f);
    let rc = methods(f).xClose.expect("a file closes")(inner(f));
    drop(Box::from_raw((*f.cast::<LogFile>()).joiner));
    if sent != ffi::SQLITE_OK {
        sent
    } else {
        rc
    }
}

unsafe extern "C" fn write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let joiner = &mut *(*f.cast::<LogFile>()).joiner;
    let inner = inner(f);
    let real_write = methods(f).xWrite.expect("a file writes");
    let data = std::slice::from_raw_parts(data.cast::<u8>(), amount as usize);
    joiner.write(data, offset, &mut |bytes, at| {
        real_write(inner, bytes.as_ptr().cast(), bytes.len() as c_int, at)
    })
}

/// Defines a method that sends what is held back, then forwards its call.
macro_rules! after_flush {
    ($name:ident, $method:ident $(, $arg:ident: $ty:ty)*) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let rc = flush(f);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            methods(f).$method.expect(concat!("a file has ", stringify!($method)))(inner(f) $(, $arg)*)
        }
    };
}

after_flush!(read, xRead, buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64);
after_flush!(truncate, xTruncate, size: ffi::sqlite3_int64);
after_flush!(sync, xSync, flags: c_int);
after_flush!(file_size, xFileSize, size: *mut ffi::sqlite3_int64);
after_flush!(lock, xLock, level: c_int);
after_flush!(unlock, xUnlock, level: c_int);
after_flush!(check_reserved_lock, xCheckReservedLock, out: *mut c_int);
after_flush!(file_control, xFileControl, op: c_int, arg: *mut c_void);
after_flush!(sector_size, xSectorSize);
after_flush!(device_characteristics, xDeviceCharacteristics);

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `writes` through a joiner (then a flush) and returns the writes
    /// that reached the file.
    fn sent(writes: &[(i64, Vec<u8>)]) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut sink = |b: &[u8], at: i64| {
            out.push((at, b.to_vec()));
            ffi::SQLITE_OK
        };
        let mut j = FrameJoiner::default();
        for (at, bytes) in writes {
            assert_eq!(j.write(bytes, *at, &mut sink), ffi::SQLITE_OK);
        }
        assert_eq!(j.flush(&mut sink), ffi::SQLITE_OK);
        out
    }

    #[test]
    fn a_header_and_the_page_after_it_are_one_write() {
        let (h1, p1, h2, p2) = (vec![1; 24], vec![2; 4096], vec![3; 24], vec![4; 4096]);
        let frame = |h: &[u8], p: &[u8]| [h, p].concat();
        assert_eq!(
            sent(&[
                (0, vec![9; 32]),
                (32, h1.clone()),
                (56, p1.clone()),
                (4152, h2.clone()),
                (4176, p2.clone()),
            ]),
            [
                (0, vec![9; 32]),
                (32, frame(&h1, &p1)),
                (4152, frame(&h2, &p2))
            ]
        );
    }

    #[test]
    fn a_header_not_followed_by_its_page_is_sent_alone_and_first() {
        // Headers rewritten in place (SQLite recomputing checksums), then a
        // new frame elsewhere; and a header left at the end.
        let out = sent(&[
            (32, vec![1; 24]),
            (4152, vec![2; 24]),
            (8272, vec![3; 24]),
            (8296, vec![4; 100]),
            (9000, vec![5; 24]),
        ]);
        assert_eq!(
            out,
            [
                (32, vec![1; 24]),
                (4152, vec![2; 24]),
                (8272, [vec![3; 24], vec![4; 100]].concat()),
                (9000, vec![5; 24]),
            ]
        );
    }

    #[test]
    fn the_logs_own_header_and_other_sizes_are_never_held() {
        let mut out = Vec::new();
        let mut sink = |b: &[u8], at: i64| {
            out.push((at, b.len()));
            ffi::SQLITE_OK
        };
        let mut j = FrameJoiner::default();
        j.write(&[0; 24], 0, &mut sink);
        j.write(&[0; 4096], 4000, &mut sink);
        assert_eq!(out, [(0, 24), (4000, 4096)]);
        assert!(j.held.is_none());
    }

    /// What a crash leaves (the files copied while the writer is open, its
    /// log not checkpointed) reads back whole with SQLite's default VFS:
    /// every commit, none torn.
    #[test]
    fn a_log_written_through_it_is_the_log_sqlite_writes() {
        assert!(registered());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let flags = rusqlite::OpenFlags::default();
        let conn = rusqlite::Connection::open_with_flags_and_vfs(&path, flags, VFS_NAME).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL, d TEXT UNIQUE NOT NULL);",
        )
        .unwrap();
        for batch in 0..100 {
            let tx = conn.unchecked_transaction().unwrap();
            for i in 0..20 {
                let k = batch * 20 + i;
                tx.execute(
                    "INSERT INTO t (k, v, d) VALUES (?1, randomblob(3000 + ?1), hex(randomblob(16)))",
                    [k],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("db-wal")).unwrap().len();
        assert!(wal > 2000 * 3000, "the log holds the rows ({wal} bytes)");
        let copy = tempfile::tempdir().unwrap();
        for name in ["db", "db-wal"] {
            std::fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
        }
        let plain = rusqlite::Connection::open(copy.path().join("db")).unwrap();
        let (rows, sum, check): (i64, i64, String) = plain
            .query_row(
                "SELECT count(*), sum(length(v) - 3000 - k), (SELECT integrity_check FROM pragma_integrity_check) FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((rows, sum, check.as_str()), (2000, 0, "ok"));
        drop(conn);
    }

    #[test]
    fn a_failed_send_of_a_held_header_fails_the_next_write() {
        let mut j = FrameJoiner::default();
        let mut fail = |_: &[u8], _: i64| ffi::SQLITE_IOERR_WRITE;
        assert_eq!(j.write(&[0; 24], 32, &mut fail), ffi::SQLITE_OK);
        assert_eq!(j.write(&[0; 10], 5000, &mut fail), ffi::SQLITE_IOERR_WRITE);
    }
}
