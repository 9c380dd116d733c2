//! The `--html` report: one self-contained page (inline CSS and SVG, no scripts, no
//! external assets) with a bar chart and a table per workload.

use std::fmt::Write as _;

use super::report::{PhaseResult, Report, TargetReport, Unit};

pub use crate::markup::escape;

const COLORS: [&str; 2] = ["#2563eb", "#f97316"];
const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:980px;color:#111}\
table{border-collapse:collapse;margin:.5em 0 2em;font-size:13px}\
td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}\
.note{color:#555;font-size:12px;text-align:left}\
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
svg text{font-size:12px;font-family:system-ui,sans-serif}";

/// Workloads in the order their first phase ran.
fn workloads(r: &Report) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for p in r
        .targets
        .first()
        .map(|t| t.phases.as_slice())
        .unwrap_or_default()
    {
        if !v.contains(&p.workload) {
            v.push(p.workload.clone());
        }
    }
    v
}

fn phase<'a>(t: &'a TargetReport, id: &str) -> Option<&'a PhaseResult> {
    t.phases.iter().find(|p| p.id == id)
}

/// A horizontal bar chart of the rates of `ids`, one bar per target, scaled per unit.
fn chart(r: &Report, ids: &[&PhaseResult]) -> String {
    const LABEL: f64 = 190.0;
    const BARS: f64 = 560.0;
    const ROW: f64 = 18.0;
    let n = r.targets.len();
    let max_of = |unit: Unit| {
        r.targets
            .iter()
            .flat_map(|t| ids.iter().filter_map(|p| phase(t, &p.id)))
            .filter(|p| p.unit == unit && p.measured())
            .map(|p| p.rate)
            .fold(0.0f64, f64::max)
    };
    let height = ids.len() as f64 * (ROW * n as f64 + 8.0) + 4.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\">\n",
        w = LABEL + BARS + 120.0
    );
    let mut y = 4.0;
    for p in ids {
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\">{}</text>",
            y + ROW * n as f64 / 2.0 + 4.0,
            escape(&p.id)
        );
        for (i, t) in r.targets.iter().enumerate() {
            let text = match phase(t, &p.id) {
                Some(q) if q.measured() => {
                    let max = max_of(q.unit);
                    let w = if max > 0.0 { q.rate / max * BARS } else { 0.0 };
                    let _ = write!(
                        s,
                        "<rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>",
                        ROW - 3.0,
                        COLORS[i % 2],
                        escape(&t.label),
                        escape(&q.rate_text())
                    );
                    (LABEL + w + 4.0, q.rate_text())
                }
                Some(q) => (LABEL + 4.0, format!("{:?}", q.outcome).to_lowercase()),
                None => (LABEL + 4.0, "-".into()),
            };
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                text.0,
                y + ROW - 6.0,
                escape(&text.1)
            );
            y += ROW;
        }
        y += 8.0;
        s.push('\n');
    }
    s.push_str("</svg>");
    s
}

fn table(r: &Report, ids: &[&PhaseResult]) -> String {
    let mut s = String::from("<table><tr><th>phase</th>");
    for t in &r.targets {
        let l = escape(&t.label);
        let _ = write!(
            s,
            "<th>{l} rate</th><th>{l} p50 ms</th><th>{l} p99 ms</th><th>{l} ops</th>"
        );
        if t.pid.is_some() {
            let _ = write!(s, "<th>{l} cpu s</th><th>{l} rss MiB</th>");
        }
    }
    if r.targets.len() == 2 {
        s.push_str("<th>× rate</th><th>× p99</th>");
    }
    s.push_str("</tr>\n");
    for p in ids {
        let _ = write!(
            s,
            "<tr><td title=\"{}\">{}</td>",
            escape(&p.title),
            escape(&p.id)
        );
        for t in &r.targets {
            match phase(t, &p.id) {
                Some(q) if q.measured() => {
                    let _ = write!(
                        s,
                        "<td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td>",
                        escape(&q.rate_text()),
                        q.latency.p50_ms,
                        q.latency.p99_ms,
                        q.ops
                    );
                }
                Some(q) => {
                    let _ = write!(
                        s,
                        "<td>{}</td><td></td><td></td><td>{}</td>",
                        format!("{:?}", q.outcome).to_lowercase(),
                        q.ops
                    );
                }
                None => s.push_str("<td>-</td><td></td><td></td><td></td>"),
            }
            if t.pid.is_some() {
                match phase(t, &p.id).and_then(|q| q.server) {
                    Some(u) => {
                        let _ = write!(s, "<td>{:.2}</td><td>{:.0}</td>", u.cpu_s, u.rss_max_mib);
                    }
                    None => s.push_str("<td></td><td></td>"),
                }
            }
        }
        if r.targets.len() == 2 {
            for metric in ["rate", "p99"] {
                let x = r
                    .comparison
                    .iter()
                    .find(|x| x.phase == p.id && x.metric == metric)
                    .map_or_else(|| "-".into(), |x| format!("{:.2}×", x.times_better));
                let _ = write!(s, "<td>{x}</td>");
            }
        }
        s.push_str("</tr>\n");
        for t in &r.targets {
            if let Some(d) = phase(t, &p.id).and_then(|q| q.detail.as_ref()) {
                let _ = writeln!(
                    s,
                    "<tr><td class=\"note\" colspan=\"20\">[{}] {}</td></tr>",
                    escape(&t.label),
                    escape(d)
                );
            }
        }
    }
    s.push_str("</table>");
    s
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>marina bench — {}</title><style>{STYLE}</style></head><body>\n",
        escape(&r.started)
    );
    let _ = write!(
        s,
        "<h1>marina bench</h1><p>{} — {} — {} × {}, Linux {}, load {}{}</p><p class=\"legend\">",
        escape(&r.tool),
        escape(&r.started),
        r.machine.cpus,
        escape(&r.machine.cpu_model),
        escape(&r.machine.kernel),
        escape(&r.machine.load),
        if r.machine.memory.is_empty() {
            String::new()
        } else {
            format!(", {}", escape(&r.machine.memory))
        }
    );
    for (i, t) in r.targets.iter().enumerate() {
        let _ = write!(
            s,
            "<span style=\"background:{}\"></span>{}: {}",
            COLORS[i % 2],
            escape(&t.label),
            escape(&t.url)
        );
        if let Some(peak) = t.peak_rss_mib {
            let _ = write!(s, " (peak RSS {peak:.0} MiB)");
        }
    }
    s.push_str("</p>\n");
    if r.targets.len() == 2 {
        s.push_str("<p>×: how many times better A is than B (rate A/B, latency B/A). Phases ran alternately, A first then B first.</p>\n");
    }
    let Some(first) = r.targets.first() else {
        s.push_str("</body></html>\n");
        return s;
    };
    for w in workloads(r) {
        let ids: Vec<&PhaseResult> = first.phases.iter().filter(|p| p.workload == w).collect();
        let _ = writeln!(
            s,
            "<section><h2>{}</h2>\n{}\n{}</section>",
            escape(&w),
            chart(r, &ids),
            table(r, &ids)
        );
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_report_page() {
        let page = render(&crate::bench::fixture::sample_report());
        assert_eq!(page.matches("<svg").count(), 4, "a chart per workload");
        assert!(
            page.contains("push-mono-256MiB &lt;title&gt;"),
            "text is escaped"
        );
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("bench_report_html", page);
        });
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
