//! The harness's HTTP client against tiny scripted servers on loopback: the
//! Bearer-token flow, redirects that keep Authorization on its own host only,
//! and redaction of credentials in transcripts.

use std::sync::{Arc, Mutex};

use marina::client::{Client, Request};
use marina::harness::{Credentials, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request a scripted server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
}

type Handler = Arc<dyn Fn(&Seen) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// A one-connection-at-a-time HTTP/1.1 server answering from `handler`; stops when dropped.
struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scripted(ip: &str, handler: Handler) -> Scripted {
    let listener = TcpListener::bind(format!("{ip}:0")).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
            let authorization = text.lines().find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.trim().to_string())
            });
            let req = Seen {
                path,
                authorization,
            };
            log.lock().unwrap().push(req.clone());
            let (status, headers, body) = handler(&req);
            let mut resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
            resp.push_str("\r\n");
            resp.push_str(&body);
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    Scripted { url, seen, task }
}

fn creds() -> Options {
    Options {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }),
        ..Options::default()
    }
}

#[tokio::test]
async fn bearer_challenge_fetches_a_token_with_basic_credentials_and_retries() {
    let realm: Arc<Mutex<String>> = Arc::default();
    let r2 = realm.clone();
    let server = scripted(
        "127.0.0.1",
        Arc::new(move |s: &Seen| {
            if s.path.starts_with("/token") {
                let ok = s.authorization.as_deref() == Some("Basic YWxpY2U6czNjcmV0")
                    && s.path.contains("service=fake")
                    && s.path.contains("scope=repository%3Aa%2Fb%3Apull");
                return if ok {
                    (200, vec![], r#"{"token":"tok-123"}"#.into())
                } else {
                    (401, vec![], String::new())
                };
            }
            if s.authorization.as_deref() == Some("Bearer tok-123") {
                return (200, vec![], "{}".into());
            }
            let challenge = format!(
                r#"Bearer realm="{}/token",service="fake",scope="repository:a/b:pull""#,
                r2.lock().unwrap()
            );
            (
                401,
                vec![("WWW-Authenticate".into(), challenge)],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}"#.into(),
            )
        }),
    )
    .await;
    *realm.lock().unwrap() = server.url.clone();
    let client = Client::new(&server.url, &creds().client_options()).expect("client");
    let r = client
        .send(Request::get("/v2/a/b/tags/list"))
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "challenge, token, retry: {seen:?}");
    // The token is reused for the same scope without another challenge.
    let r = client
        .send(Request::get("/v2/a/b/tags/list"))
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(server.seen.lock().unwrap().len(), 4);
    let transcript = marina::client::transcript::render_all(&client.log(), 10);
    assert!(
        !transcript.contains("tok-123") && !transcript.contains("YWxpY2U6czNjcmV0"),
        "secrets leak:\n{transcript}"
    );
    assert!(transcript.contains("Bearer <redacted>"), "{transcript}");
}

#[tokio::test]
async fn redirects_keep_authorization_on_the_same_host_only() {
    let other = scripted(
        "127.0.0.2",
        Arc::new(|_: &Seen| (200, vec![], "elsewhere".into())),
    )
    .await;
    let target = format!("{}/blob", other.url);
    let server = scripted(
        "127.0.0.1",
        Arc::new(move |s: &Seen| match s.path.as_str() {
            "/v2/" if s.authorization.is_none() => (
                401,
                vec![("WWW-Authenticate".into(), "Basic realm=\"r\"".into())],
                String::new(),
            ),
            "/v2/" => (200, vec![], "{}".into()),
            "/v2/a/blobs/same" => (
                307,
                vec![("Location".into(), "/v2/a/blobs/moved".into())],
                String::new(),
            ),
            "/v2/a/blobs/moved" => (200, vec![], "here".into()),
            _ => (
                307,
                vec![("Location".into(), target.clone())],
                String::new(),
            ),
        }),
    )
    .await;
    let client = Client::new(&server.url, &creds().client_options()).expect("client");
    assert_eq!(
        client
            .send(Request::get("/v2/"))
            .await
            .expect("answer")
            .status,
        200
    );
    let r = client
        .send(Request::get("/v2/a/blobs/same"))
        .await
        .expect("answer");
    assert_eq!((r.status, &r.body[..]), (200, &b"here"[..]));
    let moved = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.path == "/v2/a/blobs/moved")
        .cloned()
        .expect("followed");
    assert!(
        moved.authorization.is_some(),
        "same-host redirect keeps Authorization"
    );
    let r = client
        .send(Request::get("/v2/a/blobs/away"))
        .await
        .expect("answer");
    assert_eq!((r.status, &r.body[..]), (200, &b"elsewhere"[..]));
    let away = other.seen.lock().unwrap().clone();
    assert_eq!(away.len(), 1);
    assert_eq!(
        away[0].authorization, None,
        "Authorization must not cross to another host"
    );
    assert_eq!(client.with_seen(|s| s.redirects), 2);
}

#[tokio::test]
async fn unreachable_registries_are_a_usage_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = marina::harness::check(&format!("http://127.0.0.1:{port}"), Options::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot reach the registry"),
        "{err}"
    );
    let err = marina::harness::check("ftp://example", Options::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid registry address"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_options_are_validated_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let options = Options {
        ca_file: Some(missing),
        ..Options::default()
    };
    let err = Client::new("https://127.0.0.1:1", &options.client_options())
        .err()
        .expect("a missing CA file is refused");
    assert!(err.to_string().contains("cannot use CA file"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let options = Options {
        ca_file: Some(empty),
        ..Options::default()
    };
    let err = Client::new("https://127.0.0.1:1", &options.client_options())
        .err()
        .expect("a file without certificates is refused");
    assert!(err.to_string().contains("no certificate"), "{err}");
    let options = Options {
        insecure: true,
        ..Options::default()
    };
    assert!(Client::new("https://127.0.0.1:1", &options.client_options()).is_ok());
}

#[tokio::test]
async fn throttled_requests_are_retried_after_retry_after() {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let server = scripted(
        "127.0.0.1",
        Arc::new(move |_: &Seen| {
            if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                (
                    429,
                    vec![("Retry-After".into(), "0".into())],
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.into(),
                )
            } else {
                (200, vec![], "{}".into())
            }
        }),
    )
    .await;
    let client = Client::new(&server.url, &Options::default().client_options()).expect("client");
    let r = client.send(Request::get("/v2/")).await.expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(
        client.with_seen(|s| s.throttled.len()),
        2,
        "429s are recorded for protocol.retry-after"
    );
}
