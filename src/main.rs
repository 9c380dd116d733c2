//! The `marina` command: serve, gc, migrate, check, conformance, openapi, bench, list, list-tags, list-manifests, list-referrers, du, passwd (see `marina --help`).

fn main() -> std::process::ExitCode {
    marina::cli::main()
}
