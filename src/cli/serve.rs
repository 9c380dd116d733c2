//! `marina serve`: run the registry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::env;

use crate::config::{Config, WarningRule};

/// Options of `marina serve`. Each flag can also come from a `MARINA_*` variable and
/// from the TOML file given with `--config`; flags win over variables, variables
/// over the file, the file over the defaults.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  marina serve --listen 127.0.0.1:5000 --data-dir ./marina-data\n  MARINA_DELETE_BLOBS=false marina serve --config marina.toml"
)]
pub struct ServeArgs {
    /// TOML configuration file (same keys as these options; `[delete]` table and
    /// `[[warnings]]` entries for the nested ones).
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5000]; port 0 picks a free one.
    #[arg(long, env = env::LISTEN, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory for metadata, blobs and upload staging [default: ./marina-data].
    #[arg(long, env = env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL metadata and S3 blobs.
    #[command(flatten)]
    pub stores: super::stores::StoreArgs,
    /// Answer blob GETs with a 307 to a presigned URL of the object store (valid
    /// 5 minutes), so clients download from it directly; needs --blob-url [default: false].
    #[arg(long, env = env::BLOB_REDIRECT, value_name = "BOOL")]
    pub blob_redirect: Option<bool>,
    /// Allow deleting manifests by digest [default: true].
    #[arg(long, env = env::DELETE_MANIFESTS, value_name = "BOOL")]
    pub delete_manifests: Option<bool>,
    /// Allow deleting tags [default: true].
    #[arg(long, env = env::DELETE_TAGS, value_name = "BOOL")]
    pub delete_tags: Option<bool>,
    /// Allow deleting blobs [default: true].
    #[arg(long, env = env::DELETE_BLOBS, value_name = "BOOL")]
    pub delete_blobs: Option<bool>,
    /// Serve the referrers API [default: true]. When false it answers 404 and no
    /// `OCI-Subject` is sent, so clients fall back to the referrers tag schema; the
    /// listing extension's referrers module is off too.
    #[arg(long, env = env::REFERRERS, value_name = "BOOL")]
    pub referrers: Option<bool>,
    /// Accept manifests whose blobs or child manifests were never pushed [default: false].
    #[arg(long, env = env::SPARSE_MANIFESTS, value_name = "BOOL")]
    pub sparse_manifests: Option<bool>,
    /// Largest manifest accepted, in bytes; larger ones get 413 [default: 4194304].
    #[arg(long, env = env::MAX_MANIFEST_BYTES, value_name = "BYTES")]
    pub max_manifest_bytes: Option<u64>,
    /// Referrers per response before a `Link` to the next page [default: 500].
    #[arg(long, env = env::REFERRERS_PAGE_SIZE, value_name = "N")]
    pub referrers_page_size: Option<u32>,
    /// Most tags or repositories per list response, whatever `n` asks [default: 1000].
    #[arg(long, env = env::MAX_LIST_PAGE, value_name = "N")]
    pub max_list_page: Option<u32>,
    /// Seconds before an idle upload session and its staging file are removed [default: 3600].
    #[arg(long, env = env::UPLOAD_EXPIRY_SECS, value_name = "SECS")]
    pub upload_expiry_secs: Option<u64>,
    /// MiB kept free on the data directory's filesystem: pushes that would leave
    /// less get 507, so deletes and gc still have room [default: 64; 0: none].
    #[arg(long, env = env::MIN_FREE_MIB, value_name = "MIB")]
    pub min_free_mib: Option<u64>,
    /// Write SQLite's log (meta.db-wal) out to its full size, about 79 MiB, at
    /// start and keep it there, so its syncs overwrite instead of growing the
    /// file [default: true].
    #[arg(long, env = env::PREALLOCATE_LOG, value_name = "BOOL")]
    pub preallocate_log: Option<bool>,
    /// Seconds between garbage collections of blobs no repository links; 0 = never [default: 600].
    #[arg(long, env = env::GC_INTERVAL_SECS, value_name = "SECS")]
    pub gc_interval_secs: Option<u64>,
    /// Seconds an uploaded or mounted blob is kept without a manifest referencing
    /// it, so pushes in progress keep their layers [default: 3600].
    #[arg(long, env = env::GC_GRACE_SECS, value_name = "SECS")]
    pub gc_grace_secs: Option<u64>,
    /// Deprecation notice for matching repositories, as PATTERN=MESSAGE (repeatable),
    /// sent as `Warning: 299 - "MESSAGE"`. Adds to the file's `[[warnings]]`.
    #[arg(long = "warning", value_name = "PATTERN=MESSAGE")]
    pub warnings: Vec<String>,
    /// Log format: pretty or json [default: pretty]. Either way one access-log
    /// line per request is written at INFO.
    #[arg(long, env = env::LOG_FORMAT, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// A reverse proxy (address or network, repeatable) whose `X-Forwarded-For`
    /// names the client in the access log. Adds to the file's `trusted_proxies`.
    #[arg(long = "trusted-proxy", value_name = "ADDR|NET")]
    pub trusted_proxies: Vec<String>,
    /// Seconds SIGTERM or SIGINT waits for in-flight requests before exiting [default: 30].
    #[arg(long, env = env::SHUTDOWN_TIMEOUT_SECS, value_name = "SECS")]
    pub shutdown_timeout_secs: Option<u64>,
    /// Seconds a connection may go without moving a byte, or take to send a
    /// request's head, before it is closed (idle keep-alives, unfinished or
    /// trickled headers, stalled bodies); 0: never [default: 60].
    #[arg(long, env = env::IDLE_TIMEOUT_SECS, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Also serve `/metrics`, `/healthz` and `/readyz` on this address, open to all.
    #[arg(long, env = env::METRICS_LISTEN, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Access control and TLS (src/cli/secure.rs).
    #[command(flatten)]
    pub secure: super::secure::SecureArgs,
}

impl ServeArgs {
    /// Layers file, variables and flags over the defaults.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident).+ = $value:expr) => {
                if let Some(v) = $value.clone() {
                    c.$($field).+ = v;
                }
            };
        }
        set!(listen = self.listen);
        set!(registry.data_dir = self.data_dir);
        self.stores.apply(&mut c.registry);
        set!(registry.blob_redirect = self.blob_redirect);
        set!(registry.delete.manifests = self.delete_manifests);
        set!(registry.delete.tags = self.delete_tags);
        set!(registry.delete.blobs = self.delete_blobs);
        set!(registry.referrers = self.referrers);
        set!(registry.sparse_manifests = self.sparse_manifests);
        set!(registry.max_manifest_bytes = self.max_manifest_bytes);
        set!(registry.referrers_page_size = self.referrers_page_size);
        set!(registry.max_list_page = self.max_list_page);
        set!(registry.upload_expiry_secs = self.upload_expiry_secs);
        set!(registry.min_free_mib = self.min_free_mib);
        set!(registry.preallocate_log = self.preallocate_log);
        set!(registry.gc_interval_secs = self.gc_interval_secs);
        set!(registry.gc_grace_secs = self.gc_grace_secs);
        set!(log_format = self.log_format);
        set!(shutdown_timeout_secs = self.shutdown_timeout_secs);
        set!(idle_timeout_secs = self.idle_timeout_secs);
        if self.metrics_listen.is_some() {
            c.metrics_listen = self.metrics_listen.clone();
        }
        c.trusted_proxies
            .extend(self.trusted_proxies.iter().cloned());
        for w in &self.warnings {
            let (pattern, message) = w
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--warning {w:?}: expected PATTERN=MESSAGE"))?;
            c.registry.warnings.push(WarningRule {
                repositories: pattern.to_string(),
                message: message.to_string(),
            });
        }
        self.secure.apply(&mut c)?;
        c.validate()?;
        Ok(c)
    }
}

/// Runs the registry until SIGTERM or SIGINT, then drains and exits 0.
pub fn run(args: ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("marina serve: {e}");
            return ExitCode::from(2);
        }
    };
    super::init_logging(&config.log_format);
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    for warning in env::unknown(names.iter().map(String::as_str)) {
        tracing::warn!("{warning}");
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("marina serve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let data_dir = config.registry.data_dir.clone();
        let blobs = match &config.registry.blob_url {
            Some(url) => url.split('?').next().unwrap_or(url).to_string(),
            None => data_dir.join("blobs").display().to_string(),
        };
        let metadata = match &config.registry.metadata_url {
            Some(url) => format!("PostgreSQL at {url}"),
            None => format!("SQLite, {}", data_dir.join("meta.db").display()),
        };
        let access = match &config.auth {
            Some(a) => format!("on ({:?} scheme)", a.scheme).to_lowercase(),
            None => "off (anyone may push, pull and delete)".to_string(),
        };
        let grace = config.shutdown_timeout_secs;
        let server = match crate::server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("marina serve: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let url = server.url();
        // A closed stdout (a supervisor that stopped reading) must not stop the server.
        let say = |line: String| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|_| out.flush());
        };
        say(format!("Marina registry listening on {url}"));
        say(format!("  data directory: {}", data_dir.display()));
        say(format!("  metadata:       {metadata}"));
        say(format!("  blobs:          {blobs}"));
        say(format!("  API docs:       {url}/docs"));
        say(format!("  OpenAPI:        {url}/openapi.json"));
        say(format!("  access control: {access}"));
        say(format!(
            "  TLS:            {}",
            if url.starts_with("https") {
                "on"
            } else {
                "off"
            }
        ));
        match server.metrics_addr() {
            Some(m) => say(format!("  metrics:        http://{m}/metrics (open)")),
            None => say(format!("  metrics:        {url}/metrics")),
        }
        let signal = stop_signal().await;
        tracing::info!(
            signal,
            timeout_secs = grace,
            "stopping: no new connections; waiting for in-flight requests"
        );
        server.stop().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Waits for SIGTERM (what systemd, Docker and Kubernetes send) or SIGINT
/// (Ctrl-C) and says which came.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}
