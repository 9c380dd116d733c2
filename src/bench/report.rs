//! What a benchmark run produces: per target, one result per phase; with a second
//! target, the ratios between them. Serialised as the `--json` file, rendered by
//! `table` and `html`.

use serde::{Deserialize, Serialize};

use super::procstat::Usage;
use super::stats::LatencySummary;

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `marina bench <version>`.
    pub tool: String,
    /// When the run started, RFC 3339 UTC.
    pub started: String,
    /// The machine the run was on.
    pub machine: Machine,
    /// The settings used (sizes, counts, concurrency, limits).
    pub settings: serde_json::Value,
    /// Repository prefix of this run (every repository pushed to starts with it).
    pub prefix: String,
    /// One entry per registry: `A` is the URL given, `B` the `--compare` URL.
    pub targets: Vec<TargetReport>,
    /// A against B, phase by phase (empty without `--compare`).
    pub comparison: Vec<Ratio>,
}

/// The machine running the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU model name, from `/proc/cpuinfo` when available.
    pub cpu_model: String,
    /// Kernel release, from `/proc/sys/kernel/osrelease` when available.
    pub kernel: String,
    /// Load averages (1, 5, 15 minutes) when the run started, from `/proc/loadavg`:
    /// other work on the machine skews absolute figures (ratios less so).
    pub load: String,
    /// Free memory and page cache when the run started, from `/proc/meminfo`
    /// (empty when unknown): once the page cache fills memory, every page a
    /// push writes must be reclaimed first, and writes take about twice the CPU.
    #[serde(default)]
    pub memory: String,
}

/// Results for one registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    /// `A` or `B`.
    pub label: String,
    /// Base URL.
    pub url: String,
    /// Server process watched through `/proc`, if given.
    pub pid: Option<u32>,
    /// Phases in the order they ran.
    pub phases: Vec<PhaseResult>,
    /// What cleanup removed, if it ran.
    pub cleanup: Option<CleanupSummary>,
    /// Highest resident set of the server over the whole run (MiB): the largest of
    /// the sampled `VmRSS` values and the final `VmHWM`.
    pub peak_rss_mib: Option<f64>,
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything planned ran without error.
    Ok,
    /// Ran, but stopped at the phase's time limit or saw some errors; counts are what finished.
    Partial,
    /// The registry does not offer what the phase measures (e.g. no referrers API).
    Unsupported,
    /// Nothing could be measured.
    Failed,
}

/// What a phase's rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Bytes moved: the rate is MiB/s.
    Bytes,
    /// Operations (requests, pushes, tags): the rate is per second.
    Ops,
}

/// One measured phase against one registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    /// Stable identifier, e.g. `push-mono-256MiB`.
    pub id: String,
    /// The workload it belongs to (what `--workloads` selects).
    pub workload: String,
    /// Human description.
    pub title: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it is partial, unsupported or failed, or a note on how it ran.
    pub detail: Option<String>,
    /// What `rate` counts.
    pub unit: Unit,
    /// Concurrent requests in flight.
    pub concurrency: usize,
    /// Operations completed successfully.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Payload bytes moved by the successful operations.
    pub bytes: u64,
    /// Wall-clock seconds of the measured part.
    pub elapsed_s: f64,
    /// MiB/s for `bytes` phases, operations/s otherwise.
    pub rate: f64,
    /// Latency of one operation.
    pub latency: LatencySummary,
    /// CPU seconds the benchmark client used during the phase.
    pub client_cpu_s: f64,
    /// The server's CPU and memory during the phase (with `--server-pid`).
    pub server: Option<Usage>,
}

impl PhaseResult {
    /// The rate with its unit, e.g. `812.3 MiB/s` or `10234 req/s`.
    pub fn rate_text(&self) -> String {
        match self.unit {
            Unit::Bytes => format!("{:.1} MiB/s", self.rate),
            Unit::Ops => format!("{:.0} /s", self.rate),
        }
    }

    /// The server's CPU time per successful operation, in microseconds (with
    /// `--server-pid`): what one request costs the server, whatever the load
    /// generator could drive.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let usage = self.server?;
        (self.ops > 0).then(|| usage.cpu_s * 1e6 / self.ops as f64)
    }

    /// Whether the phase produced numbers worth comparing.
    pub fn measured(&self) -> bool {
        matches!(self.outcome, Outcome::Ok | Outcome::Partial) && self.ops > 0
    }
}

/// What cleanup deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanupSummary {
    /// Manifests deleted by digest.
    pub manifests_deleted: u64,
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Deletions the registry refused as not allowed (405), or skipped after that.
    pub refused: u64,
    /// Deletions that failed otherwise (or did not run before the time limit).
    pub failed: u64,
}

/// One metric of one phase, A against B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// Phase id.
    pub phase: String,
    /// `rate`, `p50` or `p99`.
    pub metric: String,
    /// A's value.
    pub a: f64,
    /// B's value.
    pub b: f64,
    /// How many times better A is: A/B for rates, B/A for latencies.
    pub times_better: f64,
    /// Which registry ran the phase first (`A` or `B`).
    pub first: String,
}
