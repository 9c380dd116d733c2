//! Running the registry: bind, serve until stopped, sweep idle uploads.
//!
//! Start-up binds the listener before it touches the data directory, so a port
//! in use leaves nothing behind; every failure names the address, path or
//! setting at fault. Stopping drains: the listener closes, in-flight requests get
//! up to the configured timeout, and uploads cut off by it stay resumable (their
//! staging areas are on disk).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};

use crate::config::Config;

mod serve;
mod stall;
use stall::StallAcceptor;

/// A running server; dropping it without [`ServerHandle::stop`] aborts it.
pub struct ServerHandle {
    addr: SocketAddr,
    https: bool,
    tls_watch: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
    metrics_task: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
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

    /// The address of the separate metrics listener, if one was configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_task.as_ref().map(|(a, _)| *a)
    }

    /// Stops accepting, lets in-flight requests finish (up to the configured
    /// `shutdown_timeout_secs`), and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        self.sweeper.abort();
        if let Some(w) = self.tls_watch.take() {
            w.abort();
        }
        let _ = (&mut self.task).await;
        if let Some((_, t)) = self.metrics_task.take() {
            let _ = t.await;
        }
    }

    /// Waits until the server ends (it ends when stopped or on a fatal error).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
        self.shutdown = None;
    }
}

/// Binds `config.listen`, opens the stores and serves in a background task.
pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
    let listen = config.listen.clone();
    let tcp = bind(&listen).await?;
    prepare_data_dir(&config.registry.data_dir)?;
    let registry = crate::Registry::builder()
        .config(config)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot open the stores: {e}"))?;
    serve_bound(&registry, &listen, tcp).await
}

/// Serves a registry built in code on `listen` (port 0 picks a free port), with its
/// maintenance running beside it.
pub async fn serve(registry: &crate::Registry, listen: &str) -> anyhow::Result<ServerHandle> {
    let tcp = bind(listen).await?;
    serve_bound(registry, listen, tcp).await
}

type TcpAcceptor = <TcpListener<String> as Listener>::Acceptor;

async fn bind(listen: &str) -> anyhow::Result<TcpAcceptor> {
    TcpListener::bind(listen.to_string())
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))
}

/// Makes sure the data directory exists and is a writable directory, naming it
/// in every failure.
fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            anyhow::bail!("data directory {shown} exists but is not a directory")
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create data directory {shown}: {e}"))?;
        }
        Err(e) => anyhow::bail!("data directory {shown}: {e}"),
    }
    let probe = tempfile::Builder::new()
        .prefix(".write-check")
        .tempfile_in(dir)
        .map_err(|e| anyhow::anyhow!("data directory {shown} is not writable: {e}"))?;
    drop(probe);
    Ok(())
}

async fn serve_bound(
    registry: &crate::Registry,
    listen: &str,
    tcp: TcpAcceptor,
) -> anyhow::Result<ServerHandle> {
    // Access control and TLS load their files now, so a bad file stops the start.
    if let Some(auth) = &registry.config().auth {
        crate::auth::Auth::load(auth).map_err(|e| anyhow::anyhow!("access control: {e}"))?;
        // Metadata in PostgreSQL is how several servers share one registry;
        // tokens signed with a key of this process's own verify nowhere else.
        let issues_tokens =
            auth.scheme == crate::auth::AuthScheme::Token && auth.token.external.is_none();
        if issues_tokens
            && auth.token.signing_key.is_none()
            && registry.config().registry.metadata_url.is_some()
        {
            tracing::warn!(
                "tokens are signed with a key made at this start; other servers sharing this \
                 database will refuse them: give every server the same [auth.token] signing_key"
            );
        }
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
    let metrics_tcp = match &registry.config().metrics_listen {
        Some(m) => Some(bind(m).await?),
        None => None,
    };
    let addr = tcp
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("listener on {listen} has no socket address"))?;
    let app = registry.endpoint();
    let on_refused: serve::OnRefused = {
        let core = registry.core().clone();
        Arc::new(move |client, status| crate::api::observe::record_refused(&core, client, status))
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let grace = Duration::from_secs(registry.config().shutdown_timeout_secs);
    let stall = match registry.config().idle_timeout_secs {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    let tcp = StallAcceptor::new(tcp, stall);
    // Each acceptor is served as its own type: boxing it would hide the socket's
    // vectored writes from hyper, which then copies every body chunk it sends.
    let (task, tls_watch) = match tls {
        Some((cert, period)) => {
            let config = crate::tls::server_config(cert.clone()).map_err(|e| anyhow::anyhow!(e))?;
            (
                spawn_server(
                    crate::tls::TlsAcceptor::new(tcp, config),
                    app,
                    on_refused.clone(),
                    rx.clone(),
                    grace,
                    stall,
                ),
                Some(cert.spawn_watch(period)),
            )
        }
        None => (
            spawn_server(tcp, app, on_refused.clone(), rx.clone(), grace, stall),
            None,
        ),
    };
    let metrics_task = match metrics_tcp {
        Some(m) => {
            let maddr = m
                .local_addr()
                .first()
                .and_then(|a| a.as_socket_addr().copied())
                .ok_or_else(|| anyhow::anyhow!("the metrics listener has no socket address"))?;
            let ops = crate::api::operations_app(registry.core().clone(), registry.config());
            Some((
                maddr,
                spawn_server(
                    StallAcceptor::new(m, stall),
                    ops,
                    on_refused,
                    rx,
                    grace,
                    stall,
                ),
            ))
        }
        None => None,
    };
    let sweeper = tokio::spawn(registry.maintenance());
    Ok(ServerHandle {
        addr,
        https: tls_watch.is_some(),
        tls_watch,
        shutdown: Some(tx),
        task,
        metrics_task,
        sweeper,
    })
}

/// Serves `app` on `acceptor` in a background task until `stop` turns true, then
/// gives in-flight requests up to `grace`; `head_limit` bounds the wait for a
/// request's head (see [`serve`]).
fn spawn_server<A>(
    acceptor: A,
    app: impl poem::Endpoint + 'static,
    on_refused: serve::OnRefused,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
    head_limit: Option<Duration>,
) -> tokio::task::JoinHandle<()>
where
    A: Acceptor + 'static,
{
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        serve::serve(acceptor, app, on_refused, stopped, grace, head_limit).await;
    })
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Not stopped gracefully: stop serving anyway, so no task outlives its handle.
        if self.shutdown.is_some() {
            self.task.abort();
            self.sweeper.abort();
            if let Some((_, t)) = &self.metrics_task {
                t.abort();
            }
            if let Some(w) = &self.tls_watch {
                w.abort();
            }
        }
    }
}
