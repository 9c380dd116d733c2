//! Command-line entry points. Each subcommand lives in its own module and returns
//! the process exit code; this module only parses arguments and dispatches.

pub mod check;
pub mod conformance;
pub mod passwd;
pub mod secure;
pub mod serve;

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
    /// Run the official OCI conformance suite and summarise its results.
    Conformance(conformance::ConformanceArgs),
    /// Print the OpenAPI document of the registry's HTTP API.
    Openapi,
    /// Validate a registry against the spec, requirement by requirement.
    Check(check::CheckArgs),
    /// Add, change or remove a user of an htpasswd file (bcrypt).
    Passwd(passwd::PasswdArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Openapi => print_openapi(),
        Command::Check(args) => check::run(args),
        Command::Passwd(args) => passwd::run(args),
    }
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
