//! Latency statistics: an HDR histogram of microseconds per operation, merged
//! across workers, summarised as count, mean, p50, p99 and max.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies of one kind of operation, in microseconds with 3 significant figures.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            // 1 µs to 1 hour, 3 significant figures: fixed bounds keep `record` infallible.
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        }
    }
}

impl Latencies {
    /// Records one operation's duration (clamped to the histogram's range).
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, self.hist.high());
        self.hist.saturating_record(us);
    }

    /// Adds another set of latencies to this one.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// Number of operations recorded.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Count, mean and percentiles in milliseconds (all zero when empty).
    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: self.hist.len(),
            mean_ms: self.hist.mean() / 1000.0,
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            max_ms: ms(self.hist.max()),
        }
    }
}

/// Summary of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Operations measured.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest operation.
    pub max_ms: f64,
}

/// `amount / seconds`, or 0 when no time passed.
pub fn rate(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }

    #[test]
    fn percentiles_of_one_to_hundred() {
        let mut l = Latencies::default();
        for i in 1..=100 {
            l.record(ms(i));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.mean_ms - 50.5).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn merge_adds_counts_and_keeps_extremes() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        for _ in 0..99 {
            a.record(ms(1));
        }
        b.record(ms(500));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 1.0).abs() < 0.01);
        assert!((s.max_ms - 500.0).abs() < 1.0);
        assert!(s.p50_ms <= s.p99_ms && s.p99_ms <= s.max_ms);
    }

    #[test]
    fn sub_microsecond_and_huge_values_are_clamped() {
        let mut l = Latencies::default();
        l.record(Duration::from_nanos(10));
        l.record(Duration::from_secs(10 * 3600));
        assert_eq!(l.count(), 2);
        assert!(l.summary().max_ms >= 3_599_000.0);
    }

    #[test]
    fn rate_guards_zero_time() {
        assert_eq!(rate(10.0, 0.0), 0.0);
        assert_eq!(rate(10.0, 2.0), 5.0);
    }
}
