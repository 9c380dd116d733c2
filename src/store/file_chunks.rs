//! A range of a file as a stream of large chunks, read on the blocking pool one
//! chunk ahead of the consumer.
//!
//! `tokio::fs::File` sends every read through the blocking pool and copies it once
//! more into the caller's buffer; served through a 256 KiB `ReaderStream`, a large
//! blob cost a thread hop and a copy per 256 KiB, with reading and sending taking
//! turns. Here each hop reads [`READ_CHUNK`] bytes straight into the buffer that is
//! sent, and the next chunk is read while the previous one is being sent. A
//! blocking thread is only held while it reads, never while a slow client drains a
//! chunk, so many slow downloads cannot starve the pool.
//!
//! Reads are positional (`pread`), so one open file can serve many streams at
//! once: the store keeps recently read blob files open ([`super::open_blobs`]).

use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

/// Bytes read per blocking call, and the size of each chunk sent.
/// (1 MiB measured as fast as 2 MiB on loopback and faster than 256 KiB.)
pub const READ_CHUNK: usize = 1 << 20;

/// What one blocking read returns: the chunk.
type Read1 = io::Result<Bytes>;

/// `len` bytes of a file from an offset, as chunks of [`READ_CHUNK`]
/// bytes (the last one shorter). A file that ends early yields an
/// [`io::ErrorKind::UnexpectedEof`] error instead of a short stream.
pub struct FileChunks {
    /// The file, while bytes remain.
    file: Option<Arc<File>>,
    /// Where the next chunk starts.
    pos: u64,
    /// Bytes not yet read.
    remaining: u64,
    /// A chunk read but not yet yielded.
    ready: Option<io::Result<Bytes>>,
    /// The read in flight.
    reading: Option<JoinHandle<Read1>>,
}

impl FileChunks {
    /// Reads the first chunk now, on the calling (blocking) thread, so a blob of
    /// one chunk is served without another hop, and a file that cannot be read
    /// fails before anything is sent; later chunks are read on the blocking pool as
    /// the stream is polled.
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Ok(FileChunks {
                file: None,
                pos: offset,
                remaining: 0,
                ready: None,
                reading: None,
            });
        }
        let n = len.min(READ_CHUNK as u64);
        let first = read_chunk(&file, offset, n)?;
        Ok(FileChunks {
            file: (len > n).then_some(file),
            pos: offset + n,
            remaining: len - n,
            ready: Some(Ok(first)),
            reading: None,
        })
    }

    /// Starts reading the next chunk on the blocking pool, if any bytes remain and
    /// none is being read. Without a runtime (a caller polling the stream by hand)
    /// the chunk is read here.
    fn read_ahead(&mut self) {
        if self.remaining == 0 || self.reading.is_some() {
            return;
        }
        let Some(file) = self.file.clone() else {
            return;
        };
        let (pos, n) = (self.pos, self.remaining.min(READ_CHUNK as u64));
        self.pos += n;
        self.remaining -= n;
        if self.remaining == 0 {
            self.file = None;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => self.reading = Some(rt.spawn_blocking(move || read_chunk(&file, pos, n))),
            Err(_) => self.ready = Some(read_chunk(&file, pos, n)),
        }
    }
}

/// Reads exactly `n` bytes at `pos` into a fresh buffer (not zeroed first: a
/// 256 MiB pull would pay for a 256 MiB memset).
fn read_chunk(file: &File, pos: u64, n: u64) -> Read1 {
    let mut buf: Vec<u8> = Vec::with_capacity(n as usize);
    while buf.len() < n as usize {
        let at = pos + buf.len() as u64;
        match read_at_spare(file, &mut buf, n as usize, at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if buf.len() == n as usize {
        Ok(Bytes::from(buf))
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("blob file ended {} bytes early", n as usize - buf.len()),
        ))
    }
}

/// One `pread` at `pos` into `buf`'s spare capacity, up to `want` bytes in all;
/// the bytes read are appended.
#[cfg(unix)]
fn read_at_spare(file: &File, buf: &mut Vec<u8>, want: usize, pos: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let room = want - buf.len();
    let offset = libc::off_t::try_from(pos).map_err(io::Error::other)?;
    // SAFETY: the kernel writes at most `room` bytes into the vector's spare
    // capacity (at least `room` long), and only the bytes it wrote are then
    // counted into its length.
    let got = unsafe {
        libc::pread(
            file.as_raw_fd(),
            buf.as_mut_ptr().add(buf.len()).cast(),
            room,
            offset,
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    // SAFETY: `got <= room` bytes after the old length were just written.
    unsafe { buf.set_len(buf.len() + got) };
    Ok(got)
}

#[cfg(not(unix))]
fn read_at_spare(file: &File, buf: &mut Vec<u8>, want: usize, pos: u64) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(want, 0);
    let got = std::os::windows::fs::FileExt::seek_read(file, &mut buf[start..], pos);
    buf.truncate(start + *got.as_ref().unwrap_or(&0));
    got
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(chunk) = this.ready.take() {
                match chunk {
                    Ok(bytes) => {
                        this.read_ahead(); // read the next chunk while this one is sent
                        return Poll::Ready(Some(Ok(bytes)));
                    }
                    Err(e) => {
                        // Nothing more after an error.
                        this.remaining = 0;
                        this.file = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            let Some(reading) = this.reading.as_mut() else {
                return Poll::Ready(None);
            };
            let done = match Pin::new(reading).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(done) => done,
            };
            this.reading = None;
            this.ready = Some(done.unwrap_or_else(|e| Err(io::Error::other(e))));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::StreamExt;

    use super::*;

    const C: u64 = READ_CHUNK as u64;

    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    /// The chunks of `len` bytes from `offset`: their sizes, and the bytes joined.
    async fn read(f: &File, offset: u64, len: u64) -> (Vec<usize>, io::Result<Vec<u8>>) {
        let f = Arc::new(f.try_clone().unwrap());
        let mut chunks = match FileChunks::new(f, offset, len) {
            Ok(chunks) => chunks,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let (mut sizes, mut out) = (Vec::new(), Vec::new());
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(b) => {
                    sizes.push(b.len());
                    out.extend_from_slice(&b);
                }
                Err(e) => return (sizes, Err(e)),
            }
        }
        (sizes, Ok(out))
    }

    #[tokio::test]
    async fn ranges_at_and_across_chunk_boundaries() {
        let data: Vec<u8> = (0..2 * C + 5).map(|i| (i % 253) as u8).collect();
        let f = file_of(&data);
        for (offset, len) in [
            (0, 0),
            (0, 1),
            (0, C - 1),
            (0, C),
            (0, C + 1),
            (0, 2 * C + 5),
            (C - 1, 2),
            (C, C),
            (C + 1, C + 4),
            (2 * C, 5),
            (2 * C + 4, 1),
        ] {
            let (sizes, got) = read(&f, offset, len).await;
            let got = got.unwrap_or_else(|e| panic!("{offset}+{len}: {e}"));
            let want = &data[offset as usize..(offset + len) as usize];
            assert!(got == want, "{offset}+{len}: bytes differ");
            assert!(
                sizes.iter().all(|&n| n > 0 && n <= READ_CHUNK),
                "{offset}+{len}: {sizes:?}"
            );
            assert_eq!(sizes.len() as u64, len.div_ceil(C), "{offset}+{len}");
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_is_an_error_not_a_short_body() {
        let data = vec![7u8; READ_CHUNK + 10];
        let f = file_of(&data);
        // Short in a later chunk: the stream ends with an error.
        for len in [C + 11, C + 20, 3 * C] {
            let (sizes, got) = read(&f, 0, len).await;
            let err = got.expect_err("a short file must fail");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{len}");
            assert_eq!(sizes, vec![READ_CHUNK], "{len}: the whole first chunk came");
        }
        // Short in the first chunk: nothing is streamed at all.
        let short = Arc::new(file_of(b"0123456789"));
        let err = FileChunks::new(short, 0, 20)
            .err()
            .expect("a short first chunk fails");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn works_without_a_runtime() {
        let data: Vec<u8> = (0..C + 3).map(|i| i as u8).collect();
        let f = file_of(&data);
        let mut chunks = FileChunks::new(Arc::new(f), 0, C + 3).unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut got = Vec::new();
        // Without a runtime every read happens in place, so every poll is ready.
        while let Poll::Ready(Some(chunk)) = Pin::new(&mut chunks).poll_next(&mut cx) {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, data);
    }
}
