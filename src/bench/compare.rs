//! Fair comparison on a shared machine: phases run against both registries
//! alternately (A B, B A, A B, …), so neither always runs on a warmer or cooler
//! machine, and every metric becomes one "how many times better is A" figure.

use super::report::{PhaseResult, Ratio, TargetReport};

/// The order in which the targets run phase number `phase` (0-based): even phases
/// run in the given order, odd ones reversed. With one target it is just `[0]`.
pub fn order(phase: usize, targets: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..targets).collect();
    if phase % 2 == 1 {
        v.reverse();
    }
    v
}

/// `a / b` when higher is better, `b / a` when lower is better; `None` when either
/// side is zero or not finite (nothing to compare).
pub fn times_better(a: f64, b: f64, higher_is_better: bool) -> Option<f64> {
    if !(a.is_finite() && b.is_finite()) || a <= 0.0 || b <= 0.0 {
        return None;
    }
    Some(if higher_is_better { a / b } else { b / a })
}

/// A metric's name, how to read it from a phase, and whether higher is better.
type Metric = (&'static str, fn(&PhaseResult) -> f64, bool);

/// Ratios of rate, p50 and p99 for every phase both targets measured.
pub fn ratios(a: &TargetReport, b: &TargetReport) -> Vec<Ratio> {
    let mut out = Vec::new();
    for (index, pa) in a.phases.iter().enumerate() {
        let Some(pb) = b.phases.iter().find(|p| p.id == pa.id) else {
            continue;
        };
        if !(pa.measured() && pb.measured()) {
            continue;
        }
        let first = if order(index, 2)[0] == 0 { "A" } else { "B" };
        let metrics: [Metric; 3] = [
            ("rate", |p| p.rate, true),
            ("p50", |p| p.latency.p50_ms, false),
            ("p99", |p| p.latency.p99_ms, false),
        ];
        for (metric, get, higher) in metrics {
            if let Some(t) = times_better(get(pa), get(pb), higher) {
                out.push(Ratio {
                    phase: pa.id.clone(),
                    metric: metric.to_string(),
                    a: get(pa),
                    b: get(pb),
                    times_better: t,
                    first: first.to_string(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Outcome, Unit};
    use crate::bench::stats::LatencySummary;

    fn phase(id: &str, rate: f64, p50: f64, p99: f64, outcome: Outcome) -> PhaseResult {
        PhaseResult {
            id: id.into(),
            workload: "w".into(),
            title: id.into(),
            outcome,
            detail: None,
            unit: Unit::Ops,
            concurrency: 1,
            ops: 10,
            errors: 0,
            bytes: 0,
            elapsed_s: 1.0,
            rate,
            latency: LatencySummary {
                count: 10,
                mean_ms: p50,
                p50_ms: p50,
                p99_ms: p99,
                max_ms: p99,
            },
            client_cpu_s: 0.0,
            server: None,
        }
    }

    fn target(label: &str, phases: Vec<PhaseResult>) -> TargetReport {
        TargetReport {
            label: label.into(),
            url: format!("http://{label}"),
            pid: None,
            phases,
            cleanup: None,
            peak_rss_mib: None,
        }
    }

    #[test]
    fn order_alternates() {
        assert_eq!(order(0, 2), vec![0, 1]);
        assert_eq!(order(1, 2), vec![1, 0]);
        assert_eq!(order(2, 2), vec![0, 1]);
        assert_eq!(order(7, 2), vec![1, 0]);
        assert_eq!(order(3, 1), vec![0]);
    }

    #[test]
    fn higher_and_lower_is_better() {
        assert_eq!(times_better(10.0, 2.0, true), Some(5.0));
        assert_eq!(times_better(1.0, 5.0, false), Some(5.0));
        assert_eq!(times_better(5.0, 1.0, false), Some(0.2));
        assert_eq!(times_better(0.0, 1.0, true), None);
        assert_eq!(times_better(1.0, f64::NAN, true), None);
    }

    #[test]
    fn ratios_pair_phases_by_id_and_skip_unmeasured() {
        let a = target(
            "A",
            vec![
                phase("x", 100.0, 1.0, 4.0, Outcome::Ok),
                phase("y", 100.0, 1.0, 4.0, Outcome::Ok),
                phase("z", 100.0, 1.0, 4.0, Outcome::Ok),
            ],
        );
        let b = target(
            "B",
            vec![
                phase("z", 50.0, 2.0, 20.0, Outcome::Partial),
                phase("x", 20.0, 3.0, 8.0, Outcome::Ok),
                phase("y", 0.0, 0.0, 0.0, Outcome::Unsupported),
            ],
        );
        let r = ratios(&a, &b);
        let get = |p: &str, m: &str| {
            r.iter()
                .find(|x| x.phase == p && x.metric == m)
                .map(|x| (x.times_better, x.first.clone()))
        };
        assert_eq!(get("x", "rate"), Some((5.0, "A".into())));
        assert_eq!(get("x", "p50"), Some((3.0, "A".into())));
        assert_eq!(get("x", "p99"), Some((2.0, "A".into())));
        assert_eq!(get("y", "rate"), None);
        assert_eq!(get("z", "rate"), Some((2.0, "A".into())));
        assert_eq!(get("z", "p99"), Some((5.0, "A".into())));
        assert_eq!(r.len(), 6);
    }

    #[test]
    fn first_follows_the_interleaving() {
        let a = target(
            "A",
            vec![
                phase("p0", 1.0, 1.0, 1.0, Outcome::Ok),
                phase("p1", 1.0, 1.0, 1.0, Outcome::Ok),
            ],
        );
        let r = ratios(&a, &a.clone());
        let firsts: Vec<_> = r
            .iter()
            .filter(|x| x.metric == "rate")
            .map(|x| x.first.as_str())
            .collect();
        assert_eq!(firsts, ["A", "B"]);
    }
}
