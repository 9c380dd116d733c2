//! `marina bench`: measure a registry (or two, compared) and print a table; keep
//! the results as JSON or a self-contained HTML page.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::bench::report::Outcome;
use crate::bench::settings::{parse_duration, parse_size, Settings, Workload};
use crate::bench::{html, progress::Progress, table, TargetSpec};
use crate::client::Credentials;

/// Options of `marina bench`. Sizes take `B`, `KiB`, `MiB`, `GiB`; durations `ms`, `s`, `m`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  marina bench http://127.0.0.1:5000\n  marina bench http://127.0.0.1:5000 --compare http://127.0.0.1:5001 --server-pid 1234 --compare-pid 5678 --html bench.html\n  marina bench http://127.0.0.1:5000 --workloads manifests,tag-list --tags 10000"
)]
pub struct BenchArgs {
    /// The registry to measure, e.g. http://127.0.0.1:5000 (the only host contacted,
    /// with the --compare one).
    pub url: String,
    /// A second registry: every phase runs against both, alternately, and the
    /// table shows how many times better the first is.
    #[arg(long, value_name = "URL")]
    pub compare: Option<String>,
    /// Credentials, sent to each registry that asks for them (401 on /v2/):
    /// Basic, or Bearer tokens from the registry's own token endpoint.
    #[command(flatten)]
    pub login: super::connect::LoginArgs,
    /// Process id of the first registry's server: adds its CPU seconds and resident
    /// memory per phase (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Process id of the --compare registry's server.
    #[arg(long, value_name = "PID", requires = "compare")]
    pub compare_pid: Option<u32>,
    /// Workloads to run, comma-separated [default: all]: blob-push, blob-pull,
    /// manifests, small-blobs, tag-push, tag-list, referrers, catalog.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub workloads: Vec<Workload>,
    /// Blob sizes pushed and pulled, comma-separated.
    #[arg(long, value_name = "SIZES", value_delimiter = ',', value_parser = parse_size, default_value = "1MiB,10MiB,100MiB,256MiB")]
    pub sizes: Vec<u64>,
    /// Chunk size of chunked pushes.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "8MiB")]
    pub chunk_size: u64,
    /// Bytes pushed per size and push kind: each size is pushed budget/size times
    /// (at least 1, at most 50), and pulled as often.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256MiB")]
    pub push_budget: u64,
    /// Length of each ranged read.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1MiB")]
    pub range_size: u64,
    /// Connections for manifest GET and HEAD.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// Concurrency of small blob pushes, tag pushes, ranged reads, seeding and cleanup.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// How long each request-rate phase (manifests, pages, ranges) runs.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub duration: Duration,
    /// Most requests in one request-rate phase.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Small blobs pushed.
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    pub small_blobs: u64,
    /// Size of each small blob.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "4KiB")]
    pub small_blob_size: u64,
    /// Tags pushed one PUT each.
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    pub tag_pushes: u64,
    /// Tags seeded for the tag list pages.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub tags: u64,
    /// Page size (n) of tag list and catalog requests.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub page: u64,
    /// Referrers seeded for one subject.
    #[arg(long, value_name = "N", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub referrers: u64,
    /// Repositories seeded for the catalog pages.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub repos: u64,
    /// Time limit of any one phase, seeding and cleanup included.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub phase_timeout: Duration,
    /// Leave what was pushed in place (by default it is deleted where the registry allows).
    #[arg(long)]
    pub no_cleanup: bool,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML page with a chart per workload to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// No progress bars and no per-phase lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl BenchArgs {
    /// The run's settings.
    pub fn settings(&self) -> Settings {
        let workloads = if self.workloads.is_empty() {
            Workload::ALL.to_vec()
        } else {
            Workload::ALL
                .into_iter()
                .filter(|w| self.workloads.contains(w))
                .collect()
        };
        Settings {
            workloads,
            sizes: self.sizes.clone(),
            chunk_size: self.chunk_size,
            push_budget: self.push_budget,
            range_size: self.range_size,
            connections: self.connections as usize,
            concurrency: self.concurrency as usize,
            duration: self.duration,
            max_requests: self.max_requests.max(1),
            small_blobs: self.small_blobs,
            small_blob_size: self.small_blob_size,
            tag_pushes: self.tag_pushes,
            tags: self.tags,
            page: self.page,
            referrers: self.referrers,
            repos: self.repos,
            phase_timeout: self.phase_timeout,
            cleanup: !self.no_cleanup,
        }
    }

    /// The registries, in order, with the credentials given.
    pub fn targets(&self, credentials: Option<Credentials>) -> Vec<TargetSpec> {
        let mut v = vec![TargetSpec {
            url: self.url.clone(),
            pid: self.server_pid,
            credentials: credentials.clone(),
        }];
        if let Some(url) = &self.compare {
            v.push(TargetSpec {
                url: url.clone(),
                pid: self.compare_pid,
                credentials,
            });
        }
        v
    }
}

/// Runs the benchmark; exit code 1 when a phase failed outright, 2 when the run
/// could not start or its files could not be written.
pub fn run(args: BenchArgs) -> ExitCode {
    // A report that cannot be written fails now, not after the whole run.
    for path in [&args.json, &args.html].into_iter().flatten() {
        if let Err(e) = super::writable(path) {
            eprintln!("marina bench: {e}");
            return ExitCode::from(2);
        }
    }
    let credentials = match args.login.credentials() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("marina bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("marina bench: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let quiet = args.quiet;
    let result = rt.block_on(crate::bench::run(
        args.settings(),
        &args.targets(credentials),
        Progress::new(quiet),
        |label, r| {
            if !quiet {
                eprintln!(
                    "[{label}] {:<24} {:>14}  p50 {:.2} ms  p99 {:.2} ms{}",
                    r.id,
                    if r.measured() {
                        r.rate_text()
                    } else {
                        format!("{:?}", r.outcome).to_lowercase()
                    },
                    r.latency.p50_ms,
                    r.latency.p99_ms,
                    r.detail
                        .as_deref()
                        .map(|d| format!("  ({d})"))
                        .unwrap_or_default()
                );
            }
        },
    ));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("marina bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    print!("{}", table::render(&report));
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("marina bench: cannot write {}: {e}", path.display());
            code = ExitCode::from(2);
        }
    }
    if let Some(path) = &args.html {
        if let Err(e) = std::fs::write(path, html::render(&report)) {
            eprintln!("marina bench: cannot write {}: {e}", path.display());
            code = ExitCode::from(2);
        }
    }
    let failed = report
        .targets
        .iter()
        .flat_map(|t| &t.phases)
        .any(|p| p.outcome == Outcome::Failed);
    if failed && code == ExitCode::SUCCESS {
        code = ExitCode::FAILURE;
    }
    code
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    use super::*;

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut v = vec!["marina", "bench"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v)?.command {
            Command::Bench(b) => Ok(b),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_settings_defaults() {
        let b = parse(&["http://127.0.0.1:5000"]).expect("parses");
        let s = b.settings();
        let d = Settings::default();
        assert_eq!(s.workloads, d.workloads);
        assert_eq!(s.sizes, d.sizes);
        assert_eq!(
            (s.tags, s.referrers, s.repos, s.connections, s.concurrency),
            (d.tags, d.referrers, d.repos, d.connections, d.concurrency)
        );
        assert_eq!(
            (s.duration, s.phase_timeout, s.cleanup),
            (d.duration, d.phase_timeout, d.cleanup)
        );
        assert_eq!(b.targets(None).len(), 1);
    }

    #[test]
    fn options_reach_the_settings() {
        let b = parse(&[
            "http://a:1",
            "--compare",
            "http://b:2",
            "--server-pid",
            "10",
            "--compare-pid",
            "20",
            "--workloads",
            "catalog,manifests",
            "--sizes",
            "4KiB,2MiB",
            "--duration",
            "500ms",
            "--no-cleanup",
        ])
        .expect("parses");
        let s = b.settings();
        assert_eq!(
            s.workloads,
            [Workload::Manifests, Workload::Catalog],
            "run order, not given order"
        );
        assert_eq!(s.sizes, [4096, 2 << 20]);
        assert_eq!(s.duration, Duration::from_millis(500));
        assert!(!s.cleanup);
        let t = b.targets(None);
        assert_eq!((t[0].pid, t[1].pid), (Some(10), Some(20)));
        assert_eq!(t[1].url, "http://b:2");
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&["http://a", "--workloads", "nope"]).is_err());
        assert!(parse(&["http://a", "--sizes", "0"]).is_err());
        assert!(
            parse(&["http://a", "--compare-pid", "3"]).is_err(),
            "needs --compare"
        );
        assert!(parse(&["http://a", "--connections", "0"]).is_err());
        assert!(parse(&[]).is_err(), "URL required");
    }
}
