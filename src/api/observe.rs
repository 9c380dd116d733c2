//! The outermost layer: a request id for every request, the access log, and the
//! request metrics.
//!
//! It wraps access control too, so refusals (401, 403, 429) are logged and counted
//! with the reason the guard left on the response ([`crate::auth::Verdict`]). One
//! line per request at INFO under the target `marina::access`: request id (the
//! client's `X-Request-Id` when it sends a sane one, generated otherwise, and
//! echoed in the response), method, route template, repository, status, bytes in
//! and out, duration, client address (from `X-Forwarded-For` only when the peer is
//! a trusted proxy) and user. Never a credential: no header value but the request
//! id is read.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use ipnet::IpNet;
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};

use super::route::{route, Routed};
use crate::auth::Verdict;
use crate::config::Config;
use crate::logsink::AccessLine;
use crate::oci::RepoName;
use crate::registry::Registry;

/// The header that carries the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// What the layer keeps between requests.
#[derive(Clone)]
pub(crate) struct Observer {
    registry: Arc<Registry>,
    proxies: Arc<Vec<IpNet>>,
    /// Set while the storage is full, so the condition is logged once per episode.
    storage_full: Arc<AtomicBool>,
}

impl Observer {
    pub(crate) fn new(registry: Arc<Registry>, server: &Config) -> Self {
        let proxies = server.proxy_networks().unwrap_or_default();
        Observer {
            registry,
            proxies: Arc::new(proxies),
            storage_full: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Calls `ep` and logs and counts the request.
    async fn observe<E: Endpoint>(&self, ep: &E, mut req: Request) -> Response {
        let started = Instant::now();
        let id = request_id(&req);
        let method = method_name(req.method());
        // The route table is read once per request; the layers inside find the
        // answer in the request's extensions.
        let routed = route(req.method().as_str(), req.uri().path(), req.uri().query());
        let route = routed.endpoint.template();
        // Only a valid name is logged: a raw one could carry anything.
        let repo = routed
            .endpoint
            .repository()
            .and_then(|r| r.parse::<RepoName>().ok());
        req.extensions_mut().insert::<Routed>(routed);
        let client = client_address(&req, &self.proxies);
        if let Some(ip) = client {
            req.extensions_mut().insert(ClientAddr(ip));
        }
        let received = Arc::new(AtomicU64::new(0));
        if has_body(&req) {
            let body = req.take_body().into_bytes_stream();
            req.set_body(Body::from_bytes_stream(Counting {
                inner: body,
                count: received.clone(),
            }));
        }
        let mut pending = Pending {
            registry: self.registry.clone(),
            started,
            id,
            method,
            route,
            repo,
            client,
            received,
            recorded: false,
        };
        let mut resp = match ep.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => super::error::framework_error(e),
        };
        if let Ok(v) = HeaderValue::from_str(&pending.id) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        // An `ns` request was served from the upstream's local name.
        if let Some(r) = resp.extensions().get::<super::namespace::Rescoped>() {
            pending.repo = Some(r.0.clone());
        }
        let status = resp.status();
        let sent = if method == "HEAD" {
            0
        } else {
            let declared = resp
                .headers()
                .get(poem::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            declared.unwrap_or_else(|| {
                // The body itself knows its length when it is not a stream.
                let body: http_body_util::combinators::BoxBody<Bytes, std::io::Error> =
                    resp.take_body().into();
                let n = http_body::Body::size_hint(&body).exact().unwrap_or(0);
                resp.set_body(Body::from(body));
                n
            })
        };
        let verdict = resp
            .extensions()
            .get::<Verdict>()
            .cloned()
            .unwrap_or_default();
        if let Some(reason) = verdict.refusal {
            self.registry.metrics().refusal(reason);
        }
        self.note_storage(status, route);
        pending.record(
            status.as_u16(),
            sent,
            verdict.user.as_deref().unwrap_or("anonymous"),
            verdict.refusal.unwrap_or("-"),
        );
        resp
    }

    /// Counts a 507 and logs the start and end of a storage-full episode once.
    /// The episode ends when a blob is stored again (201 on an upload route):
    /// writes that add little (a manifest, a session opened) still pass while
    /// blobs do not, and would end it at every request.
    fn note_storage(&self, status: StatusCode, route: &str) {
        if status == StatusCode::INSUFFICIENT_STORAGE {
            self.registry.metrics().storage_full();
            if !self.storage_full.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "storage is full, or pushes reached the space kept free (--min-free-mib): writes are answered 507 until space is freed; stored content is intact"
                );
            }
        } else if status == StatusCode::CREATED
            && route.contains("/blobs/uploads")
            && self.storage_full.swap(false, Ordering::Relaxed)
        {
            tracing::warn!("storage accepts writes again");
        }
    }
}

/// Records a request the HTTP layer refused before it reached the application
/// (a head it could not parse, or one too large): hyper answers it (400, 414
/// or 431) itself. Logged and counted like any request, with method `OTHER`
/// and route `-`, since neither could be read.
pub(crate) fn record_refused(registry: &Arc<Registry>, client: Option<IpAddr>, status: u16) {
    Pending {
        registry: registry.clone(),
        started: Instant::now(),
        id: format!("{:016x}", rand::random::<u64>()),
        method: "OTHER",
        route: "-",
        repo: None,
        client,
        received: Arc::default(),
        recorded: false,
    }
    .record(status, 0, "-", "-");
}

/// Status logged and counted for a request whose client went away before its
/// answer (nginx's "client closed request").
pub(crate) const CLIENT_GONE: u16 = 499;

/// A request being answered: what its access line and metrics need. A request
/// whose client goes away is dropped by the server before it is answered; it
/// is then recorded on drop, as [`CLIENT_GONE`], so that no request goes
/// unlogged or uncounted.
struct Pending {
    registry: Arc<Registry>,
    started: Instant,
    id: String,
    method: &'static str,
    route: &'static str,
    repo: Option<RepoName>,
    client: Option<IpAddr>,
    received: Arc<AtomicU64>,
    recorded: bool,
}

impl Pending {
    /// Counts the request and writes its access line, once.
    fn record(&mut self, status: u16, sent: u64, user: &str, refusal: &str) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let received = self.received.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let (route, method) = (self.route, self.method);
        self.registry
            .metrics()
            .request(route, method, status, elapsed, received, sent);
        if tracing::enabled!(target: "marina::access", tracing::Level::INFO) {
            log_access(&AccessLine {
                request_id: &self.id,
                method,
                route,
                repository: self.repo.as_ref().map(|r| r.as_str()),
                status,
                bytes_in: received,
                bytes_out: sent,
                duration: elapsed,
                client: self.client,
                user,
                refusal,
            });
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Who the client was is decided inside, and lost with the answer.
        self.record(CLIENT_GONE, 0, "-", "-");
    }
}

impl<E: Endpoint> Middleware<E> for Observer {
    type Output = Observed<E>;

    fn transform(&self, inner: E) -> Self::Output {
        Observed {
            inner,
            observer: self.clone(),
        }
    }
}

/// An endpoint whose requests are logged and counted.
pub(crate) struct Observed<E> {
    inner: E,
    observer: Observer,
}

impl<E: Endpoint> Endpoint for Observed<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(self.observer.observe(&self.inner, req).await)
    }
}

/// The client's request id if it is short and printable, a new one otherwise.
/// Writes one access line: through the server's log sink when `marina serve`
/// set one up, as a `tracing` event otherwise (a library user's subscriber).
fn log_access(l: &AccessLine<'_>) {
    if let Some(sink) = crate::logsink::access() {
        sink.access(l);
        return;
    }
    tracing::info!(
        target: "marina::access",
        request_id = %l.request_id,
        method = l.method,
        route = l.route,
        repository = l.repository.unwrap_or("-"),
        status = l.status,
        bytes_in = l.bytes_in,
        bytes_out = l.bytes_out,
        duration_ms = l.duration.as_secs_f64() * 1000.0,
        client = %l.client.map_or_else(|| "-".to_string(), |c| c.to_string()),
        user = l.user,
        refusal = l.refusal,
        "request"
    );
}

fn request_id(req: &Request) -> String {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(v) => v.to_string(),
        None => format!("{:016x}", rand::random::<u64>()),
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn has_body(req: &Request) -> bool {
    let h = req.headers();
    h.contains_key(poem::http::header::TRANSFER_ENCODING)
        || h.get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0")
}

/// The client's address as this layer resolved it (behind a trusted proxy, from
/// `X-Forwarded-For`), left in the request for the login throttle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub IpAddr);

/// The client's address: what this layer resolved, else the peer's.
pub(crate) fn client_ip(req: &Request) -> Option<IpAddr> {
    match req.extensions().get::<ClientAddr>() {
        Some(ClientAddr(ip)) => Some(*ip),
        None => req.remote_addr().as_socket_addr().map(|a| a.ip()),
    }
}

/// The peer's address, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
fn client_address(req: &Request, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    forwarded_client(
        peer,
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        proxies,
    )
}

fn forwarded_client<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    proxies: &[IpNet],
) -> Option<IpAddr> {
    let trusted = |ip: &IpAddr| proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = forwarded
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    Some(
        hops.iter()
            .rev()
            .find(|ip| !trusted(ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer),
    )
}

/// A request body that counts what passes through it.
struct Counting<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S, E> Stream for Counting<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(b))) = &polled {
            self.count.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // A direct client cannot name itself someone else.
        assert_eq!(
            forwarded_client(ip("192.0.2.7"), ["1.2.3.4"].into_iter(), &proxies),
            Some(ip("192.0.2.7"))
        );
        // Behind the proxy: the last untrusted hop, not what the client prepended.
        assert_eq!(
            forwarded_client(
                ip("10.1.2.3"),
                ["6.6.6.6, 192.0.2.9", "10.9.9.9"].into_iter(),
                &proxies
            ),
            Some(ip("192.0.2.9"))
        );
        // A trusted peer without the header is the client.
        assert_eq!(
            forwarded_client(ip("10.1.2.3"), std::iter::empty(), &proxies),
            Some(ip("10.1.2.3"))
        );
    }
}
