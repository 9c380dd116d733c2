//! `marina gc`: collect garbage now, on the stores `marina serve` uses (safe while a
//! server runs on them: see `registry::gc`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::{env, Config, RegistryConfig};
use crate::registry::Registry;

/// Options of `marina gc`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  marina gc --data-dir ./marina-data --dry-run\n  marina gc --config marina.toml --gc-grace-secs 600"
)]
pub struct GcArgs {
    /// The TOML configuration file `marina serve` uses (its data directory and
    /// grace period apply).
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the registry's metadata and blobs [default: ./marina-data];
    /// not used (nor created) when both --metadata-url and --blob-url are given.
    #[arg(long, env = env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The stores `marina serve` uses.
    #[command(flatten)]
    pub stores: super::stores::StoreArgs,
    /// Seconds an uploaded or mounted blob is kept without a manifest referencing
    /// it [default: 3600].
    #[arg(long, env = env::GC_GRACE_SECS, value_name = "SECS")]
    pub gc_grace_secs: Option<u64>,
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl GcArgs {
    fn resolve(&self) -> anyhow::Result<RegistryConfig> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?.registry,
            None => RegistryConfig::default(),
        };
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(g) = self.gc_grace_secs {
            c.gc_grace_secs = g;
        }
        self.stores.apply(&mut c);
        c.validate()?;
        if c.metadata_url.is_none() && !c.data_dir.join("meta.db").is_file() {
            anyhow::bail!(
                "{} holds no registry (no meta.db); give the --data-dir or --config of `marina serve`",
                c.data_dir.display()
            );
        }
        Ok(c)
    }
}

/// Runs one collection (or previews it) and prints what it removed.
pub fn run(args: GcArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("marina gc: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = config;
    // With both stores remote nothing of the registry is in the data
    // directory; the S3 store's staging area (which a collection never uses)
    // goes to a temporary directory instead of creating one here.
    let _scratch = match (&config.metadata_url, &config.blob_url) {
        (Some(_), Some(_)) => match tempfile::Builder::new().prefix("marina-gc-").tempdir() {
            Ok(dir) => {
                config.data_dir = dir.path().to_path_buf();
                Some(dir)
            }
            Err(e) => {
                eprintln!("marina gc: cannot create a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    if config.metadata_url.is_none() {
        // A collection runs beside a server, perhaps of the release before:
        // converting the database under it would break it.
        let path = config.data_dir.join("meta.db");
        match crate::store::SqliteMetaStore::schema_behind(&path) {
            Ok(None) => {}
            Ok(Some((found, needed))) => {
                eprintln!(
                    "marina gc: {} is at schema version {found}, and this build needs {needed}. \
                     A collection does not convert the database, since a server of the earlier \
                     release may be using it: start `marina serve` of this release on it first \
                     (it converts the database as it starts).",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("marina gc: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    // The server writes the log out; a collection (and its dry run) does
    // not write more than it must.
    config.preallocate_log = false;
    let grace = config.gc_grace_secs;
    let registry = match Registry::open(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("marina gc: cannot open the registry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("marina gc: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.dry_run {
        let plan = match rt.block_on(registry.retention_plan()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("marina gc: {e}");
                return ExitCode::FAILURE;
            }
        };
        for item in &plan {
            for (tag, _) in &item.tags {
                println!("retention would delete tag {}:{tag}", item.repository);
            }
            for d in &item.manifests {
                println!(
                    "retention would delete untagged manifest {}@{d}",
                    item.repository
                );
            }
        }
        let preview = rt.block_on(async {
            Ok::<_, crate::RegistryError>((
                registry.garbage_preview().await?,
                registry.unrecorded_bytes_preview().await?,
            ))
        });
        return match preview {
            Ok((p, (unrecorded, unrecorded_bytes))) => {
                println!(
                    "would remove {} unreferenced blob links older than {grace} s, then {} blobs ({}){}",
                    p.links,
                    p.blobs,
                    human_bytes(p.bytes),
                    if plan.is_empty() {
                        ""
                    } else {
                        ", besides what the retention rules release"
                    }
                );
                if unrecorded > 0 {
                    println!(
                        "would remove {unrecorded} stored blobs ({}) that no record names",
                        human_bytes(unrecorded_bytes)
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("marina gc: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    let progress = |step: &str, n: u64| {
        if let Some(b) = &bar {
            b.set_message(format!("{step}: {n}"));
        }
    };
    let result = rt.block_on(async {
        let mut report = registry.collect_garbage_with(&progress).await?;
        // A one-off run looks at every stored blob for bytes no record names.
        let (blobs, bytes) = registry.collect_unrecorded_bytes(256).await?;
        report.blobs += blobs;
        report.bytes += bytes;
        Ok::<_, crate::RegistryError>(report)
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(r) => {
            if r.tags + r.manifests > 0 {
                println!(
                    "retention deleted {} tags and {} untagged manifests",
                    r.tags, r.manifests
                );
            }
            println!(
                "removed {} unreferenced blob links, {} blobs ({}), {} empty repositories in {:.1} s",
                r.links,
                r.blobs,
                human_bytes(r.bytes),
                r.repositories,
                r.duration.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("marina gc: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `1.5 MiB`-style sizes for people.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
