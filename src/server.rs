//! Running the registry: bind, serve until stopped, sweep idle uploads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};

use crate::config::Config;

/// A running server; dropping it without [`ServerHandle::stop`] aborts it.
pub struct ServerHandle {
    addr: SocketAddr,
    https: bool,
    tls_watch: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, or `https://<addr>` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sweeper.abort();
        if let Some(w) = self.tls_watch.take() {
            w.abort();
        }
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
    // Access control and TLS load their files now, so a bad file stops the start.
    if let Some(auth) = &registry.config().auth {
        crate::auth::Auth::load(auth).map_err(|e| anyhow::anyhow!("access control: {e}"))?;
    }
    let tls = match &registry.config().tls {
        Some(t) => Some((
            Arc::new(
                crate::tls::ReloadingCert::load(&t.cert, &t.key)
                    .map_err(|e| anyhow::anyhow!("TLS: {e}"))?,
            ),
            Duration::from_secs(t.reload_secs.max(1)),
        )),
        None => None,
    };
    let tcp = TcpListener::bind(listen.to_string())
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = tcp
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("listener on {listen} has no socket address"))?;
    let app = registry.endpoint();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Each acceptor is served as its own type: boxing it would hide the socket's
    // vectored writes from hyper, which then copies every body chunk it sends.
    let (task, tls_watch) = match tls {
        Some((cert, period)) => {
            let config = crate::tls::server_config(cert.clone()).map_err(|e| anyhow::anyhow!(e))?;
            (
                spawn_server(crate::tls::TlsAcceptor::new(tcp, config), app, rx),
                Some(cert.spawn_watch(period)),
            )
        }
        None => (spawn_server(tcp, app, rx), None),
    };
    let sweeper = tokio::spawn(registry.maintenance());
    Ok(ServerHandle {
        addr,
        https: tls_watch.is_some(),
        tls_watch,
        shutdown: Some(tx),
        task,
        sweeper,
    })
}

/// Serves `app` on `acceptor` in a background task until `stop` fires.
fn spawn_server<A>(
    acceptor: A,
    app: impl poem::Endpoint + 'static,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()>
where
    A: Acceptor + 'static,
{
    tokio::spawn(async move {
        let result = poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async move {
                    let _ = stop.await;
                },
                Some(Duration::from_secs(5)),
            )
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "server stopped with an error");
        }
    })
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Not stopped gracefully: stop serving anyway, so no task outlives its handle.
        if self.shutdown.is_some() {
            self.task.abort();
            self.sweeper.abort();
            if let Some(w) = &self.tls_watch {
                w.abort();
            }
        }
    }
}
