//! Lean keep-alive HTTP/1.1 connections for the request-rate phases (manifest GET
//! and HEAD at many connections), where the general client's per-request work
//! would take CPU from the server on a small machine. One plain `hyper` connection
//! per worker, a request built from a path, a body counted and dropped. Plain
//! `http://` only; `https://` registries use the general client.

use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use reqwest::Url;

/// Connections to one registry, reused by whichever worker is free.
pub struct Pool {
    addr: String,
    host: String,
    idle: Mutex<Vec<SendRequest<Empty<Bytes>>>>,
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

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.addr.as_str())
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    fn take(&self) -> Option<SendRequest<Empty<Bytes>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, send: SendRequest<Empty<Bytes>>) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(send);
    }

    /// Sends a bodiless request for `path` (starting with `/`) and returns the
    /// status and the body length; the connection is kept for the next request.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> Result<(StatusCode, u64)> {
        let mut send = match self.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        send.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if let Some(a) = accept {
            req = req.header(hyper::header::ACCEPT, a);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| anyhow!("bad request for {path}: {e}"))?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                len += data.len() as u64;
            }
        }
        // The whole answer was read, so the connection is ready for the next request.
        self.give_back(send);
        Ok((status, len))
    }
}
