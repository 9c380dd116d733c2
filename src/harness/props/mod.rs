//! Property-based checks: proptest generates inputs, each case talks to the live
//! registry, and a failing case is shrunk to a minimal one that the report prints.
//!
//! proptest's `TestRunner` is driven directly with the run's seed and case count.
//! It runs on a blocking thread; each case blocks on the async test through the
//! runtime handle. Shrinking is bounded in iterations and time.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use super::checks::CheckDef;
use super::context::{Ctx, Step};
use super::verdict::{Failure, Verdict};

mod blobs;
mod invalid;
mod referrers;
mod stateful;
mod tags;

/// Most shrink steps per failing property.
const MAX_SHRINK_ITERS: u32 = 48;
/// Longest time spent shrinking one property.
const MAX_SHRINK_TIME: Duration = Duration::from_secs(30);

/// The property checks.
pub fn checks() -> Vec<CheckDef> {
    let mut v = Vec::new();
    v.extend(blobs::checks());
    v.extend(tags::checks());
    v.extend(referrers::checks());
    v.extend(invalid::checks());
    v.extend(stateful::checks());
    v
}

/// A 32-byte ChaCha seed from the run seed and the property's name.
fn seed_bytes(seed: u64, name: &str) -> [u8; 32] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&seed.to_le_bytes());
    out[8..16].copy_from_slice(&h.to_le_bytes());
    out
}

/// Runs `test` on cases drawn from the strategy `strategy()` builds. A case returning `Err(Fail)` fails
/// the property (after shrinking); `Err(Unsupported | Skipped)` ends it with that
/// verdict.
pub(crate) async fn run_property<M, S, F, Fut>(
    cx: &Ctx,
    name: &str,
    strategy: M,
    test: F,
) -> Step<Verdict>
where
    M: FnOnce() -> S + Send + 'static,
    S: Strategy,
    S::Value: Debug,
    F: Fn(Ctx, S::Value) -> Fut + Send + 'static,
    Fut: Future<Output = Step<()>>,
{
    run_property_cases(cx, name, cx.options().cases, strategy, test).await
}

/// [`run_property`] with an explicit number of cases (for cheap properties that
/// can afford more than the run's `--cases`).
pub(crate) async fn run_property_cases<M, S, F, Fut>(
    cx: &Ctx,
    name: &str,
    cases: u32,
    strategy: M,
    test: F,
) -> Step<Verdict>
where
    M: FnOnce() -> S + Send + 'static,
    S: Strategy,
    S::Value: Debug,
    F: Fn(Ctx, S::Value) -> Fut + Send + 'static,
    Fut: Future<Output = Step<()>>,
{
    let handle = tokio::runtime::Handle::current();
    let seed = cx.options().seed;
    let config = Config {
        cases: cases.max(1),
        // The shrink budget is kept below (proptest would print its own notice on
        // stderr when it stops shrinking). u32::MAX would mean "4 × cases" to
        // proptest, so the largest other value stands for "no limit".
        max_shrink_iters: u32::MAX - 1,
        max_shrink_time: 0,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed, name));
    let cx2 = cx.clone();
    let last_failure: Arc<Mutex<Option<Failure>>> = Arc::default();
    let stop: Arc<Mutex<Option<Verdict>>> = Arc::default();
    let (lf, st) = (last_failure.clone(), stop.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new_with_rng(config, rng);
        let strategy = strategy();
        // After the first failure, at most MAX_SHRINK_ITERS candidates or
        // MAX_SHRINK_TIME are spent shrinking; later candidates count as passing,
        // which ends the shrink with the smallest failure found so far.
        let shrink = std::cell::Cell::new(None::<(std::time::Instant, u32)>);
        runner
            .run(&strategy, |value| {
                if st.lock().expect("stop lock").is_some() {
                    return Ok(());
                }
                if let Some((since, tried)) = shrink.get() {
                    if tried >= MAX_SHRINK_ITERS || since.elapsed() >= MAX_SHRINK_TIME {
                        return Ok(());
                    }
                    shrink.set(Some((since, tried + 1)));
                }
                cx2.client().clear_log();
                match handle.block_on(test(cx2.clone(), value)) {
                    Ok(()) => Ok(()),
                    Err(Verdict::Fail(f)) => {
                        if shrink.get().is_none() {
                            shrink.set(Some((std::time::Instant::now(), 0)));
                        }
                        let msg = format!("{}: {}", f.requirement, f.expected);
                        *lf.lock().expect("failure lock") = Some(f);
                        Err(TestCaseError::fail(msg))
                    }
                    Err(other) => {
                        *st.lock().expect("stop lock") = Some(other);
                        Ok(())
                    }
                }
            })
            .map_err(|e| match e {
                TestError::Fail(_, value) => format!("{value:#?}"),
                TestError::Abort(why) => format!("aborted: {why}"),
            })
    })
    .await
    .map_err(|e| Verdict::skipped(format!("the property runner panicked: {e}")))?;
    if let Some(v) = stop.lock().expect("stop lock").take() {
        return Ok(v);
    }
    match outcome {
        Ok(()) => Ok(Verdict::Pass),
        Err(minimal) => {
            let f = last_failure.lock().expect("failure lock").take();
            Err(match f {
                Some(f) => Verdict::Fail(Failure {
                    requirement: f.requirement,
                    expected: format!(
                        "{}\nminimal failing case (seed {seed}, shrunk):\n{minimal}",
                        f.expected
                    ),
                    transcript: f.transcript,
                }),
                None => Verdict::skipped(minimal),
            })
        }
    }
}
