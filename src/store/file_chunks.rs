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

use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

/// Bytes read per blocking call, and the size of each chunk sent.
/// (1 MiB measured as fast as 2 MiB on loopback and faster than 256 KiB.)
pub const READ_CHUNK: usize = 1 << 20;

/// What one blocking read returns: the file (to read on from) and the chunk.
type Read1 = (File, io::Result<Bytes>);

/// `len` bytes of a file from its current position, as chunks of [`READ_CHUNK`]
/// bytes (the last one shorter). A file that ends early yields an
/// [`io::ErrorKind::UnexpectedEof`] error instead of a short stream.
pub struct FileChunks {
    /// The file, when no read is in flight and bytes remain.
    file: Option<File>,
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
    pub fn new(file: File, len: u64) -> io::Result<Self> {
        if len == 0 {
            return Ok(FileChunks {
                file: None,
                remaining: 0,
                ready: None,
                reading: None,
            });
        }
        let n = len.min(READ_CHUNK as u64);
        let (file, first) = read_chunk(file, n);
        Ok(FileChunks {
            file: Some(file),
            remaining: len - n,
            ready: Some(Ok(first?)),
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
        let Some(file) = self.file.take() else {
            return;
        };
        let n = self.remaining.min(READ_CHUNK as u64);
        self.remaining -= n;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => self.reading = Some(rt.spawn_blocking(move || read_chunk(file, n))),
            Err(_) => {
                let (file, chunk) = read_chunk(file, n);
                self.file = Some(file);
                self.ready = Some(chunk);
            }
        }
    }
}

/// Reads exactly `n` bytes from the file's position into a fresh buffer.
fn read_chunk(file: File, n: u64) -> Read1 {
    let mut buf = Vec::with_capacity(n as usize);
    let result = (&file).take(n).read_to_end(&mut buf).and_then(|got| {
        if got as u64 == n {
            Ok(Bytes::from(buf))
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob file ended {} bytes early", n - got as u64),
            ))
        }
    });
    (file, result)
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
            match done {
                Ok((file, chunk)) => {
                    this.file = Some(file);
                    this.ready = Some(chunk);
                }
                Err(e) => this.ready = Some(Err(io::Error::other(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

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
        let mut f = f.try_clone().unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut chunks = match FileChunks::new(f, len) {
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
        let mut short = file_of(b"0123456789");
        short.seek(SeekFrom::Start(0)).unwrap();
        let err = FileChunks::new(short, 20)
            .err()
            .expect("a short first chunk fails");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn works_without_a_runtime() {
        let data: Vec<u8> = (0..C + 3).map(|i| i as u8).collect();
        let f = file_of(&data);
        let mut f2 = f.try_clone().unwrap();
        f2.seek(SeekFrom::Start(0)).unwrap();
        let mut chunks = FileChunks::new(f2, C + 3).unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut got = Vec::new();
        // Without a runtime every read happens in place, so every poll is ready.
        while let Poll::Ready(Some(chunk)) = Pin::new(&mut chunks).poll_next(&mut cx) {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, data);
    }
}
