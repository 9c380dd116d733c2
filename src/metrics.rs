//! Prometheus metrics: what an operator scrapes from `/metrics`.
//!
//! One [`Metrics`] lives in each registry; the api layer counts requests, bytes and
//! refusals, the registry counts garbage collection and storage faults, and the
//! scrape fills the storage gauges from the stores just before encoding. Labels
//! are bounded sets (route templates, methods, status codes, reasons): never a
//! repository name or a digest. Built on `prometheus-client`, the Prometheus
//! project's own Rust client; its OpenMetrics text is served in the classic
//! Prometheus format, which every scraper and `promtool check metrics` read.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry as PromRegistry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What the stores hold, read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageTotals {
    /// Blobs stored.
    pub blobs: u64,
    /// Bytes of those blobs.
    pub blob_bytes: u64,
    /// Manifests stored (each repository's copy counts once).
    pub manifests: u64,
    /// Upload sessions open.
    pub uploads: u64,
    /// Bytes held by open upload sessions.
    pub upload_bytes: u64,
}

/// What one garbage collection did, for the metrics and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcRun {
    /// How long it took.
    pub duration: Duration,
    /// Blobs removed.
    pub blobs: u64,
    /// Manifests removed.
    pub manifests: u64,
    /// Bytes given back.
    pub bytes: u64,
}

/// Every metric family Marina exports.
pub struct Metrics {
    registry: PromRegistry,
    /// The families counted at scrape time (what the stores hold), encoded
    /// only when the count succeeds.
    storage: PromRegistry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    received: Counter,
    sent: Counter,
    refusals: Family<ReasonLabels, Counter>,
    lockouts: Counter,
    storage_full: Counter,
    gc_runs: Counter,
    gc_seconds: Histogram,
    gc_removed: Family<KindLabels, Counter>,
    gc_bytes: Counter,
    stored: Family<KindLabels, Gauge>,
    stored_bytes: Gauge,
    uploads: Gauge,
    upload_bytes: Gauge,
    cache: Family<CacheLabels, Counter>,
    upstream_bytes: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~100 s.
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 100.0,
    ])
}

impl Metrics {
    /// Registers every family, at zero.
    pub fn new() -> Self {
        let mut registry = PromRegistry::with_prefix("marina");
        let mut storage = PromRegistry::with_prefix("marina");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            received: Counter::default(),
            sent: Counter::default(),
            refusals: Family::default(),
            lockouts: Counter::default(),
            storage_full: Counter::default(),
            gc_runs: Counter::default(),
            gc_seconds: Histogram::new([0.01, 0.1, 1.0, 10.0, 60.0, 600.0]),
            gc_removed: Family::default(),
            gc_bytes: Counter::default(),
            stored: Family::default(),
            stored_bytes: Gauge::default(),
            uploads: Gauge::default(),
            upload_bytes: Gauge::default(),
            cache: Family::default(),
            upstream_bytes: Counter::default(),
            registry: PromRegistry::default(),
            storage: PromRegistry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response headers, by route template",
            Unit::Seconds,
            m.latency.clone(),
        );
        registry.register_with_unit(
            "http_received",
            "Request body bytes received",
            Unit::Bytes,
            m.received.clone(),
        );
        registry.register_with_unit(
            "http_sent",
            "Response body bytes sent (as declared by Content-Length)",
            Unit::Bytes,
            m.sent.clone(),
        );
        registry.register(
            "auth_refusals",
            "Requests refused by access control, by reason",
            m.refusals.clone(),
        );
        registry.register(
            "auth_lockouts",
            "Answers of 429 to an address locked out after failed logins",
            m.lockouts.clone(),
        );
        registry.register(
            "storage_full_errors",
            "Writes refused because the storage is full (answered 507)",
            m.storage_full.clone(),
        );
        registry.register(
            "pull_through",
            "Answers of the pull-through cache by kind (manifest, blob, list) and result (hit, miss, revalidated, stale, merged, head, unknown, error)",
            m.cache.clone(),
        );
        registry.register_with_unit(
            "pull_through_upstream",
            "Blob bytes downloaded from upstream registries",
            Unit::Bytes,
            m.upstream_bytes.clone(),
        );
        registry.register("gc_runs", "Garbage collections run", m.gc_runs.clone());
        registry.register_with_unit(
            "gc_duration",
            "Time taken by one garbage collection",
            Unit::Seconds,
            m.gc_seconds.clone(),
        );
        registry.register(
            "gc_removed",
            "Objects removed by garbage collection, by kind",
            m.gc_removed.clone(),
        );
        registry.register_with_unit(
            "gc_removed",
            "Bytes given back by garbage collection",
            Unit::Bytes,
            m.gc_bytes.clone(),
        );
        storage.register(
            "stored",
            "Objects held in the stores, by kind (blob, manifest)",
            m.stored.clone(),
        );
        storage.register_with_unit(
            "stored_blobs",
            "Bytes of the blobs held",
            Unit::Bytes,
            m.stored_bytes.clone(),
        );
        storage.register(
            "uploads_in_progress",
            "Upload sessions open",
            m.uploads.clone(),
        );
        storage.register_with_unit(
            "uploads_in_progress",
            "Bytes held by open upload sessions",
            Unit::Bytes,
            m.upload_bytes.clone(),
        );
        // A gauge at 1 rather than an OpenMetrics `info`, which the classic text
        // parser (promtool, older Prometheus) does not know.
        let build: Family<VersionLabels, Gauge> = Family::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running Marina's version", build);
        Metrics {
            registry,
            storage,
            ..m
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
        received: u64,
        sent: u64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
        self.received.inc_by(received);
        self.sent.inc_by(sent);
    }

    /// Counts a refusal by access control (`reason` is one of a few fixed words).
    pub fn refusal(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
        if reason == "throttled" {
            self.lockouts.inc();
        }
    }

    /// Counts an answer of the pull-through cache (`kind` and `result` are
    /// fixed words).
    pub fn pull_through(&self, kind: &'static str, result: &'static str) {
        self.cache
            .get_or_create(&CacheLabels { kind, result })
            .inc();
    }

    /// Counts blob bytes downloaded from an upstream.
    pub fn upstream_bytes(&self, n: u64) {
        self.upstream_bytes.inc_by(n);
    }

    /// Counts a write refused for lack of space.
    pub fn storage_full(&self) {
        self.storage_full.inc();
    }

    /// Records one garbage collection.
    pub fn gc(&self, run: &GcRun) {
        self.gc_runs.inc();
        self.gc_seconds.observe(run.duration.as_secs_f64());
        self.gc_removed
            .get_or_create(&KindLabels { kind: "blob" })
            .inc_by(run.blobs);
        self.gc_removed
            .get_or_create(&KindLabels { kind: "manifest" })
            .inc_by(run.manifests);
        self.gc_bytes.inc_by(run.bytes);
    }

    /// The text a scrape answers, with the storage gauges set from `totals`;
    /// without totals (the stores could not be counted) those gauges are left
    /// out rather than showing the last count as current.
    pub fn encode(&self, totals: Option<StorageTotals>) -> String {
        let mut out = String::with_capacity(8 << 10);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        if let Some(t) = totals {
            let set = |g: &Gauge, v: u64| {
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            set(
                &self.stored.get_or_create(&KindLabels { kind: "blob" }),
                t.blobs,
            );
            set(
                &self.stored.get_or_create(&KindLabels { kind: "manifest" }),
                t.manifests,
            );
            set(&self.stored_bytes, t.blob_bytes);
            set(&self.uploads, t.uploads);
            set(&self.upload_bytes, t.upload_bytes);
            let _ = prometheus_client::encoding::text::encode(&mut out, &self.storage);
        }
        classic_text(&out)
    }
}

/// OpenMetrics text as Prometheus's classic format: counters' `HELP` and `TYPE`
/// name the `_total` samples, and the `UNIT` and `EOF` lines go.
fn classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match header {
            Some((p, rest)) => {
                let name = rest.split(' ').next().unwrap_or("");
                if counters.contains(name) {
                    out.push_str(p);
                    out.push_str(name);
                    out.push_str("_total");
                    out.push_str(&rest[name.len()..]);
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_counted_under_its_route_template_method_and_status() {
        let m = Metrics::new();
        m.request(
            "/v2/{name}/manifests/{reference}",
            "GET",
            200,
            Duration::from_millis(3),
            0,
            512,
        );
        let text = m.encode(None);
        assert!(
            text.contains(
                r#"marina_http_requests_total{route="/v2/{name}/manifests/{reference}",method="GET",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("marina_http_sent_bytes_total 512"), "{text}");
        assert!(
            text.contains("# TYPE marina_http_requests_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn storage_gauges_take_the_totals_of_the_scrape() {
        let m = Metrics::new();
        let text = m.encode(Some(StorageTotals {
            blobs: 3,
            blob_bytes: 4096,
            manifests: 2,
            uploads: 1,
            upload_bytes: 10,
        }));
        assert!(text.contains(r#"marina_stored{kind="blob"} 3"#), "{text}");
        assert!(
            text.contains(r#"marina_stored{kind="manifest"} 2"#),
            "{text}"
        );
        assert!(text.contains("marina_stored_blobs_bytes 4096"), "{text}");
        assert!(text.contains("marina_uploads_in_progress 1"), "{text}");
        assert!(
            text.contains("marina_uploads_in_progress_bytes 10"),
            "{text}"
        );
    }

    #[test]
    fn storage_gauges_are_left_out_of_a_scrape_that_could_not_count() {
        let m = Metrics::new();
        m.encode(Some(StorageTotals {
            blobs: 3,
            blob_bytes: 4096,
            manifests: 2,
            uploads: 1,
            upload_bytes: 10,
        }));
        let text = m.encode(None);
        for family in ["marina_stored", "marina_uploads_in_progress"] {
            assert!(
                !text.lines().any(|l| l.starts_with(family)),
                "{family} in {text}"
            );
        }
        assert!(text.contains("marina_build_info"), "{text}");
        // Counted again, they are back with the new values.
        let text = m.encode(Some(StorageTotals {
            blobs: 5,
            ..StorageTotals::default()
        }));
        assert!(text.contains(r#"marina_stored{kind="blob"} 5"#), "{text}");
        assert_eq!(text.matches("# EOF").count(), 0, "{text}");
    }

    #[test]
    fn a_throttled_refusal_is_also_a_lockout() {
        let m = Metrics::new();
        m.refusal("throttled");
        m.refusal("credentials");
        let text = m.encode(None);
        assert!(text.contains("marina_auth_lockouts_total 1"), "{text}");
        assert!(
            text.contains(r#"marina_auth_refusals_total{reason="credentials"} 1"#),
            "{text}"
        );
    }
}
