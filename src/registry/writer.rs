//! Hashes a request body and writes it into a staging area, in large buffers, on
//! the blocking pool, with the hash and the write running side by side.
//!
//! Request bodies arrive in frames of a few KiB to a few hundred KiB. The async side
//! only gathers them into buffers of [`WRITE_BUFFER`] bytes; each full buffer is
//! hashed by one blocking task and then written by another, so while buffer `n` is
//! hashed, buffer `n - 1` is written and buffer `n + 1` is received: on two or more
//! cores the three run in parallel. No blocking thread waits on the network (a task
//! starts only when its buffer is full), and the tokio workers never hash.
//!
//! The hash and the staging area move from task to task, so each is used by one
//! thread at a time and comes back in order. Written buffers are filled again: a
//! body of any size uses at most four buffers.

use std::io;

use tokio::task::JoinHandle;

use crate::oci::Hasher;
use crate::store::Staging;

/// Size of the buffers handed to the hash and write tasks.
pub(crate) const WRITE_BUFFER: usize = 1 << 20;

/// The first buffer of a body starts this small and doubles up to [`WRITE_BUFFER`],
/// so a small body takes a small buffer.
const FIRST_BUFFER: usize = 64 << 10;

/// What a task hands back: its tool (hash or staging area), the buffer, and for a
/// write, how it went.
type Done<T> = (T, Vec<u8>, io::Result<()>);

/// One stage of the pipeline: its tool, or the task that has it.
enum Stage<T> {
    Ready(T),
    Busy(JoinHandle<Done<T>>),
}

impl<T: Send + 'static> Stage<T> {
    /// Waits for the task, if any; returns the tool and what the task handed back.
    async fn ready(self) -> (T, Option<(Vec<u8>, io::Result<()>)>) {
        match self {
            Stage::Ready(tool) => (tool, None),
            Stage::Busy(task) => match task.await {
                Ok((tool, buf, result)) => (tool, Some((buf, result))),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            },
        }
    }

    /// Starts `job` on the blocking pool with the tool and a buffer.
    fn start<F>(tool: T, buf: Vec<u8>, job: F) -> Self
    where
        F: FnOnce(&mut T, &[u8]) -> io::Result<()> + Send + 'static,
    {
        Stage::Busy(tokio::task::spawn_blocking(move || {
            let mut tool = tool;
            let result = job(&mut tool, &buf);
            (tool, buf, result)
        }))
    }
}

/// The outcome of a body: the staging area, the hash of every byte pushed (written
/// or not), the bytes appended, and the write error that stopped the writing.
pub(crate) struct Written {
    /// The staging area, holding the bytes appended.
    pub staging: Box<dyn Staging>,
    /// The hash, fed every byte pushed (before a write error, if one stopped it).
    pub hasher: Hasher,
    /// Bytes appended to the staging area.
    pub written: u64,
    /// The first write error; nothing is written after it.
    pub error: Option<io::Error>,
}

/// How the writes went, and the buffers they gave back.
#[derive(Default)]
struct Tally {
    written: u64,
    error: Option<io::Error>,
    /// Written buffers, to be filled again.
    spare: Vec<Vec<u8>>,
}

impl Tally {
    /// Records a finished write, if any, and keeps its buffer.
    fn record(&mut self, done: Option<(Vec<u8>, io::Result<()>)>) {
        if let Some((buf, result)) = done {
            match result {
                Ok(()) => self.written += buf.len() as u64,
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
            self.keep(buf);
        }
    }

    /// Keeps a buffer to fill again.
    fn keep(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.spare.push(buf);
    }
}

fn hash_job(hasher: &mut Hasher, buf: &[u8]) -> io::Result<()> {
    hasher.update(buf);
    Ok(())
}

fn write_job(staging: &mut Box<dyn Staging>, buf: &[u8]) -> io::Result<()> {
    staging.append(buf)
}

/// Gathers a body into buffers and runs them through the hash and write stages.
/// Each method takes the writer and gives it back, as the stages' tools move in
/// and out of it.
pub(crate) struct BodyWriter {
    hash: Stage<Hasher>,
    write: Stage<Box<dyn Staging>>,
    /// Being filled.
    buf: Vec<u8>,
    tally: Tally,
    /// Whether a buffer went through the stages (else the body fits in one).
    started: bool,
}

impl BodyWriter {
    /// A writer appending to `staging` and hashing into `hasher`.
    pub(crate) fn new(staging: Box<dyn Staging>, hasher: Hasher) -> Self {
        BodyWriter {
            hash: Stage::Ready(hasher),
            write: Stage::Ready(staging),
            buf: Vec::new(),
            tally: Tally::default(),
            started: false,
        }
    }

    /// Whether a write failed: the caller stops reading, and
    /// [`BodyWriter::finish`] reports the error.
    pub(crate) fn failed(&self) -> bool {
        self.tally.error.is_some()
    }

    /// Adds bytes to the body, handing each buffer to the hash stage as it fills.
    pub(crate) async fn push(mut self, mut bytes: &[u8]) -> Self {
        while !bytes.is_empty() && !self.failed() {
            let n = (WRITE_BUFFER - self.buf.len()).min(bytes.len());
            self.reserve(n);
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == WRITE_BUFFER {
                let full = std::mem::take(&mut self.buf);
                self = self.submit(full).await;
                self.buf = self.tally.spare.pop().unwrap_or_default();
            }
        }
        self
    }

    /// Makes room for `n` more bytes, growing by doubling but never past
    /// [`WRITE_BUFFER`] (callers never ask for more than that in total).
    fn reserve(&mut self, n: usize) {
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        if cap - len < n {
            let target = (cap * 2).clamp(FIRST_BUFFER, WRITE_BUFFER).max(len + n);
            self.buf.reserve_exact(target - len);
        }
    }

    /// Moves the pipeline one step: once the previous hash is done, its buffer goes
    /// to the write stage (after the previous write) and `full` to the hash stage.
    async fn submit(mut self, full: Vec<u8>) -> Self {
        self.started = true;
        let (hasher, hashed) = self.hash.ready().await;
        if let Some((buf, _)) = hashed {
            let (staging, done) = self.write.ready().await;
            self.tally.record(done);
            self.write = if self.tally.error.is_some() {
                self.tally.keep(buf); // not written: a write failed before it
                Stage::Ready(staging)
            } else {
                Stage::start(staging, buf, write_job)
            };
        }
        self.hash = Stage::start(hasher, full, hash_job);
        self
    }

    /// Hashes and writes what is still buffered, waits for both stages, and returns
    /// the outcome.
    pub(crate) async fn finish(mut self) -> Written {
        let last = std::mem::take(&mut self.buf);
        if !self.started {
            // The whole body fits in one buffer: hash and write it in one task.
            let (hasher, _) = self.hash.ready().await;
            let (staging, _) = self.write.ready().await;
            if last.is_empty() {
                return Written {
                    staging,
                    hasher,
                    written: 0,
                    error: None,
                };
            }
            let both = Stage::start((hasher, staging), last, |(h, s), b| {
                h.update(b);
                s.append(b)
            });
            let ((hasher, staging), done) = both.ready().await;
            self.tally.record(done);
            return Written {
                staging,
                hasher,
                written: self.tally.written,
                error: self.tally.error,
            };
        }
        if !last.is_empty() && !self.failed() {
            self = self.submit(last).await;
        }
        // Drain: the last hashed buffer still has to be written.
        let (hasher, hashed) = self.hash.ready().await;
        let (mut staging, done) = self.write.ready().await;
        self.tally.record(done);
        if let Some((buf, _)) = hashed {
            if self.tally.error.is_none() {
                let (s, done) = Stage::start(staging, buf, write_job).ready().await;
                self.tally.record(done);
                staging = s;
            }
        }
        Written {
            staging,
            hasher,
            written: self.tally.written,
            error: self.tally.error,
        }
    }

    /// Waits for both stages without writing what is still buffered (the caller
    /// rolls the upload back), and returns the outcome.
    pub(crate) async fn abandon(mut self) -> Written {
        let (hasher, _) = self.hash.ready().await;
        let (staging, done) = self.write.ready().await;
        self.tally.record(done);
        Written {
            staging,
            hasher,
            written: self.tally.written,
            error: self.tally.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::oci::{Algorithm, Digest};

    /// A staging area in memory that fails its `fail_at`-th append (0-based).
    struct Recorder {
        bytes: Arc<Mutex<Vec<u8>>>,
        appends: usize,
        fail_at: Option<usize>,
    }

    impl Staging for Recorder {
        fn size(&self) -> u64 {
            self.bytes.lock().unwrap().len() as u64
        }
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.appends += 1;
            if self.fail_at == Some(self.appends - 1) {
                return Err(io::Error::other("disk full"));
            }
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(())
        }
        fn truncate(&mut self, size: u64) -> io::Result<()> {
            self.bytes.lock().unwrap().truncate(size as usize);
            Ok(())
        }
        fn read_back(&self) -> io::Result<Box<dyn io::Read + Send>> {
            Ok(Box::new(io::Cursor::new(
                self.bytes.lock().unwrap().clone(),
            )))
        }
        fn publish(self: Box<Self>, _: &Digest) -> io::Result<()> {
            Ok(())
        }
    }

    fn recorder(fail_at: Option<usize>) -> (Box<dyn Staging>, Arc<Mutex<Vec<u8>>>) {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let staging = Recorder {
            bytes: bytes.clone(),
            appends: 0,
            fail_at,
        };
        (Box::new(staging), bytes)
    }

    /// Pushes `body` in frames of the given sizes, cycling through them.
    async fn push_all(mut w: BodyWriter, body: &[u8], frames: &[usize]) -> BodyWriter {
        let mut rest = body;
        for &len in frames.iter().cycle() {
            if rest.is_empty() || w.failed() {
                break;
            }
            let n = len.min(rest.len());
            w = w.push(&rest[..n]).await;
            rest = &rest[n..];
        }
        w
    }

    #[tokio::test]
    async fn every_byte_is_written_once_and_hashed_in_order() {
        const B: usize = WRITE_BUFFER;
        for size in [0, 1, B - 1, B, B + 1, 2 * B, 3 * B + 5] {
            for frames in [&[1 << 20][..], &[7, 65_539, 300_000], &[B + 3], &[4096]] {
                let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                let (staging, bytes) = recorder(None);
                let w = BodyWriter::new(staging, Algorithm::Sha256.hasher());
                let out = push_all(w, &body, frames).await.finish().await;
                assert!(out.error.is_none(), "size {size}, frames {frames:?}");
                assert_eq!(out.written, size as u64, "size {size}, frames {frames:?}");
                assert!(
                    *bytes.lock().unwrap() == body,
                    "size {size}, frames {frames:?}: bytes differ"
                );
                assert_eq!(
                    out.hasher.finish(),
                    Algorithm::Sha256.digest_of(&body),
                    "size {size}, frames {frames:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_failed_write_stops_the_writing_and_is_reported() {
        let body = vec![1u8; 5 * WRITE_BUFFER];
        let (staging, bytes) = recorder(Some(1));
        let w = BodyWriter::new(staging, Algorithm::Sha256.hasher());
        let w = push_all(w, &body, &[100_000]).await;
        assert!(w.failed(), "the caller is told to stop reading");
        let out = w.finish().await;
        assert_eq!(
            out.error.map(|e| e.to_string()).as_deref(),
            Some("disk full")
        );
        assert_eq!(out.written, WRITE_BUFFER as u64, "only the first buffer");
        assert_eq!(bytes.lock().unwrap().len(), WRITE_BUFFER);
    }

    #[tokio::test]
    async fn abandoning_writes_nothing_more() {
        let body = vec![2u8; 2 * WRITE_BUFFER + 10];
        let (staging, bytes) = recorder(None);
        let w = BodyWriter::new(staging, Algorithm::Sha256.hasher());
        let out = push_all(w, &body, &[65_536]).await.abandon().await;
        assert!(out.error.is_none());
        assert!(out.written <= 2 * WRITE_BUFFER as u64);
        assert_eq!(bytes.lock().unwrap().len() as u64, out.written);
    }
}
