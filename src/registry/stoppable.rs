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

/// Per session id: the body being read (with the number of its reading), and
/// how many `DELETE`s of it are in progress.
#[derive(Default)]
struct Session {
    reading: Option<(u64, CancellationToken)>,
    deleting: usize,
}

type Sessions = Arc<Mutex<HashMap<String, Session>>>;

/// The bodies being read, and the sessions being deleted.
#[derive(Default)]
pub(crate) struct Readers {
    by_id: Sessions,
    next: AtomicU64,
}

impl Readers {
    /// Registers the body about to be read for session `id` (the caller holds
    /// the session); it stays registered until the returned reading drops. It
    /// starts stopped while a `DELETE` of the session is in progress.
    pub(crate) fn start(&self, id: &str) -> Reading {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        let mut by_id = lock(&self.by_id);
        let session = by_id.entry(id.to_string()).or_default();
        if session.deleting > 0 {
            stop.cancel();
        }
        session.reading = Some((number, stop.clone()));
        Reading {
            by_id: self.by_id.clone(),
            id: id.to_string(),
            number,
            stop,
        }
    }

    /// Stops the body being read for session `id`, if any, and every body
    /// registered for it until the returned guard drops (the `DELETE` is
    /// done): a request waiting for the session behind the one stopped, or
    /// one that registers a moment after, is stopped too.
    pub(crate) fn stop(&self, id: &str) -> Deleting {
        let mut by_id = lock(&self.by_id);
        let session = by_id.entry(id.to_string()).or_default();
        session.deleting += 1;
        if let Some((_, stop)) = &session.reading {
            stop.cancel();
        }
        Deleting {
            by_id: self.by_id.clone(),
            id: id.to_string(),
        }
    }
}

#[cfg(test)]
impl Readers {
    /// How many sessions have a reading or a `DELETE` registered.
    pub(crate) fn by_id_len(&self) -> usize {
        lock(&self.by_id).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forgets session `id` once nothing is registered for it.
fn forget_if_unused(by_id: &mut HashMap<String, Session>, id: &str) {
    if by_id
        .get(id)
        .is_some_and(|s| s.reading.is_none() && s.deleting == 0)
    {
        by_id.remove(id);
    }
}

/// A `DELETE` of a session in progress (see [`Readers::stop`]).
pub(crate) struct Deleting {
    by_id: Sessions,
    id: String,
}

impl Drop for Deleting {
    fn drop(&mut self) {
        let mut by_id = lock(&self.by_id);
        if let Some(session) = by_id.get_mut(&self.id) {
            session.deleting = session.deleting.saturating_sub(1);
        }
        forget_if_unused(&mut by_id, &self.id);
    }
}

/// One registered body reading.
pub(crate) struct Reading {
    by_id: Sessions,
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
        if let Some(session) = by_id.get_mut(&self.id) {
            // A later request on the session may have registered since.
            if session
                .reading
                .as_ref()
                .is_some_and(|(n, _)| *n == self.number)
            {
                session.reading = None;
            }
        }
        forget_if_unused(&mut by_id, &self.id);
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
        let deleting = readers.stop("s");
        assert!(first.stopped());
        assert!(body.next().await.unwrap().is_err());
        assert!(body.next().await.is_none());
        // A request that takes the session while the DELETE is in progress
        // (queued behind the first, or arriving with the DELETE) is stopped.
        let queued = readers.start("s");
        drop(first);
        assert!(queued.stopped(), "a reading during the DELETE went on");
        drop(queued);
        drop(deleting);
        assert!(readers.by_id_len() == 0, "a finished session is remembered");
        // After the DELETE, and on other sessions, readings go on.
        let later = readers.start("s");
        let other = readers.start("t");
        let deleting = readers.stop("t");
        assert!(!later.stopped() && other.stopped());
        drop((later, other, deleting));
        assert!(readers.by_id_len() == 0);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
