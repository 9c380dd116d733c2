//! Backends that stop answering: a PostgreSQL server or a bucket reached
//! through a relay that can be frozen (connections stay open, no byte
//! passes, as with a server stopped by SIGSTOP or a network partition).
//! `/readyz` answers 503 with the reason instead of waiting, requests get a
//! 503 with `Retry-After`, `/metrics` leaves out what it cannot count, and
//! everything works again once the backend does.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::{postgres_metadata_url, s3_url, TestServer};

/// A TCP relay to one upstream address that can be frozen.
struct Relay {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays connections to `upstream` (`host:port`).
    async fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, watching) = watch::channel(false);
        let upstream = upstream.to_string();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, watching) = (upstream.clone(), watching.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, watching.clone()), pipe(sr, cw, watching));
                });
            }
        });
        Relay {
            addr,
            frozen,
            accept,
        }
    }

    /// Holds every byte from now on (connections stay open).
    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Lets the held bytes and new ones through again.
    fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to`, holding each read while frozen.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// `url` with the `host:port` after `scheme://` (and any `user@`) replaced
/// by `addr`; and the address replaced.
fn through(url: &str, addr: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    (format!("{scheme}://{user}{addr}{tail}"), host.to_string())
}

/// A client that gives up after `secs`, far beyond what the server may take.
fn patient_client(secs: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .unwrap()
}

/// Asks `/readyz` until it answers 200 (the backend is back), for at most a minute.
async fn ready_again(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("/readyz did not answer 200 again after the backend came back");
}

/// A frozen PostgreSQL: `/readyz` answers 503 naming the metadata store, a
/// request answers 503 with `Retry-After` in the spec's envelope (with a
/// statement timeout of 1 s from the URL, the call gives up after it plus a
/// margin), and both recover when it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_makes_readiness_and_requests_answer_503() {
    let Some(meta) = postgres_metadata_url() else {
        return;
    };
    let (_, upstream) = through(meta.expose(), "127.0.0.1:1".parse().unwrap());
    let relay = Relay::start(&upstream).await;
    let (url, _) = through(meta.expose(), relay.addr);
    let url = format!("{url}%20-c%20statement_timeout%3D1s");
    let s = TestServer::start_with(|c| {
        c.registry.metadata_url = Some(marina::config::SecretUrl::new(url));
    })
    .await;
    let http = patient_client(60);
    let tags = format!("{}/v2/outage/app/tags/list", s.url);
    assert_eq!(http.get(&tags).send().await.unwrap().status(), 404);
    let ready = format!("{}/readyz", s.url);
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 200);
    let metrics = format!("{}/metrics", s.url);
    let stored = |text: &str| text.lines().any(|l| l.starts_with("marina_stored{"));
    let text = http
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stored(&text), "{text}");

    relay.freeze();
    let r = http.get(&ready).send().await.expect("/readyz answers");
    assert_eq!(r.status(), 503);
    let why = r.text().await.unwrap();
    assert!(why.contains("metadata store"), "{why}");
    // What the stores hold cannot be counted: not shown, rather than the last count.
    let r = http.get(&metrics).send().await.expect("/metrics answers");
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!stored(&text), "{text}");
    assert!(text.contains("marina_build_info"), "{text}");

    let r = http
        .get(&tags)
        .send()
        .await
        .expect("the request is answered");
    assert_eq!(r.status(), 503);
    let after = r.headers().get("retry-after").expect("Retry-After");
    assert!(after.to_str().unwrap().parse::<u32>().unwrap() > 0);
    let body: serde_json::Value = r.json().await.unwrap();
    let code = body["errors"][0]["code"]
        .as_str()
        .expect("the error envelope");
    assert!(marina::oci::ErrorCode::parse(code).is_some(), "{body}");

    relay.thaw();
    ready_again(&http, &s.url).await;
    assert_eq!(http.get(&tags).send().await.unwrap().status(), 404);
}

/// A frozen bucket: `/readyz` answers 503 naming the blob store, and 200 again
/// once the bucket answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_bucket_makes_readiness_answer_503() {
    let Some(blobs) = s3_url() else {
        return;
    };
    let (_, query) = blobs.split_once("endpoint=").expect("an endpoint");
    let endpoint = query.split('&').next().unwrap();
    let (_, upstream) = through(endpoint, "127.0.0.1:1".parse().unwrap());
    let relay = Relay::start(&upstream).await;
    let (relayed, _) = through(endpoint, relay.addr);
    let url = blobs.replace(endpoint, &relayed);
    let s = TestServer::start_with(|c| c.registry.blob_url = Some(url)).await;
    let http = patient_client(60);
    let ready = format!("{}/readyz", s.url);
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 200);

    relay.freeze();
    let r = http.get(&ready).send().await.expect("/readyz answers");
    assert_eq!(r.status(), 503);
    let why = r.text().await.unwrap();
    assert!(why.contains("blob store"), "{why}");

    relay.thaw();
    ready_again(&http, &s.url).await;
}
