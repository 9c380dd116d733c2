//! Where a registry keeps its metadata and blobs: the flags `marina serve`,
//! `gc` and `migrate` share.

use clap::Args;

use crate::config::{env, RegistryConfig, SecretUrl};

/// `--metadata-url` and `--blob-url`.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Metadata in PostgreSQL: postgres://USER:PASS@HOST:PORT/DB (libpq keys such
    /// as ?sslmode=disable in the query) [default: SQLite in the data directory].
    #[arg(long, env = env::METADATA_URL, value_name = "URL", hide_env_values = true)]
    pub metadata_url: Option<String>,
    /// Blobs in S3-compatible storage: s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=REGION
    /// (path-style; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)
    /// [default: files in the data directory].
    #[arg(long, env = env::BLOB_URL, value_name = "URL")]
    pub blob_url: Option<String>,
}

impl StoreArgs {
    /// Sets the stores given over what `c` holds.
    pub fn apply(&self, c: &mut RegistryConfig) {
        if let Some(url) = &self.metadata_url {
            c.metadata_url = Some(SecretUrl::new(url.clone()));
        }
        if let Some(url) = &self.blob_url {
            c.blob_url = Some(url.clone());
        }
    }
}
