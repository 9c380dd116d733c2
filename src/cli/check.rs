//! `marina check`: runs the spec harness against a registry and writes reports.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::connect::ConnectArgs;
use crate::harness::{self, catalog, checks, report, Options, Section};

/// Validate any registry against the OCI Distribution Specification, requirement by requirement.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  marina check http://127.0.0.1:5000\n  marina check https://registry.example.org --username me --password-stdin < token.txt\n  marina check http://127.0.0.1:5000 --section tags --section referrers --junit junit.xml\n  marina check https://ro.example.org --no-push --no-delete --image library/alpine:3.20 --ca-file ca.pem\n  marina check http://127.0.0.1:5000 --ns registry-1.example.org --ns-image library/alpine:3.20\n  marina check --list\n\nExit status: 0 when every MUST passes, 1 when one fails, 2 on usage or connection errors."
)]
pub struct CheckArgs {
    /// Registry base URL, e.g. http://127.0.0.1:5000 (the harness talks to `<URL>/v2/...`).
    #[arg(value_name = "URL", required_unless_present = "list")]
    pub url: Option<String>,
    /// Print the requirement catalog with the checks covering each requirement, then exit.
    #[arg(long)]
    pub list: bool,
    /// Prefix of every repository the run creates, e.g. --repo-prefix myorg/conformance
    /// (repositories are `<prefix>/<run id>-<purpose>`).
    #[arg(long, value_name = "NAME", default_value = "marina-check")]
    pub repo_prefix: String,
    /// Credentials and TLS trust.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Read-only registry: never push (checks that need pushes are skipped).
    #[arg(long)]
    pub no_push: bool,
    /// Never delete: delete checks are skipped and nothing is cleaned up afterwards.
    #[arg(long)]
    pub no_delete: bool,
    /// With --no-push: an existing image the pull checks read instead of pushing
    /// their own, as repository:tag, e.g. --image library/alpine:3.20.
    #[arg(long, value_name = "REPO:TAG")]
    pub image: Option<String>,
    /// A pull-through cache: an upstream host it proxies; `protocol.proxy` pulls
    /// --ns-image with `?ns=HOST`, e.g. --ns registry-1.example.org.
    #[arg(long, value_name = "HOST", requires = "ns_image")]
    pub ns: Option<String>,
    /// With --ns: an image of that upstream, under the upstream's own name, e.g.
    /// --ns-image library/alpine:3.20.
    #[arg(long, value_name = "REPO:TAG", requires = "ns")]
    pub ns_image: Option<String>,
    /// Run only these sections (repeatable), e.g. --section push --section tags.
    /// One of: protocol, pull, push, manifests, tags, referrers, delete, extensions, errors, properties.
    #[arg(long, value_name = "SECTION", value_parser = parse_section)]
    pub section: Vec<Section>,
    /// Run only checks whose id starts with this (repeatable), e.g. --only push.chunk.
    #[arg(long, value_name = "ID")]
    pub only: Vec<String>,
    /// Cases per property check, e.g. --cases 64 (more cases, longer run).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub cases: u32,
    /// Seed of the property checks, to replay a run, e.g. --seed 42 [default: a
    /// fresh one per run, printed in the report].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Referrers pushed by the referrers pagination check, e.g. --referrers 500.
    #[arg(long, value_name = "N", default_value_t = Options::default().referrers_count)]
    pub referrers: usize,
    /// Timeout of one HTTP request in seconds, e.g. --timeout 120.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// Write a JUnit XML report, e.g. --junit target/marina-check.xml.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the report as JSON, e.g. --json report.json.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report, e.g. --html report.html.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print each failure's HTTP transcript in the terminal summary.
    #[arg(short, long)]
    pub verbose: bool,
}

fn parse_section(s: &str) -> Result<Section, String> {
    Section::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Section::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown section {s:?}; use one of {}", names.join(", "))
    })
}

/// The catalog with coverage, as `--list` prints it.
pub fn render_list() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let reqs = catalog::requirements();
    let mut source = "";
    for r in reqs {
        if r.source != source {
            source = &r.source;
            let _ = writeln!(out, "== {source} ==");
        }
        let checks = if r.checks.is_empty() {
            "-".to_string()
        } else {
            r.checks.join(" ")
        };
        let _ = writeln!(
            out,
            "{} {:<10} {:<15} {}\n     checks: {checks}",
            r.id, r.level, r.binds, r.text
        );
    }
    let musts: Vec<_> = reqs
        .iter()
        .filter(|r| r.is_must() && r.is_registry_observable())
        .collect();
    let covered = musts.iter().filter(|r| !r.checks.is_empty()).count();
    let any = reqs.iter().filter(|r| !r.checks.is_empty()).count();
    let from = |sources: &[&str]| {
        reqs.iter()
            .filter(|r| sources.contains(&r.source.as_str()))
            .count()
    };
    let all = checks::all();
    let _ = writeln!(
        out,
        "\n{} spec requirements, {} from its extension rules, {} of the _marina extension; {covered} of {} registry-observable MUSTs covered; {any} requirements checked by {} checks.",
        from(&[catalog::SPEC]),
        from(&[catalog::EXTENSIONS_README, catalog::EXTENSIONS_OCI]),
        from(&[catalog::MARINA_EXTENSION]),
        musts.len(),
        all.len()
    );
    for c in all {
        let _ = writeln!(out, "  {:<34} [{}] {}", c.id, c.covers.join(" "), c.title);
    }
    out
}

fn options(a: &CheckArgs) -> Result<Options, String> {
    let credentials = a.connect.credentials()?;
    Ok(Options {
        repo_prefix: a.repo_prefix.clone(),
        credentials,
        ca_file: a.connect.ca_file.clone(),
        insecure: a.connect.insecure,
        push: !a.no_push,
        delete: !a.no_delete,
        sections: a.section.clone(),
        only: a.only.clone(),
        cases: a.cases,
        // A fresh seed per run explores new cases; the report prints it for replay.
        seed: a.seed.unwrap_or_else(rand::random),
        referrers_count: a.referrers,
        image: a.image.clone(),
        ns: a.ns.clone(),
        ns_image: a.ns_image.clone(),
        request_timeout_secs: a.timeout,
        progress: true,
    })
}

fn write(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs `marina check`.
pub fn run(a: CheckArgs) -> ExitCode {
    if a.list {
        print!("{}", render_list());
        return ExitCode::SUCCESS;
    }
    let url = a.url.clone().unwrap_or_default();
    // A report that cannot be written fails now, not after the whole run.
    for path in [&a.junit, &a.json, &a.html].into_iter().flatten() {
        if let Err(e) = super::writable(path) {
            eprintln!("marina check: {e}");
            return ExitCode::from(2);
        }
    }
    let opts = match options(&a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("marina check: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("marina check: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let rep = match rt.block_on(harness::check(&url, opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("marina check: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report::render_terminal(&rep, a.verbose));
    let writes = [
        (
            &a.junit,
            report::render_junit as fn(&harness::Report) -> String,
        ),
        (&a.json, harness::Report::to_json),
        (&a.html, report::render_html),
    ];
    for (path, render) in writes {
        if let Some(p) = path {
            if let Err(e) = write(p, &render(&rep)) {
                eprintln!("marina check: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(rep.exit_code())
}
