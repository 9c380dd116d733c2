//! The `marina` command: serve, check, conformance, openapi.

fn main() -> std::process::ExitCode {
    marina::cli::main()
}
