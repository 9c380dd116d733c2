//! Command-line entry points. Each subcommand lives in its own module and returns
//! the process exit code; this module only parses arguments and dispatches.

pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod conformance;
pub(crate) mod connect;
pub(crate) mod gc;
pub(crate) mod list;
pub(crate) mod migrate;
pub(crate) mod passwd;
pub(crate) mod secure;
pub(crate) mod serve;
pub(crate) mod stores;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Marina: an OCI Distribution registry, a spec harness and a conformance runner.
#[derive(Debug, Parser)]
#[command(name = "marina", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `marina`.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry.
    Serve(serve::ServeArgs),
    /// Collect garbage now: blobs no manifest references, past their grace period.
    Gc(gc::GcArgs),
    /// Copy a single-node registry into PostgreSQL and/or S3, verifying every blob.
    Migrate(migrate::MigrateArgs),
    /// Run the official OCI conformance suite and summarise its results.
    Conformance(conformance::ConformanceArgs),
    /// Print the OpenAPI document of the registry's HTTP API.
    Openapi,
    /// Benchmark a registry (optionally side by side with another).
    Bench(bench::BenchArgs),
    /// Validate a registry against the spec, requirement by requirement.
    Check(check::CheckArgs),
    /// Disk usage: bytes per repository, what only it holds, and the total.
    Du(list::DuArgs),
    /// List the repositories of a registry, or of one namespace and everything under it.
    List(list::ListArgs),
    /// List the tags of a repository with their digests and push times.
    ListTags(list::ListTagsArgs),
    /// List the manifests of a repository, tagged and untagged.
    ListManifests(list::ListManifestsArgs),
    /// List the artifacts that refer to a digest (signatures, SBOMs, …).
    ListReferrers(list::ListReferrersArgs),
    /// Add, change or remove a user of an htpasswd file (bcrypt).
    Passwd(passwd::PasswdArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Openapi => print_openapi(),
        Command::Bench(args) => bench::run(args),
        Command::Check(args) => check::run(args),
        Command::Du(args) => list::du(args),
        Command::List(args) => list::list(args),
        Command::ListTags(args) => list::list_tags(args),
        Command::ListManifests(args) => list::list_manifests(args),
        Command::ListReferrers(args) => list::list_referrers(args),
        Command::Passwd(args) => passwd::run(args),
    };
    crate::logsink::flush();
    code
}

/// Whether a report can be written at `path`: its directory exists and takes a
/// new file (probed with a temporary file, so `path` itself is not touched).
pub(crate) fn writable(path: &std::path::Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if path.is_dir() {
        return Err(format!(
            "cannot write {}: it is a directory",
            path.display()
        ));
    }
    tempfile::Builder::new()
        .prefix(".marina-write-check")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn print_openapi() -> ExitCode {
    match crate::api::openapi_document() {
        Ok(doc) => {
            println!("{doc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("marina openapi: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up `tracing` output (`RUST_LOG` filters; default `info`).
pub fn init_logging(format: &str) {
    use std::io::IsTerminal;
    // poem's own INFO lines ("listening", "server started") repeat the banner.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,poem=warn"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let sink_format = if format == "json" {
        crate::logsink::Format::Json
    } else {
        crate::logsink::Format::Pretty
    };
    crate::logsink::install(sink_format, colour);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(crate::logsink::MakeStderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
