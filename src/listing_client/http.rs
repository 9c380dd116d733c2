//! A thin HTTP layer: GETs and HEADs relative to the registry's base URL (through
//! the harness's authenticating client), status checks with the body kept for
//! diagnosis, and `Link: <…>; rel="next"` following.

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::ClientError;
use crate::client::headers::next_link;
pub use crate::client::Credentials;
use crate::client::{Client, ClientOptions, Request};

pub use crate::oci::media_types::MANIFEST_ACCEPT;

pub(crate) struct Http {
    client: Client,
    credentials: bool,
    /// With credentials: the status `/v2/` answered once logged in.
    pinged: tokio::sync::OnceCell<Option<u16>>,
    base: String,
}

/// An answer read whole.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub url: String,
}

impl Answer {
    /// Fails unless the status is 2xx.
    pub fn ok(self, method: &'static str) -> Result<Answer, ClientError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(ClientError::Status {
                method,
                url: self.url,
                status: self.status.as_u16(),
                body: String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(300)
                    .collect(),
            })
        }
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Invalid(format!("{}: unexpected body: {e}", self.url)))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Content-Type` without parameters.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim())
    }

    /// The target of a `Link: <…>; rel="next"` header, if any.
    pub fn next(&self) -> Option<String> {
        let values = self.headers.get_all("link");
        // A `Link` that does not parse names no next page.
        next_link(values.iter().filter_map(|v| v.to_str().ok()))
            .ok()
            .flatten()
    }
}

/// How to reach a registry: TLS trust and credentials.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Use http even for a non-loopback registry given without a scheme.
    pub plain_http: bool,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// PEM file with extra root certificates.
    pub ca_file: Option<std::path::PathBuf>,
    /// Credentials for Basic auth and for the token endpoint of a Bearer challenge.
    pub credentials: Option<Credentials>,
}

impl Http {
    /// The harness's client does the HTTP work: it answers Basic and Bearer
    /// challenges, never sends `Authorization` to another host on a redirect, and
    /// retries 429 answers after `Retry-After`.
    pub fn new(base: &str, conn: &Connection) -> Result<Http, ClientError> {
        let options = ClientOptions {
            credentials: conn.credentials.clone(),
            ca_file: conn.ca_file.clone(),
            insecure: conn.insecure,
            user_agent: concat!("marina-list/", env!("CARGO_PKG_VERSION")),
            ..ClientOptions::default()
        };
        let client =
            Client::new(base, &options).map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok(Http {
            client,
            credentials: conn.credentials.is_some(),
            pinged: tokio::sync::OnceCell::new(),
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// Whether credentials were given.
    pub fn has_credentials(&self) -> bool {
        self.credentials
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` may be absolute (`/v2/…`) or a full URL (from a `Link`).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
    ) -> Result<Answer, ClientError> {
        if self.credentials {
            // Learn the registry's login (Basic, or which token service) first, as
            // Docker clients do: a registry that also serves anonymous callers
            // would answer the listing itself anonymously, without a challenge.
            let ping = self
                .pinged
                .get_or_init(|| async {
                    let r = self.client.send(Request::get(self.url("/v2/"))).await;
                    r.ok().map(|r| r.status)
                })
                .await;
            if *ping == Some(401) {
                return Err(ClientError::Invalid(format!(
                    "{}: the registry refused the credentials (401)",
                    self.url("/v2/")
                )));
            }
        }
        let url = self.url(path);
        let resp = self
            .client
            .send(Request::new(method, url.clone()).header(ACCEPT.as_str(), accept))
            .await
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                reason: e.0,
            })?;
        Ok(Answer {
            status: StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY),
            headers: resp.headers,
            body: resp.body.to_vec(),
            url,
        })
    }

    pub async fn get(&self, path: &str, accept: &str) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, accept).await
    }
}
