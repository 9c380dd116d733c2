//! Where the metadata stores read the time they record (blob link times,
//! manifest push times) and the registry reads the time it compares them with
//! (the garbage collector's grace, retention ages). Production uses the system
//! clock; a test injects a [`TestClock`] and moves time on by hand instead of
//! sleeping, so push times are distinct and grace periods pass at once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now", in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
}

/// The system's wall clock: what `marina serve` uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        system_millis()
    }
}

/// The system clock plus an offset that a test advances: time still flows (so
/// code that waits for it works), and a test that needs it to move on, for
/// distinct push times or past a grace period, says so instead of sleeping.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_millis: AtomicI64,
}

impl TestClock {
    /// A clock that reads like the system clock until advanced.
    pub fn new() -> TestClock {
        TestClock::default()
    }

    /// Moves this clock `by` into the future.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_millis.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_millis(&self) -> i64 {
        system_millis().saturating_add(self.offset_millis.load(Ordering::SeqCst))
    }
}

fn system_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_test_clock_is_ahead_of_the_system_clock_by_at_least_the_step() {
        let clock = TestClock::new();
        let before = SystemClock.now_millis();
        clock.advance(Duration::from_secs(3600));
        let now = clock.now_millis();
        assert!(now >= before + 3_600_000, "{now} vs {before}");
        assert!(now < SystemClock.now_millis() + 3_600_000 + 60_000);
    }
}
