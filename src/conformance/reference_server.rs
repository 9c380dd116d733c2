//! The in-process reference server a run targets when no `--registry` is
//! given: started on an ephemeral loopback port with a fresh temporary data
//! directory and every optional feature on (sparse manifests included, which
//! the suite's `sparse` data needs), stopped and its directory removed after
//! the run.
//!
//! This file is the runner's only contact with the server.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{config::Config, server};

/// A running reference server and the temporary directory holding its data.
pub struct ReferenceServer {
    handle: server::ServerHandle,
    data_dir: tempfile::TempDir,
}

impl ReferenceServer {
    /// Creates a temporary data directory and starts the server on
    /// `127.0.0.1:0` with sparse manifests accepted.
    pub async fn start() -> anyhow::Result<ReferenceServer> {
        let data_dir = tempfile::Builder::new()
            .prefix("marina-conformance-")
            .tempdir()
            .context("creating the reference server's temporary data directory")?;
        let config = Config::ephemeral(data_dir.path());
        let handle = server::start(config)
            .await
            .context("starting the in-process reference server")?;
        Ok(ReferenceServer { handle, data_dir })
    }

    /// The server's address (a loopback address with the port it was given).
    #[cfg(test)]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.addr()
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.handle.url()
    }

    /// The temporary data directory (removed by [`ReferenceServer::stop`]).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Stops the server, then removes its data directory.
    pub async fn stop(self) -> anyhow::Result<PathBuf> {
        let ReferenceServer { handle, data_dir } = self;
        handle.stop().await;
        let path = data_dir.path().to_path_buf();
        data_dir
            .close()
            .with_context(|| format!("removing {}", path.display()))?;
        Ok(path)
    }
}
