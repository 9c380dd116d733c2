//! `marina migrate`: copy a single-node registry (SQLite and files) into
//! PostgreSQL and/or S3, verifying every blob's digest; run it again to finish
//! an interrupted copy.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::RegistryConfig;
use crate::store::migrate::{copy_blobs, copy_metadata, MigrationReport};

/// Options of `marina migrate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  marina migrate --from-data-dir ./marina-data \\\n    --metadata-url postgres://marina:secret@db:5432/marina \\\n    --blob-url 's3://bucket/marina?endpoint=http://garage:3900&region=garage'\nThen run `marina serve` with the same --metadata-url and --blob-url (and --data-dir for upload staging)."
)]
pub struct MigrateArgs {
    /// The data directory of the registry to copy (its meta.db and blobs/).
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: PathBuf,
    /// Where to copy to: the stores `marina serve` will then use.
    #[command(flatten)]
    pub stores: super::stores::StoreArgs,
}

/// Runs the migration and prints what it did.
pub fn run(args: MigrateArgs) -> ExitCode {
    if args.stores.metadata_url.is_none() && args.stores.blob_url.is_none() {
        eprintln!("marina migrate: give --metadata-url, --blob-url or both: where to copy to");
        return ExitCode::from(2);
    }
    let mut config = RegistryConfig {
        data_dir: args.from_data_dir.clone(),
        ..RegistryConfig::default()
    };
    args.stores.apply(&mut config);
    if let Err(e) = config.validate() {
        eprintln!("marina migrate: {e}");
        return ExitCode::from(2);
    }
    let mut report = MigrationReport::default();
    if config.blob_url.is_some() {
        let target = match crate::registry::open_blobs(&config) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("marina migrate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut done = 0u64;
        let result = copy_blobs(
            &args.from_data_dir,
            &*target,
            |_| {
                done += 1;
                if done.is_multiple_of(1000) {
                    eprintln!("  {done} blobs…");
                }
            },
            &mut report,
        );
        if let Err(e) = result {
            eprintln!("marina migrate: copying blobs: {e}");
            return ExitCode::FAILURE;
        }
        println!(
            "blobs: {} copied ({} bytes), {} already there, {} not copied (missing or not matching their digest)",
            report.blobs_copied,
            report.bytes_copied,
            report.blobs_present,
            report.blobs_broken.len()
        );
        for d in &report.blobs_broken {
            println!("  not copied: {d}");
        }
    }
    if let Some(url) = &config.metadata_url {
        let target = match crate::store::PgMetaStore::open(url.expose()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("marina migrate: cannot open the metadata store {url}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = copy_metadata(&args.from_data_dir, &target, &mut report) {
            eprintln!("marina migrate: copying metadata: {e}");
            return ExitCode::FAILURE;
        }
        let rows: Vec<String> = report
            .rows
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!("metadata rows copied: {}", rows.join(", "));
    }
    if report.blobs_broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
