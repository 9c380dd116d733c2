//! An upload's running hash, carried from one request to the next.
//!
//! A request's body is hashed on a blocking thread of its own while it
//! arrives (see `writer`). That thread need not be done when the request is
//! answered: it goes on with what it was given, and the next request's thread
//! takes the hasher over from it. So a chunked push is not held up, chunk
//! after chunk, by the hashing of each chunk's last bytes (measured: that wait
//! was a median 2.8 ms of 6.2 for a `PATCH` of 8 MiB). The hash is waited for
//! only where the digest is needed, and where a store cannot read a staging
//! area back cheaply (see `StagedBlob::record_hash`).
//!
//! What a record can hold without waiting is the state the last finished
//! thread reached ([`HashLane::reached`]): it may cover fewer bytes than the
//! upload holds, and whoever resumes from the record hashes the rest from the
//! staging area.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::oci::Hasher;

/// Body bytes in order, as the writer hands them over.
pub(crate) type Batch = Vec<Bytes>;

/// Full batches waiting for a hashing thread (and for the writer thread,
/// see `writer`), besides the one it is on: slack for the moments a write
/// stalls. (With one, large pushes were about 10% slower.)
pub(crate) const QUEUED_BATCHES: usize = 4;

/// The hasher, or the thread that has it.
enum Lane {
    /// At hand.
    Here(Box<Hasher>),
    /// A thread hashing what the queue brings; it hands the hasher over
    /// when the queue closes.
    Busy(mpsc::Sender<Batch>, oneshot::Receiver<Box<Hasher>>),
    /// A thread hashing what it was given (its queue is closed).
    Behind(oneshot::Receiver<Box<Hasher>>),
}

/// Where a hashing thread gets the hasher.
enum Start {
    Have(Box<Hasher>),
    After(oneshot::Receiver<Box<Hasher>>),
}

/// An upload's hash, possibly still running on a thread (see the module
/// docs).
pub(crate) struct HashLane {
    lane: Lane,
    /// Bytes handed over: hashed, or queued for a thread.
    fed: u64,
    /// The bytes hashed and the hasher, as of the last thread's end (or of the
    /// lane's start).
    reached: Arc<Mutex<(u64, Hasher)>>,
}

fn stopped() -> io::Error {
    io::Error::other("the hashing thread stopped")
}

impl HashLane {
    /// A lane whose hasher has hashed the first `hashed` bytes.
    pub(crate) fn new(hasher: Hasher, hashed: u64) -> Self {
        HashLane {
            reached: Arc::new(Mutex::new((hashed, hasher.clone()))),
            lane: Lane::Here(Box::new(hasher)),
            fed: hashed,
        }
    }

    /// Bytes handed over (hashed, or waiting to be).
    pub(crate) fn fed(&self) -> u64 {
        self.fed
    }

    /// Hashes `bytes` here, from blocking code (waiting for a thread first).
    pub(crate) fn update_blocking(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.settle_blocking()?.update(bytes);
        self.fed += bytes.len() as u64;
        Ok(())
    }

    /// The hasher when it is at hand (no thread has it).
    pub(crate) fn here(&self) -> Option<&Hasher> {
        match &self.lane {
            Lane::Here(hasher) => Some(hasher),
            _ => None,
        }
    }

    /// The bytes hashed and the hasher, without waiting: everything when the
    /// hasher is at hand, else as far as the last finished thread got.
    pub(crate) fn reached(&self) -> (u64, Hasher) {
        match &self.lane {
            Lane::Here(hasher) => (self.fed, (**hasher).clone()),
            _ => self
                .reached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Hashes `batch` here, or hands it to a hashing thread, starting one
    /// unless `last` finds the hasher at hand (the last batch of a body is
    /// then hashed here). False when a thread stopped (it panicked).
    pub(crate) async fn feed(&mut self, batch: &Batch, last: bool) -> bool {
        let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
        if let (Lane::Here(hasher), true) = (&mut self.lane, last) {
            for bytes in batch {
                hasher.update(bytes);
            }
            self.fed += len;
            return true;
        }
        self.lane = match self.take() {
            Lane::Here(hasher) => spawn(Start::Have(hasher), self.fed, self.reached.clone()),
            Lane::Behind(before) => spawn(Start::After(before), self.fed, self.reached.clone()),
            busy => busy,
        };
        self.fed += len;
        match &self.lane {
            Lane::Busy(tx, _) => tx.send(batch.clone()).await.is_ok(),
            _ => true,
        }
    }

    /// Lets the thread (if any) go on with what it was given, without
    /// waiting: the end of a request's body.
    pub(crate) fn pause(&mut self) {
        self.lane = match self.take() {
            // Dropping the queue's sender closes it.
            Lane::Busy(_, handed) => Lane::Behind(handed),
            other => other,
        };
    }

    /// The hasher, once everything handed over is hashed.
    #[cfg(test)]
    pub(crate) async fn hasher(mut self) -> io::Result<Hasher> {
        self.pause();
        match self.lane {
            Lane::Here(hasher) => Ok(*hasher),
            Lane::Behind(rx) => rx.await.map(|h| *h).map_err(|_| stopped()),
            Lane::Busy(..) => unreachable!("paused above"),
        }
    }

    /// [`HashLane::hasher`] from blocking code: waits here, and leaves the
    /// hasher at hand.
    pub(crate) fn settle_blocking(&mut self) -> io::Result<&mut Hasher> {
        self.pause();
        self.lane = match self.take() {
            Lane::Behind(handed) => Lane::Here(handed.blocking_recv().map_err(|_| stopped())?),
            other => other,
        };
        match &mut self.lane {
            Lane::Here(hasher) => Ok(hasher),
            _ => unreachable!("settled above"),
        }
    }

    /// Takes the lane out, leaving one whose thread stopped in its place (what
    /// stays if the caller fails before putting one back).
    fn take(&mut self) -> Lane {
        std::mem::replace(&mut self.lane, Lane::Behind(oneshot::channel().1))
    }
}

/// A thread taking the hasher from `start` (which has hashed `from` bytes),
/// hashing what its queue brings, then noting how far it got in `reached`
/// and handing the hasher over.
fn spawn(start: Start, from: u64, reached: Arc<Mutex<(u64, Hasher)>>) -> Lane {
    let (tx, mut rx) = mpsc::channel::<Batch>(QUEUED_BATCHES);
    let (done, handed) = oneshot::channel();
    // Detached: the hasher comes back through `done`.
    let _ = super::lane_thread::start(move || {
        let mut hasher = match start {
            Start::Have(hasher) => hasher,
            // The thread before stopped (it panicked): so does this one.
            Start::After(before) => match before.blocking_recv() {
                Ok(hasher) => hasher,
                Err(_) => return,
            },
        };
        let mut hashed = from;
        while let Some(batch) = rx.blocking_recv() {
            for bytes in &batch {
                hasher.update(bytes);
                hashed += bytes.len() as u64;
            }
        }
        *reached.lock().unwrap_or_else(|e| e.into_inner()) = (hashed, (*hasher).clone());
        let _ = done.send(hasher);
    });
    Lane::Busy(tx, handed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Algorithm;

    fn batch(bytes: &[u8]) -> Batch {
        bytes.chunks(1000).map(Bytes::copy_from_slice).collect()
    }

    #[tokio::test]
    async fn a_hash_carried_over_requests_is_the_hash_of_all_their_bytes() {
        let body: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let mut lane = HashLane::new(Algorithm::Sha256.hasher(), 0);
        // Four requests of three batches each; each ends without waiting.
        for request in body.chunks(12_500) {
            for (i, part) in request.chunks(5_000).enumerate() {
                assert!(lane.feed(&batch(part), i == 2).await);
            }
            lane.pause();
            // What a record may hold now is a prefix the hasher really hashed.
            let (at, hasher) = lane.reached();
            assert!(at <= lane.fed());
            assert_eq!(
                hasher.finish(),
                Algorithm::Sha256.digest_of(&body[..at as usize])
            );
        }
        assert_eq!(lane.fed(), body.len() as u64);
        let hasher = lane.hasher().await.unwrap();
        assert_eq!(hasher.finish(), Algorithm::Sha256.digest_of(&body));
    }

    #[test]
    fn blocking_code_waits_for_the_threads_and_goes_on_hashing_here() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut lane = HashLane::new(Algorithm::Sha256.hasher(), 0);
        rt.block_on(async {
            assert!(lane.feed(&batch(&[1; 3000]), false).await);
            lane.pause();
            assert!(lane.feed(&batch(&[2; 3000]), false).await);
        });
        // Not paused: settling closes the queue itself.
        lane.update_blocking(&[3; 10]).unwrap();
        assert_eq!(lane.reached().0, 6010, "at hand, so everything");
        let mut all = vec![1; 3000];
        all.extend([2; 3000]);
        all.extend([3; 10]);
        let hasher = lane.settle_blocking().unwrap().clone();
        assert_eq!(hasher.finish(), Algorithm::Sha256.digest_of(&all));
    }
}
