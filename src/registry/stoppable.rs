//! Request bodies that a `DELETE` of their upload session stops.
//!
//! A request writing into a session holds it until its body ends. A client that
//! stalls in the middle of a chunk would then hold a `DELETE` of that session
//! until the connection's idle timeout cut it. Instead, the request reading a
//! session's body registers here; a `DELETE` stops that body (it ends with an
//! error, the chunk is taken back, the request is answered as for an unknown
//! session), then takes the session as usual.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The bodies being read, by session id, each with the number of its reading.
#[derive(Default)]
pub(crate) struct Readers {
    by_id: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
    next: AtomicU64,
}

impl Readers {
    /// Registers the body about to be read for session `id` (the caller holds
    /// the session); it stays registered until the returned reading drops.
    pub(crate) fn start(&self, id: &str) -> Reading {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        lock(&self.by_id).insert(id.to_string(), (number, stop.clone()));
        Reading {
            by_id: self.by_id.clone(),
            id: id.to_string(),
            number,
            stop,
        }
    }

    /// How many bodies are registered (for tests).
    #[cfg(test)]
    pub(crate) fn by_id_len(&self) -> usize {
        lock(&self.by_id).len()
    }

    /// Stops the body being read for session `id`, if any.
    pub(crate) fn stop(&self, id: &str) {
        if let Some((_, stop)) = lock(&self.by_id).get(id) {
            stop.cancel();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One registered body reading.
pub(crate) struct Reading {
    by_id: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
    id: String,
    number: u64,
    stop: CancellationToken,
}

impl Reading {
    /// `body`, ending with an error as soon as the reading is stopped.
    pub(crate) fn watch<S>(&self, body: S) -> Watched<S> {
        Watched {
            inner: body,
            stopped: Box::pin(self.stop.clone().cancelled_owned()),
            done: false,
        }
    }

    /// Whether a `DELETE` stopped it.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut by_id = lock(&self.by_id);
        // A later request on the session may have registered since.
        if by_id.get(&self.id).is_some_and(|(n, _)| *n == self.number) {
            by_id.remove(&self.id);
        }
    }
}

/// A body that ends with an error once its reading is stopped.
pub(crate) struct Watched<S> {
    inner: S,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl<S> Stream for Watched<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.stopped.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(io::Error::other(
                "the upload session was cancelled",
            ))));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_stopped_body_ends_with_an_error_and_a_later_reading_stays_registered() {
        let readers = Readers::default();
        let first = readers.start("s");
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
        let mut body = first.watch(tokio_stream_from(rx));
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        assert_eq!(body.next().await.unwrap().unwrap(), "abc");
        // The client stalls: nothing more comes until the session is deleted.
        readers.stop("s");
        assert!(first.stopped());
        assert!(body.next().await.unwrap().is_err());
        assert!(body.next().await.is_none());
        // A later request registers before the first one's reading drops.
        let second = readers.start("s");
        drop(first);
        readers.stop("s");
        assert!(second.stopped(), "the later reading was forgotten");
        drop(second);
        assert!(readers.by_id.lock().unwrap().is_empty());
        // Another session's body is not stopped.
        let other = readers.start("t");
        readers.stop("s");
        assert!(!other.stopped());
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
