//! Serving connections: poem's endpoint on hyper's connection builder.
//!
//! poem's own server gives hyper no timer, so hyper's deadline for a request's
//! head never runs: a client that sends one header byte a minute keeps its
//! connection (the stall limit of [`super::stall`] counts bytes, and each byte
//! resets it). Here HTTP/1 connections get the timer and a head deadline: a
//! request's head (its line and headers) must be whole within the limit of the
//! moment the server starts waiting for it, so a head trickled in, and an idle
//! keep-alive, both end there. HTTP/2 has no such head (its frames keep the
//! stall limit). Stopping is as before: the listener closes, connections finish
//! the request in flight and close, and those still open after the grace period
//! are dropped.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::listener::Acceptor;
use poem::{Endpoint, EndpointExt};

/// How long to wait before accepting again after the listener failed (out of
/// descriptors, say), so a failing listener is not spun on.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The connection settings: `head_limit` for HTTP/1 heads (`None`: none);
/// for HTTP/2 poem's limits on reset streams and header lists, and hyper's
/// default of 200 streams at once (poem's server set no such cap).
fn builder(head_limit: Option<Duration>) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_limit)
        // Body chunks are sent as they are, not copied into one buffer first:
        // ranged reads of 1 MiB cost 15% more CPU flattened.
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_pending_accept_reset_streams(Some(20))
        .max_header_list_size(16384);
    builder
}

/// Told of each request hyper refused itself (the client's address, and the
/// status hyper answered), so that it is logged and counted.
pub(crate) type OnRefused = Arc<dyn Fn(Option<std::net::IpAddr>, u16) + Send + Sync>;

/// The status hyper answered a connection's last request with when it ended
/// on a head it could not parse; `None` for any other end (hyper sends nothing
/// for the few parse errors not listed here).
fn refused_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let e = e.downcast_ref::<hyper::Error>()?;
    if !e.is_parse() {
        return None;
    }
    // hyper names its parse errors only in their messages (see its `on_error`).
    let message = e.to_string();
    Some(if e.is_parse_too_large() {
        if message.contains("URI") {
            414
        } else {
            431
        }
    } else if message.contains("HTTP2") || message.contains("internal") {
        return None;
    } else {
        400
    })
}

/// Serves `app` on `acceptor` until `stop` completes, then lets open
/// connections finish for up to `grace` (see the module documentation);
/// requests hyper refuses before `app` sees them go to `on_refused`.
pub(crate) async fn serve<A, E>(
    mut acceptor: A,
    app: E,
    on_refused: OnRefused,
    stop: impl Future<Output = ()>,
    grace: Duration,
    head_limit: Option<Duration>,
) where
    A: Acceptor + 'static,
    E: Endpoint + 'static,
{
    let app = Arc::new(app.map_to_response());
    let builder = builder(head_limit);
    let graceful = GracefulShutdown::new();
    // Turns true when the grace period is over: every connection is dropped.
    let (cut, cut_watch) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = acceptor.accept() => accepted,
        };
        let (io, local, remote, scheme) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a connection failed");
                // One client's failure is no reason to make the next wait.
                let one_client = matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                );
                if !one_client {
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
                continue;
            }
        };
        let peer = remote.as_socket_addr().map(|a| a.ip());
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: poem::http::Request<Incoming>| {
            let app = app.clone();
            let request = poem::Request::from((req, local.clone(), remote.clone(), scheme.clone()));
            async move {
                let response = app.get_response(request).await;
                Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, std::io::Error>>::from(
                    response,
                ))
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let mut cut_watch = cut_watch.clone();
        let on_refused = on_refused.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if let Some(status) = ended.err().and_then(|e| refused_status(&*e)) {
                        on_refused(peer, status);
                    }
                }
                _ = cut_watch.wait_for(|cut| *cut) => {}
            }
        });
    }
    drop(acceptor);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            let _ = cut.send(true);
        }
    }
}
