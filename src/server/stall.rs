//! Closing connections that stop moving bytes.
//!
//! A client that opens a connection and goes quiet (an idle keep-alive, headers
//! never finished, a body or download that stalls) would otherwise hold its
//! socket, and for a stalled upload body its session lock and lane threads, for
//! as long as it likes; a few thousand such sockets use up the process's
//! descriptors. Every accepted socket is wrapped here: once no byte has moved in
//! either direction for the limit, the waiting read or write fails with
//! `TimedOut`, hyper closes the connection, and a handler reading the body sees
//! the error like any client that went away (an upload stays resumable at what
//! it recorded).
//!
//! The clock runs on bytes, not requests, so a long download or upload that
//! keeps moving is never cut; a handler that sends nothing for the whole limit
//! after reading its request is.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An acceptor whose connections close after `limit` without a byte moving.
pub(crate) struct StallAcceptor<A> {
    inner: A,
    limit: Option<Duration>,
}

impl<A> StallAcceptor<A> {
    /// Wraps `inner`'s connections; `None` never closes one.
    pub(crate) fn new(inner: A, limit: Option<Duration>) -> Self {
        StallAcceptor { inner, limit }
    }
}

impl<A: Acceptor> Acceptor for StallAcceptor<A> {
    type Io = StallStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((StallStream::new(io, self.limit), local, remote, scheme))
    }
}

/// A socket that fails its pending read or write once nothing moved for `limit`.
pub(crate) struct StallStream<S> {
    inner: S,
    limit: Option<Duration>,
    /// When a byte last moved (or the connection opened).
    moved: Instant,
    /// Armed only while a read or write waits; reset lazily to `moved + limit`.
    timer: Pin<Box<Sleep>>,
}

impl<S> StallStream<S> {
    fn new(inner: S, limit: Option<Duration>) -> Self {
        let moved = Instant::now();
        // Without a limit the timer is never polled; its deadline is moot.
        let first = moved + limit.unwrap_or(Duration::from_secs(3600));
        StallStream {
            inner,
            limit,
            moved,
            timer: Box::pin(tokio::time::sleep_until(first)),
        }
    }

    /// Called when the inner socket is not ready: `Ready` with the error once
    /// the limit has passed since a byte last moved, else `Pending` with the
    /// timer set to wake this task by then. The timer is moved only when it
    /// fires early (bytes moved since it was set), so a busy connection does
    /// not touch the timer wheel for every request.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.moved + limit;
            if Instant::now() >= due {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no bytes moved on the connection for {} s", limit.as_secs()),
                ));
            }
            self.timer.as_mut().reset(due);
        }
    }

    /// Notes that bytes moved (a read that filled nothing is the peer closing,
    /// which needs no clock).
    fn moved(&mut self, bytes: usize) {
        if bytes > 0 {
            self.moved = Instant::now();
        }
    }

    /// The outcome of a write-side poll, with the clock applied.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.moved(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.stalled(cx).map(Err),
            done => done,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.moved(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.stalled(cx).map(Err),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.written(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.stalled(cx).map(Err),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.stalled(cx).map(Err),
            done => done,
        }
    }
}
