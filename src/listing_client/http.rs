//! A thin HTTP layer: GETs and HEADs relative to the registry's base URL, status
//! checks with the body kept for diagnosis, and `Link: <…>; rel="next"` following.

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};

use super::ClientError;

/// Every manifest media type the fallbacks ask for.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

pub(crate) struct Http {
    client: reqwest::Client,
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
        self.headers
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(next_target)
    }
}

/// Reads one `<url>; rel="next"` link value.
pub(crate) fn next_target(link: &str) -> Option<String> {
    let (url, params) = link.trim().split_once('>')?;
    let url = url.trim().strip_prefix('<')?;
    let is_next = params.split(';').any(|p| {
        let p = p.trim().replace(' ', "");
        p == "rel=\"next\"" || p == "rel=next"
    });
    is_next.then(|| url.to_string())
}

impl Http {
    pub fn new(base: &str, insecure: bool) -> Result<Http, ClientError> {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .user_agent(concat!("marina/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_string(),
                source: e,
            })?;
        Ok(Http {
            client,
            base: base.trim_end_matches('/').to_string(),
        })
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
        let url = self.url(path);
        let transport = |e| ClientError::Transport {
            url: url.clone(),
            source: e,
        };
        let resp: Response = self
            .client
            .request(method, &url)
            .header(ACCEPT, accept)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        Ok(Answer {
            status,
            headers,
            body,
            url,
        })
    }

    pub async fn get(&self, path: &str, accept: &str) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, accept).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_values() {
        assert_eq!(
            next_target("</v2/a/tags/list?n=2&last=b>; rel=\"next\""),
            Some("/v2/a/tags/list?n=2&last=b".into())
        );
        assert_eq!(
            next_target("<https://r/x>;rel=next"),
            Some("https://r/x".into())
        );
        assert_eq!(next_target("</x>; rel=\"prev\""), None);
        assert_eq!(next_target("garbage"), None);
    }
}
