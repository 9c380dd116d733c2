//! Connections that stop moving bytes are closed (`idle_timeout_secs`), and what
//! they held (an upload session) is free again; slow ones that keep moving are not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use marina::oci::Algorithm;
use reqwest::Method;

use crate::support::TestServer;

async fn server() -> TestServer {
    server_with(1).await
}

async fn server_with(idle_timeout_secs: u64) -> TestServer {
    TestServer::start_with(|c| c.idle_timeout_secs = idle_timeout_secs).await
}

fn connect(s: &TestServer) -> TcpStream {
    connect_to(&s.url)
}

fn connect_to(url: &str) -> TcpStream {
    let sock = TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    sock
}

/// Opens an upload session in `repo`; returns its location.
async fn open_session(s: &TestServer, repo: &str) -> String {
    crate::api_uploads::open(s, repo, "").await.1
}

/// Reads until the server closes the connection; panics if it is still open
/// after 20 s. Returns what was read.
fn until_closed(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_headers_and_idle_keep_alives_are_closed() {
    let s = server().await;
    let mut half = connect(&s);
    let addr = s.url.clone();
    let (unfinished, idle) = tokio::task::spawn_blocking(move || {
        half.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
        let unfinished = until_closed(&mut half);
        // A whole request, answered, then nothing more.
        let mut kept = connect_to(&addr);
        kept.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let idle = until_closed(&mut kept);
        (unfinished, idle)
    })
    .await
    .unwrap();
    assert!(
        unfinished.is_empty(),
        "{}",
        String::from_utf8_lossy(&unfinished)
    );
    let answer = String::from_utf8_lossy(&idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_body_lets_go_of_its_session() {
    let s = server().await;
    let loc = open_session(&s, "org/stall").await;
    // Past the first batch, so the body's lanes are running when it stalls.
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 300000\r\n\r\n"
    );
    let mut sock = connect(&s);
    tokio::task::spawn_blocking(move || {
        sock.write_all(head.as_bytes()).unwrap();
        sock.write_all(&[7u8; 150_000]).unwrap();
        until_closed(&mut sock)
    })
    .await
    .unwrap();
    // The session is free and where it was before the cut chunk.
    let body = vec![9u8; 200_000];
    let started = Instant::now();
    let patched = tokio::time::timeout(
        Duration::from_secs(20),
        s.req(Method::PATCH, &loc)
            .await
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "0-199999")
            .body(body.clone())
            .send(),
    )
    .await
    .expect("the session is not held by the stalled request");
    patched.expect(202, None);
    assert!(started.elapsed() < Duration::from_secs(20));
    let next = patched.header("location").expect("location").to_string();
    let digest = Algorithm::Sha256.digest_of(&body);
    let sep = if next.contains('?') { '&' } else { '?' };
    s.req(Method::PUT, &format!("{next}{sep}digest={digest}"))
        .await
        .send()
        .await
        .expect(201, None);
    let got = s.get(&format!("/v2/org/stall/blobs/{digest}")).await;
    got.expect(200, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_that_keeps_moving_is_not_cut() {
    let s = server_with(2).await;
    let loc = open_session(&s, "org/slow").await;
    let body: Vec<u8> = (0..6_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Algorithm::Sha256.digest_of(&body);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let head = format!(
        "PUT {loc}{sep}digest={digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut sock = connect(&s);
    let answer = tokio::task::spawn_blocking(move || {
        sock.write_all(head.as_bytes()).unwrap();
        // Ten pieces 400 ms apart: 4 s in all, twice the limit of 2 s, but
        // never 2 s without a byte.
        for piece in body.chunks(600) {
            std::thread::sleep(Duration::from_millis(400));
            sock.write_all(piece).unwrap();
        }
        until_closed(&mut sock)
    })
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_in_is_cut_at_the_limit() {
    let s = server_with(2).await;
    let mut sock = connect(&s);
    let (sent, closed_after) = tokio::task::spawn_blocking(move || {
        sock.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        sock.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        // One header byte every 300 ms, for up to 20 s: the stall limit (2 s)
        // never runs out, so only a deadline on the head as a whole ends it.
        let started = Instant::now();
        let mut sent = 0;
        while started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(300));
            if sock.write_all(b"a").is_err() {
                break;
            }
            sent += 1;
            let mut probe = [0u8; 256];
            sock.set_nonblocking(true).unwrap();
            let read = sock.read(&mut probe);
            sock.set_nonblocking(false).unwrap();
            match read {
                // Closed, perhaps after a 408.
                Ok(0) => break,
                Ok(n) => {
                    let answer = String::from_utf8_lossy(&probe[..n]).to_string();
                    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        (sent, started.elapsed())
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_secs(20),
        "the trickled head was still being read after {closed_after:?} ({sent} bytes)"
    );
}
