//! Threads for the hashing and writing lanes of a request body.
//!
//! A lane lives as long as its body, and a slow client can make that minutes.
//! On tokio's shared blocking pool (512 threads) a few hundred slow uploads,
//! two lanes each, would queue every other blocking job behind them: file-blob
//! reads, staging writes, the maintenance sweep. So lanes run on threads of
//! their own, and the pool stays free for short jobs.
//!
//! Those threads are kept for the next lanes: a chunked push starts two lanes
//! per chunk, and starting a thread (its stack, its signal stack, the system
//! calls to make and end it) costs tens of microseconds each time. A lane
//! takes an idle lane thread when there is one and starts a new thread when
//! there is none, so lanes never wait for each other. A thread idle for
//! [`IDLE_FOR`] ends, and at most [`IDLE_KEPT`] are kept idle.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;

/// How long an idle lane thread waits for another lane before it ends.
const IDLE_FOR: Duration = Duration::from_secs(10);

/// Most lane threads kept waiting for work; one finishing a lane beyond
/// that ends.
const IDLE_KEPT: usize = 16;

/// A lane's work, type-erased for the queue.
type Job = Box<dyn FnOnce() + Send>;

/// What a lane ended with: its value, or the panic that stopped it.
type Ended<T> = Result<T, Box<dyn Any + Send>>;

/// A lane's job and the value it ends with.
pub(crate) struct LaneThread<T> {
    done: oneshot::Receiver<Ended<T>>,
}

/// The lane threads' shared queue.
struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    /// Jobs handed over, each to a thread that is idle now.
    queued: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `job` to an idle thread; gives it back when none is free.
    fn hand_over(&self, job: Job) -> Result<(), Job> {
        let mut state = self.lock();
        if state.idle <= state.queued.len() {
            return Err(job);
        }
        state.queued.push_back(job);
        drop(state);
        self.work.notify_one();
        Ok(())
    }

    /// A lane thread's life: `first`, then whatever lanes are handed over,
    /// until it has been idle for [`IDLE_FOR`] or enough others are idle.
    fn serve(&self, first: Job) {
        first();
        let mut state = self.lock();
        loop {
            if state.idle >= IDLE_KEPT {
                return;
            }
            state.idle += 1;
            let mut waited = Duration::ZERO;
            let job = loop {
                if let Some(job) = state.queued.pop_front() {
                    break Some(job);
                }
                if waited >= IDLE_FOR {
                    break None;
                }
                let started = std::time::Instant::now();
                state = self
                    .work
                    .wait_timeout(state, IDLE_FOR - waited)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                waited += started.elapsed();
            };
            state.idle -= 1;
            let Some(job) = job else {
                return;
            };
            drop(state);
            job();
            state = self.lock();
        }
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState::default()),
        work: Condvar::new(),
    })
}

/// Runs `job` on a lane thread: an idle one, or a new one; when the system
/// refuses a thread, on the blocking pool instead (slower to free, but the
/// body still goes on).
pub(crate) fn start<T, F>(job: F) -> LaneThread<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, done) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(job)));
    });
    let Err(job) = pool().hand_over(job) else {
        return LaneThread { done };
    };
    // Shared, so that the job is still here to hand to the blocking pool when
    // the closure given to the failed spawn has been dropped.
    let slot = Arc::new(Mutex::new(Some(job)));
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new()
        .name("marina-lane".to_string())
        .spawn(move || {
            if let Some(job) = take(&theirs) {
                pool().serve(job);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread for an upload; using the blocking pool");
        if let Some(job) = take(&slot) {
            tokio::task::spawn_blocking(job);
        }
    }
    LaneThread { done }
}

fn take(slot: &Mutex<Option<Job>>) -> Option<Job> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

impl<T> LaneThread<T> {
    /// Waits for the value; a panic in the job goes on here.
    pub(crate) async fn join(self) -> T {
        match self.done.await {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => panic!("an upload lane stopped without its result"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lane_hands_back_what_its_job_returned() {
        let lane = start(|| 6 * 7);
        assert_eq!(lane.join().await, 42);
    }

    #[tokio::test]
    async fn a_lane_runs_off_the_blocking_pool() {
        let lane = start(|| std::thread::current().name().map(String::from));
        assert_eq!(lane.join().await.as_deref(), Some("marina-lane"));
    }

    #[tokio::test]
    #[should_panic(expected = "lane job failed")]
    async fn a_panic_on_the_lane_reaches_the_joiner() {
        let lane = start(|| -> u8 { panic!("lane job failed") });
        lane.join().await;
    }

    #[tokio::test]
    async fn a_lane_thread_outlives_a_panic_and_serves_again() {
        let failed = start(|| -> u8 { panic!("lane job failed") });
        let caught = tokio::spawn(failed.join()).await;
        assert!(caught.is_err());
        let lane = start(|| 1 + 1);
        assert_eq!(lane.join().await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lanes_that_wait_for_each_other_each_get_a_thread() {
        // A lane handed to a thread still busy with another would wait behind
        // it: here every lane counts itself in, then waits (at most 10 s)
        // until all have, so they finish only if all run at once.
        let lanes = 24;
        let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
        let started: Vec<_> = (0..lanes)
            .map(|_| {
                let arrived = arrived.clone();
                start(move || {
                    let (count, all_in) = &*arrived;
                    let mut n = count.lock().unwrap();
                    *n += 1;
                    all_in.notify_all();
                    let wait = Duration::from_secs(10);
                    let (_n, waited) = all_in.wait_timeout_while(n, wait, |n| *n < lanes).unwrap();
                    !waited.timed_out()
                })
            })
            .collect();
        for lane in started {
            assert!(lane.join().await, "a lane waited for a thread");
        }
    }
}
