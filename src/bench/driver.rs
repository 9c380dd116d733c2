//! Runs one operation many times from a fixed number of concurrent workers, bounded
//! both in count and in time, and tallies successes, failures, bytes and latencies.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::stats::Latencies;

/// How far a run may go.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Concurrent workers (requests in flight).
    pub workers: usize,
    /// Most operations started.
    pub max_ops: u64,
    /// Stop starting operations after this long.
    pub time: Duration,
    /// Stop after this many failures (a registry that fails everything is not
    /// hammered for the whole time limit).
    pub max_errors: u64,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Bytes reported by successful operations.
    pub bytes: u64,
    /// Wall-clock time from the first start to the last finish.
    pub elapsed: Duration,
    /// Latency of each successful operation.
    pub latencies: Latencies,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Operations started in all (successes + failures).
    pub started: u64,
    /// Whether the time bound stopped the run before `max_ops`.
    pub hit_time_limit: bool,
}

struct Worker {
    ops: u64,
    bytes: u64,
    latencies: Latencies,
}

/// Calls `op(i)` for `i = 0, 1, …` from `bounds.workers` tasks until `max_ops`
/// operations have started, `time` has passed or `max_errors` failed. `op` returns
/// the bytes it moved. `bar` advances once per finished operation.
pub async fn run<F, Fut>(bounds: Bounds, bar: &ProgressBar, op: F) -> Tally
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let deadline = start + bounds.time;
    let mut tasks = Vec::with_capacity(bounds.workers);
    for _ in 0..bounds.workers.max(1) {
        let (op, next, errors, first_error, bar) = (
            op.clone(),
            next.clone(),
            errors.clone(),
            first_error.clone(),
            bar.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut w = Worker {
                ops: 0,
                bytes: 0,
                latencies: Latencies::default(),
            };
            loop {
                if Instant::now() >= deadline || errors.load(Ordering::Relaxed) >= bounds.max_errors
                {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bounds.max_ops {
                    break;
                }
                let t0 = Instant::now();
                match op(i).await {
                    Ok(bytes) => {
                        w.latencies.record(t0.elapsed());
                        w.ops += 1;
                        w.bytes += bytes;
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let mut f = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        if f.is_none() {
                            *f = Some(format!("{e:#}"));
                        }
                    }
                }
                bar.inc(1);
            }
            w
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        match t.await {
            Ok(w) => {
                tally.ops += w.ops;
                tally.bytes += w.bytes;
                tally.latencies.merge(&w.latencies);
            }
            Err(e) => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("worker panicked: {e}"));
            }
        }
    }
    tally.elapsed = start.elapsed();
    tally.errors += errors.load(Ordering::Relaxed);
    if let Some(e) = first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        tally.first_error.get_or_insert(e);
    }
    tally.started = next.load(Ordering::Relaxed).min(bounds.max_ops);
    tally.hit_time_limit =
        tally.started < bounds.max_ops && errors.load(Ordering::Relaxed) < bounds.max_errors;
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(workers: usize, max_ops: u64, ms: u64) -> Bounds {
        Bounds {
            workers,
            max_ops,
            time: Duration::from_millis(ms),
            max_errors: 5,
        }
    }

    #[tokio::test]
    async fn runs_exactly_max_ops_and_sums_bytes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let t = run(bounds(4, 100, 60_000), &ProgressBar::hidden(), move |i| {
            let s = s.clone();
            async move {
                s.lock().expect("lock").push(i);
                Ok(i)
            }
        })
        .await;
        assert_eq!(t.ops, 100);
        assert_eq!(t.errors, 0);
        assert_eq!(t.bytes, (0..100).sum::<u64>());
        assert_eq!(t.latencies.count(), 100);
        assert!(!t.hit_time_limit);
        let mut v = seen.lock().expect("lock").clone();
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>(), "each index exactly once");
    }

    #[tokio::test]
    async fn stops_at_the_time_limit() {
        let t = run(
            bounds(2, u64::MAX, 100),
            &ProgressBar::hidden(),
            |_| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(0)
            },
        )
        .await;
        assert!(t.hit_time_limit);
        assert!(t.ops > 0 && t.ops < 100, "{}", t.ops);
        assert!(t.elapsed < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn stops_after_too_many_errors_and_keeps_the_first() {
        let t = run(
            bounds(1, 1000, 60_000),
            &ProgressBar::hidden(),
            |i| async move {
                if i >= 3 {
                    anyhow::bail!("boom {i}")
                }
                Ok(1)
            },
        )
        .await;
        assert_eq!(t.ops, 3);
        assert_eq!(t.errors, 5);
        assert_eq!(t.first_error.as_deref(), Some("boom 3"));
        assert!(!t.hit_time_limit);
    }
}
