//! Lean keep-alive HTTP/1.1 connections for the request-rate phases (manifest GET
//! and HEAD at many connections, small ranged reads), where a general client's
//! per-request work would take CPU from the server on a small machine. The load
//! generator shares the machine with both registries, so every microsecond it
//! spends per request is one the registry under test does not get, and the
//! faster registry loses the most.
//!
//! A request is bytes built once per phase (or per range); an answer is parsed with
//! `httparse` and its body framed by `Content-Length`, by chunks, or by the end of
//! the connection. One request at a time per connection, no pipelining. Plain
//! `http://` only; `https://` registries use the general client.

use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most header lines an answer may carry.
const MAX_HEADERS: usize = 64;
/// Largest head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Connections to one registry, reused by whichever worker is free.
pub struct Pool {
    addr: String,
    host: String,
    idle: Mutex<Vec<Conn>>,
}

/// One open connection and the bytes read from it but not yet consumed.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// What a request got back.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Body bytes received.
    pub len: u64,
    /// The body, when it was asked for.
    pub body: Option<Vec<u8>>,
}

impl Pool {
    /// A pool for `base` when it is plain HTTP; `None` for HTTPS.
    pub fn new(base: &Url) -> Option<Pool> {
        if base.scheme() != "http" {
            return None;
        }
        let host = base.host_str()?.to_string();
        let port = base.port_or_known_default()?;
        let authority = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        Some(Pool {
            addr: format!("{host}:{port}"),
            host: authority,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The bytes of a bodiless request for `path` (starting with `/`) with extra
    /// `headers`, ready to be sent any number of times.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut r = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.host);
        for (name, value) in headers {
            r.push_str(name);
            r.push_str(": ");
            r.push_str(value);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    async fn connect(&self) -> Result<Conn> {
        let stream = TcpStream::connect(self.addr.as_str())
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    fn take(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    /// Sends `request` (from [`Pool::request`]; `head` when its method is HEAD)
    /// and reads the whole answer, keeping the body when `keep_body`. A kept-alive
    /// connection the server closed while idle is replaced once.
    pub async fn send(&self, request: &[u8], head: bool, keep_body: bool) -> Result<Reply> {
        if let Some(mut conn) = self.take() {
            match exchange(&mut conn, request, head, keep_body).await {
                Ok((reply, reusable)) => {
                    if reusable {
                        self.give_back(conn);
                    }
                    return Ok(reply);
                }
                Err(Exchange::Stale) => {}
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        let mut conn = self.connect().await?;
        match exchange(&mut conn, request, head, keep_body).await {
            Ok((reply, reusable)) => {
                if reusable {
                    self.give_back(conn);
                }
                Ok(reply)
            }
            Err(Exchange::Stale) => Err(anyhow!("{} closed the connection unanswered", self.addr)),
            Err(Exchange::Failed(e)) => Err(e),
        }
    }
}

/// Why an exchange did not give an answer.
enum Exchange {
    /// The connection was closed before any byte of an answer came back (a kept-alive
    /// connection the server dropped): the request may be sent again elsewhere.
    Stale,
    /// Anything else.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Exchange {
    fn from(e: anyhow::Error) -> Self {
        Exchange::Failed(e)
    }
}

impl From<std::io::Error> for Exchange {
    fn from(e: std::io::Error) -> Self {
        Exchange::Failed(e.into())
    }
}

/// How an answer's body is framed.
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// One request and its answer on `conn`; also says whether the connection may be
/// used again.
async fn exchange(
    conn: &mut Conn,
    request: &[u8],
    head: bool,
    keep_body: bool,
) -> std::result::Result<(Reply, bool), Exchange> {
    if !conn.buf.is_empty() {
        return Err(anyhow!("bytes beyond the last answer on a kept connection").into());
    }
    if let Err(e) = conn.stream.write_all(request).await {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Exchange::Stale,
            _ => e.into(),
        });
    }
    let (status, framing, mut reusable, head_len) = loop {
        match parse_head(&conn.buf, head)? {
            Some(parsed) => break parsed,
            None if conn.buf.len() > MAX_HEAD => {
                return Err(anyhow!("answer head over 64 KiB").into())
            }
            None => match fill(conn).await {
                Ok(n) if n > 0 => {}
                Ok(_) if conn.buf.is_empty() => return Err(Exchange::Stale),
                Err(e)
                    if conn.buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return Err(Exchange::Stale)
                }
                Ok(_) => return Err(anyhow!("connection closed inside an answer's head").into()),
                Err(e) => return Err(e.into()),
            },
        }
    };
    conn.buf.drain(..head_len);
    let mut body = keep_body.then(Vec::new);
    let len = match framing {
        Framing::Length(n) => take_exact(conn, n, &mut body).await?,
        Framing::Chunked => take_chunked(conn, &mut body).await?,
        Framing::UntilClose => {
            reusable = false;
            let mut n = 0;
            loop {
                n += consume(conn, conn.buf.len(), &mut body);
                if fill(conn).await? == 0 {
                    break n;
                }
            }
        }
    };
    Ok((Reply { status, len, body }, reusable))
}

/// Parses the head in `buf` when it is complete: the status, the body's framing,
/// whether the connection stays open, and the head's length.
fn parse_head(buf: &[u8], head: bool) -> Result<Option<(u16, Framing, bool, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf).context("malformed answer head")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) {
        bail!("unexpected interim answer {status}");
    }
    let mut keep = resp.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| anyhow!("bad content-length"))?;
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.to_ascii_lowercase().ends_with(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value.to_ascii_lowercase();
            if v == b"close" {
                keep = false;
            } else if v == b"keep-alive" {
                keep = true;
            }
        }
    }
    let framing = if head || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some((status, framing, keep, n)))
}

/// Reads more bytes into the connection's buffer; 0 at the end of the stream.
async fn fill(conn: &mut Conn) -> std::io::Result<usize> {
    if conn.buf.capacity() - conn.buf.len() < 4096 {
        conn.buf.reserve(8192);
    }
    conn.stream.read_buf(&mut conn.buf).await
}

/// Moves up to `n` buffered bytes into `body` (or drops them); returns how many.
fn consume(conn: &mut Conn, n: usize, body: &mut Option<Vec<u8>>) -> u64 {
    let n = n.min(conn.buf.len());
    if let Some(b) = body {
        b.extend_from_slice(&conn.buf[..n]);
    }
    conn.buf.drain(..n);
    n as u64
}

/// Reads exactly `n` body bytes.
async fn take_exact(conn: &mut Conn, n: u64, body: &mut Option<Vec<u8>>) -> Result<u64> {
    let mut got = 0;
    loop {
        got += consume(conn, usize::try_from(n - got).unwrap_or(usize::MAX), body);
        if got == n {
            return Ok(got);
        }
        if fill(conn).await? == 0 {
            bail!("connection closed after {got} of {n} body bytes");
        }
    }
}

/// Reads one CRLF-terminated line (without the CRLF).
async fn take_line(conn: &mut Conn) -> Result<Vec<u8>> {
    loop {
        if let Some(i) = conn.buf.windows(2).position(|w| w == b"\r\n") {
            let line = conn.buf[..i].to_vec();
            conn.buf.drain(..i + 2);
            return Ok(line);
        }
        if conn.buf.len() > MAX_HEAD {
            bail!("chunk line over 64 KiB");
        }
        if fill(conn).await? == 0 {
            bail!("connection closed inside a chunked body");
        }
    }
}

/// Reads a chunked body and its trailers.
async fn take_chunked(conn: &mut Conn, body: &mut Option<Vec<u8>>) -> Result<u64> {
    let mut total = 0;
    loop {
        let line = take_line(conn).await?;
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| anyhow!("bad chunk size"))?;
        if size == 0 {
            while !take_line(conn).await?.is_empty() {}
            return Ok(total);
        }
        total += take_exact(conn, size, body).await?;
        if !take_line(conn).await?.is_empty() {
            bail!("chunk longer than its size");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that reads one request head per answer and sends the answers of
    /// `script` in order, then closes.
    async fn serve(script: Vec<&'static [u8]>) -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            for answer in script {
                loop {
                    if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..i + 4);
                        break;
                    }
                    let mut b = [0u8; 1024];
                    let n = s.read(&mut b).await.expect("read");
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&b[..n]);
                }
                s.write_all(answer).await.expect("write");
            }
        });
        Url::parse(&format!("http://{addr}/")).expect("url")
    }

    #[tokio::test]
    async fn reads_lengths_chunks_and_heads_on_one_connection() {
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            b"HTTP/1.1 206 Partial Content\r\ncontent-length: 2\r\n\r\nok",
        ])
        .await;
        let pool = Pool::new(&url).expect("http");
        let get = pool.request("GET", "/v2/", &[("accept", "x/y")]);
        assert!(get.starts_with(b"GET /v2/ HTTP/1.1\r\nhost: 127.0.0.1:"));
        assert!(get.ends_with(b"accept: x/y\r\n\r\n"));
        let r = pool.send(&get, false, true).await.expect("first");
        assert_eq!((r.status, r.len), (200, 5));
        assert_eq!(r.body.as_deref(), Some(&b"hello"[..]));
        let r = pool.send(&get, false, true).await.expect("chunked");
        assert_eq!((r.status, r.len), (200, 5));
        assert_eq!(r.body.as_deref(), Some(&b"abcde"[..]));
        let head = pool.request("HEAD", "/v2/", &[]);
        let r = pool.send(&head, true, false).await.expect("head");
        assert_eq!((r.status, r.len, r.body), (200, 0, None));
        let r = pool.send(&get, false, false).await.expect("fourth");
        assert_eq!((r.status, r.len, r.body), (206, 2, None));
        assert_eq!(
            pool.idle.lock().expect("lock").len(),
            1,
            "one connection, kept"
        );
    }

    #[tokio::test]
    async fn a_short_body_is_an_error_and_the_connection_is_not_kept() {
        let url = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]).await;
        let pool = Pool::new(&url).expect("http");
        let get = pool.request("GET", "/", &[]);
        let e = pool.send(&get, false, false).await.expect_err("short");
        assert!(format!("{e:#}").contains("3 of 10"), "{e:#}");
        assert!(pool.idle.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_body_until_close_and_connection_close_are_not_kept() {
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
        ])
        .await;
        let pool = Pool::new(&url).expect("http");
        let r = pool
            .send(&pool.request("GET", "/", &[]), false, true)
            .await
            .expect("answer");
        assert_eq!(r.body.as_deref(), Some(&b"to the end"[..]));
        assert!(pool.idle.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            // The first connection answers once and is closed; the second answers.
            for body in [&b"one"[..], &b"two"[..]] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b).await.expect("read");
                let answer = [&b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"[..], body].concat();
                s.write_all(&answer).await.expect("write");
            }
        });
        let pool = Pool::new(&Url::parse(&format!("http://{addr}/")).expect("url")).expect("http");
        let get = pool.request("GET", "/", &[]);
        let r = pool.send(&get, false, true).await.expect("one");
        assert_eq!(r.body.as_deref(), Some(&b"one"[..]));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let r = pool.send(&get, false, true).await.expect("two");
        assert_eq!(r.body.as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn https_gets_no_pool() {
        assert!(Pool::new(&Url::parse("https://example.test/").expect("url")).is_none());
    }
}
