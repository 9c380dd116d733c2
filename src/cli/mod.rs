//! Command-line entry points. Each subcommand lives in its own module and returns
//! the process exit code; this module only parses arguments and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check;

/// Marina: an OCI Distribution registry, a spec harness and a conformance runner.
#[derive(Debug, Parser)]
#[command(name = "marina", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `marina`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a registry against the spec, requirement by requirement.
    Check(check::CheckArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(args),
    }
}
