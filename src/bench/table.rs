//! The plain-text report on stdout: one row per phase, one column group per
//! registry, ratio columns when comparing, and the phases' notes underneath.

use std::fmt::Write as _;

use super::report::{PhaseResult, Report};

/// Renders rows as columns, left-aligning the first and right-aligning the rest.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c == 0 {
                let _ = write!(line, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn rate(p: &PhaseResult) -> String {
    if p.measured() {
        p.rate_text()
    } else {
        format!("{:?}", p.outcome).to_lowercase()
    }
}

fn times(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.2}×"))
}

/// Server CPU seconds, CPU microseconds per operation, peak RSS.
fn server_cells(p: Option<&PhaseResult>) -> [String; 3] {
    match p.and_then(|p| p.server.map(|u| (u, p.server_cpu_us_per_op()))) {
        Some((u, per_op)) => [
            format!("{:.2}", u.cpu_s),
            per_op.map_or_else(|| "-".into(), |us| format!("{us:.0}")),
            format!("{:.0}", u.rss_max_mib),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

/// The header lines: tool, date, machine, targets.
fn header(r: &Report) -> String {
    let mut s = format!(
        "{} — {} — {} × {}, Linux {}, load {}",
        r.tool, r.started, r.machine.cpus, r.machine.cpu_model, r.machine.kernel, r.machine.load
    );
    if !r.machine.memory.is_empty() {
        let _ = write!(s, ", {}", r.machine.memory);
    }
    s.push('\n');
    for t in &r.targets {
        let _ = write!(s, "{}: {}", t.label, t.url);
        if let Some(pid) = t.pid {
            let _ = write!(s, " (server pid {pid}");
            if let Some(peak) = t.peak_rss_mib {
                let _ = write!(s, ", peak RSS {peak:.0} MiB");
            }
            s.push(')');
        }
        s.push('\n');
    }
    s
}

/// The whole text report.
pub fn render(r: &Report) -> String {
    let with_server = r.targets.iter().any(|t| t.pid.is_some());
    let mut out = header(r);
    out.push('\n');
    let rows = if r.targets.len() == 2 {
        compare_rows(r, with_server)
    } else {
        single_rows(r, with_server)
    };
    out.push_str(&columns(&rows));
    if r.targets.len() == 2 {
        out.push_str(
            "×: how many times better A is than B (rate A/B, latency B/A); latencies in ms\n",
        );
    }
    let notes: Vec<String> = r
        .targets
        .iter()
        .flat_map(|t| {
            t.phases.iter().filter_map(move |p| {
                p.detail
                    .as_ref()
                    .map(|d| format!("  [{}] {}: {d}", t.label, p.id))
            })
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

fn single_rows(r: &Report, with_server: bool) -> Vec<Vec<String>> {
    let mut head: Vec<String> = [
        "phase",
        "rate",
        "ops",
        "errors",
        "p50 ms",
        "p99 ms",
        "client cpu s",
    ]
    .map(String::from)
    .to_vec();
    if with_server {
        head.extend([
            "server cpu s".into(),
            "server cpu µs/op".into(),
            "server rss MiB".into(),
        ]);
    }
    let mut rows = vec![head];
    let Some(t) = r.targets.first() else {
        return rows;
    };
    for p in &t.phases {
        let mut row = vec![
            p.id.clone(),
            rate(p),
            p.ops.to_string(),
            p.errors.to_string(),
            ms(p.latency.p50_ms),
            ms(p.latency.p99_ms),
            format!("{:.2}", p.client_cpu_s),
        ];
        if with_server {
            row.extend(server_cells(Some(p)));
        }
        rows.push(row);
    }
    rows
}

fn compare_rows(r: &Report, with_server: bool) -> Vec<Vec<String>> {
    let mut head: Vec<String> = [
        "phase", "A rate", "B rate", "× rate", "A p50", "B p50", "× p50", "A p99", "B p99", "× p99",
    ]
    .map(String::from)
    .to_vec();
    if with_server {
        head.extend(
            [
                "A cpu s",
                "B cpu s",
                "A cpu µs/op",
                "B cpu µs/op",
                "A rss MiB",
                "B rss MiB",
            ]
            .map(String::from),
        );
    }
    let mut rows = vec![head];
    let (a, b) = (&r.targets[0], &r.targets[1]);
    let ratio = |id: &str, metric: &str| {
        r.comparison
            .iter()
            .find(|x| x.phase == id && x.metric == metric)
            .map(|x| x.times_better)
    };
    for pa in &a.phases {
        let pb = b.phases.iter().find(|p| p.id == pa.id);
        let cell = |p: Option<&PhaseResult>, f: fn(&PhaseResult) -> String| {
            p.map_or_else(|| "-".into(), f)
        };
        let lat = |p: Option<&PhaseResult>, p99: bool| match p {
            Some(p) if p.measured() => ms(if p99 {
                p.latency.p99_ms
            } else {
                p.latency.p50_ms
            }),
            _ => "-".into(),
        };
        let mut row = vec![
            pa.id.clone(),
            rate(pa),
            cell(pb, rate),
            times(ratio(&pa.id, "rate")),
            lat(Some(pa), false),
            lat(pb, false),
            times(ratio(&pa.id, "p50")),
            lat(Some(pa), true),
            lat(pb, true),
            times(ratio(&pa.id, "p99")),
        ];
        if with_server {
            let [ac, aop, ar] = server_cells(Some(pa));
            let [bc, bop, br] = server_cells(pb);
            row.extend([ac, bc, aop, bop, ar, br]);
        }
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_report_table() {
        let text = render(&crate::bench::fixture::sample_report());
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("bench_report_table", text);
        });
    }

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["a".to_string(), "1".into(), "xyz".into()],
            vec!["long name".to_string(), "12345".into(), "".into()],
        ];
        assert_eq!(columns(&rows), "a              1  xyz\nlong name  12345\n");
    }

    #[test]
    fn millisecond_precision_follows_magnitude() {
        assert_eq!(ms(0.123), "0.12");
        assert_eq!(ms(12.345), "12.3");
        assert_eq!(ms(1234.5), "1234");
    }
}
