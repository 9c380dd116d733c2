//! The request and response values the harness's client exchanges.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path (`/v2/...`) relative to the registry, or an absolute URL.
    pub target: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Bytes>,
    /// Send the body in 256 KiB slices with short pauses, so that an early answer
    /// (such as 413 after the server read up to its limit) is read by the client
    /// while it waits, before the server closes the connection.
    pub paced: bool,
}

/// Slices of a paced body.
pub(crate) const PACED_SLICE: usize = 256 * 1024;
/// Pause before each slice of a paced body.
pub(crate) const PACE: Duration = Duration::from_millis(5);

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, target: impl Into<String>) -> Request {
        Request {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: None,
            paced: false,
        }
    }
    /// GET.
    pub fn get(target: impl Into<String>) -> Request {
        Request::new(Method::GET, target)
    }
    /// HEAD.
    pub fn head(target: impl Into<String>) -> Request {
        Request::new(Method::HEAD, target)
    }
    /// PUT.
    pub fn put(target: impl Into<String>) -> Request {
        Request::new(Method::PUT, target)
    }
    /// POST.
    pub fn post(target: impl Into<String>) -> Request {
        Request::new(Method::POST, target)
    }
    /// PATCH.
    pub fn patch(target: impl Into<String>) -> Request {
        Request::new(Method::PATCH, target)
    }
    /// DELETE.
    pub fn delete(target: impl Into<String>) -> Request {
        Request::new(Method::DELETE, target)
    }
    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    /// Sets the body (Content-Length follows from it).
    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = Some(body.into());
        self
    }
    /// Sends the body paced (see [`Request::paced`]).
    pub fn paced(mut self) -> Request {
        self.paced = true;
        self
    }
}

/// A response, body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code after redirects.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// The URL that answered (after redirects).
    pub url: Url,
}

impl Response {
    /// First value of a header, if it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }
    /// Resolves a header holding a URL (Location, Link target) against the response URL.
    pub fn resolve(&self, reference: &str) -> Option<Url> {
        self.url.join(reference).ok()
    }
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);
