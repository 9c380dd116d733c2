//! Threads for the hashing and writing lanes of a request body.
//!
//! A lane lives as long as its body, and a slow client can make that minutes.
//! On tokio's shared blocking pool (512 threads) a few hundred slow uploads,
//! two lanes each, would queue every other blocking job behind them: file-blob
//! reads, staging writes, the maintenance sweep. So each lane runs on a thread
//! of its own, and the pool stays free for short jobs. (Starting a thread costs
//! tens of microseconds; only bodies past the first batch start lanes.)

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// A lane's thread and the value it ends with.
pub(crate) struct LaneThread<T> {
    done: oneshot::Receiver<T>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Runs `job` on a new thread named `name`; when the system refuses a thread,
/// on the blocking pool instead (slower to free, but the body still goes on).
pub(crate) fn start<T, F>(name: &str, job: F) -> LaneThread<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, done) = oneshot::channel();
    let run = move || {
        let _ = tx.send(job());
    };
    // Shared, so that the job is still here to hand to the pool when the
    // closure given to the failed spawn has been dropped.
    let slot = Arc::new(Mutex::new(Some(run)));
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Some(run) = take(&theirs) {
                run();
            }
        });
    match spawned {
        Ok(thread) => LaneThread {
            done,
            thread: Some(thread),
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a thread for an upload; using the blocking pool");
            if let Some(run) = take(&slot) {
                tokio::task::spawn_blocking(run);
            }
            LaneThread { done, thread: None }
        }
    }
}

fn take<F>(slot: &Mutex<Option<F>>) -> Option<F> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

impl<T> LaneThread<T> {
    /// Waits for the value; a panic on the thread goes on here.
    pub(crate) async fn join(self) -> T {
        match self.done.await {
            Ok(value) => value,
            Err(_) => {
                // The sender went without a value: the job panicked.
                if let Some(thread) = self.thread {
                    if let Err(panic) = thread.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                panic!("an upload lane thread stopped without its result");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lane_hands_back_what_its_job_returned() {
        let lane = start("test-lane", || 6 * 7);
        assert_eq!(lane.join().await, 42);
    }

    #[tokio::test]
    async fn a_lane_runs_off_the_blocking_pool() {
        let lane = start("test-lane-name", || {
            std::thread::current().name().map(String::from)
        });
        assert_eq!(lane.join().await.as_deref(), Some("test-lane-name"));
    }

    #[tokio::test]
    #[should_panic(expected = "lane job failed")]
    async fn a_panic_on_the_lane_reaches_the_joiner() {
        let lane = start("test-lane-panic", || -> u8 { panic!("lane job failed") });
        lane.join().await;
    }
}
