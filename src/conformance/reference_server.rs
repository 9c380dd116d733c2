//! The in-process reference server a run targets when no `--registry` is
//! given: started on an ephemeral loopback port with a fresh temporary data
//! directory and every optional feature on (sparse manifests included, which
//! the suite's `sparse` data needs), stopped and its directory removed after
//! the run.
//!
//! This file is the runner's only contact with the server, so wiring the real
//! one is a one-line change: replace the `use stand_in::...` line below with
//! `use crate::{config::Config, server};` and delete the `stand_in` module.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

// TEMPORARY: until the reference server lands on main, a stand-in with the
// same API keeps this branch compiling and its lifecycle testable.
use stand_in::{config::Config, server};

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
        let config = Config {
            listen: "127.0.0.1:0".to_string(),
            data_dir: data_dir.path().to_path_buf(),
            sparse_manifests: true,
            ..Config::default()
        };
        let handle = server::start(config)
            .await
            .context("starting the in-process reference server")?;
        Ok(ReferenceServer { handle, data_dir })
    }

    /// The server's address (a loopback address with the port it was given).
    pub fn addr(&self) -> SocketAddr {
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

/// TEMPORARY stand-in for `crate::config` and `crate::server` (same names and
/// signatures); it only answers `GET /v2/`. Delete it when wiring the real
/// server.
mod stand_in {
    pub mod config {
        use std::path::PathBuf;

        /// Stand-in for `crate::config::Config`.
        #[derive(Clone, Debug)]
        pub struct Config {
            /// Address to listen on.
            pub listen: String,
            /// Where data lives.
            pub data_dir: PathBuf,
            /// Accept manifests whose descriptors were never pushed.
            pub sparse_manifests: bool,
            /// Serve the referrers API (unused by the stand-in).
            pub referrers: bool,
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    listen: "127.0.0.1:5000".to_string(),
                    data_dir: PathBuf::from("./marina-data"),
                    sparse_manifests: false,
                    referrers: true,
                }
            }
        }
    }

    pub mod server {
        use std::net::SocketAddr;

        use anyhow::Context;
        use poem::listener::{Acceptor, Listener, TcpListener};
        use poem::{get, handler, Route, Server};
        use tokio::sync::oneshot;

        use super::config::Config;

        /// Stand-in for `crate::server::ServerHandle`.
        pub struct ServerHandle {
            addr: SocketAddr,
            shutdown: oneshot::Sender<()>,
            task: tokio::task::JoinHandle<()>,
        }

        impl ServerHandle {
            /// The bound address.
            pub fn addr(&self) -> SocketAddr {
                self.addr
            }

            /// `http://ADDR`.
            pub fn url(&self) -> String {
                format!("http://{}", self.addr)
            }

            /// Stops serving and waits for the server task.
            pub async fn stop(self) {
                let _ = self.shutdown.send(());
                let _ = self.task.await;
            }
        }

        #[handler]
        fn base() -> &'static str {
            "{}"
        }

        /// Stand-in for `crate::server::start`.
        pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
            std::fs::create_dir_all(&config.data_dir)?;
            let marker = format!(
                "stand-in data, sparse_manifests={} referrers={}\n",
                config.sparse_manifests, config.referrers
            );
            std::fs::write(config.data_dir.join("stand-in.txt"), marker)?;
            let acceptor = TcpListener::bind(config.listen.clone())
                .into_acceptor()
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let addr = acceptor
                .local_addr()
                .first()
                .and_then(|a| a.as_socket_addr().copied())
                .context("the listener has no socket address")?;
            let (shutdown, signal) = oneshot::channel::<()>();
            let app = Route::new().at("/v2/", get(base));
            let task = tokio::spawn(async move {
                let _ = Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(
                        app,
                        async {
                            let _ = signal.await;
                        },
                        Some(std::time::Duration::from_secs(5)),
                    )
                    .await;
            });
            Ok(ServerHandle {
                addr,
                shutdown,
                task,
            })
        }
    }
}
