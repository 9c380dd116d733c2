//! Running the registry: bind, serve until stopped, sweep idle uploads.

use std::net::SocketAddr;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};

use crate::config::Config;

/// A running server; dropping it without [`ServerHandle::stop`] aborts it.
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sweeper.abort();
        let _ = (&mut self.task).await;
    }

    /// Waits until the server ends (it ends when stopped or on a fatal error).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
        self.shutdown = None;
    }
}

/// Opens the stores, binds `config.listen` and serves in a background task.
pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
    let listen = config.listen.clone();
    let registry = crate::Registry::builder().config(config).build()?;
    serve(&registry, &listen).await
}

/// Serves a registry built in code on `listen` (port 0 picks a free port), with its
/// maintenance running beside it.
pub async fn serve(registry: &crate::Registry, listen: &str) -> anyhow::Result<ServerHandle> {
    let acceptor = TcpListener::bind(listen.to_string())
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("listener on {listen} has no socket address"))?;
    let app = registry.endpoint();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let result = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async move {
                    let _ = rx.await;
                },
                Some(Duration::from_secs(5)),
            )
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "server stopped with an error");
        }
    });
    let sweeper = tokio::spawn(registry.maintenance());
    Ok(ServerHandle {
        addr,
        shutdown: Some(tx),
        task,
        sweeper,
    })
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Not stopped gracefully: stop serving anyway, so no task outlives its handle.
        if self.shutdown.is_some() {
            self.task.abort();
            self.sweeper.abort();
        }
    }
}
