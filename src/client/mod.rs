//! The one HTTP client of Marina's tools (the harness, the listing client): one
//! reqwest client (rustls), Basic and Bearer-token authentication driven by
//! `WWW-Authenticate` with a token cache, 429 retries after `Retry-After`,
//! redirects followed by hand so that `Authorization` never crosses to another
//! host, `Location`/`Link` targets pinned to the registry's origin, and every
//! exchange recorded (redacted) for transcripts and run-wide observations. The
//! header grammars it reads (`Link`, challenges, ranges) are parsed once, in
//! `headers`.

pub(crate) mod address;
pub(crate) mod auth;
pub(crate) mod headers;
pub(crate) mod http;
pub mod transcript;
mod trust;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, LOCATION};
use reqwest::{Method, Url};

use auth::basic;
pub use auth::scope_for;
use headers as parse;
pub use http::{Request, Response, TransportError};
use http::{PACE, PACED_SLICE};
use transcript::{excerpt, redact_header, redact_url, Exchange};

/// Credentials for the registry (used for Basic auth and for the token endpoint).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How the client reaches a registry.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Basic credentials, if the registry needs them.
    pub credentials: Option<Credentials>,
    /// PEM file with extra root certificates.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Timeout of one HTTP request, in seconds.
    pub request_timeout_secs: u64,
    /// The `User-Agent` sent.
    pub user_agent: &'static str,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: None,
            ca_file: None,
            insecure: false,
            request_timeout_secs: 60,
            user_agent: concat!("marina/", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The key of the token map that records a Basic challenge (no scope looks like it).
const BASIC_MARKER: &str = "\0basic";
/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 10;
/// Exchanges kept for the current check's transcript.
const LOG_LIMIT: usize = 64;
/// Retries of a request answered 429.
pub const MAX_THROTTLE_RETRIES: usize = 3;
/// Longest wait before retrying a 429.
pub const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(10);
/// 4xx responses kept for the error-envelope check.
const SEEN_LIMIT: usize = 2000;

/// Observations gathered over the whole run, for the run-wide checks.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every 4xx exchange (bounded), with its raw body.
    pub client_errors: Vec<(Exchange, Bytes, Option<String>)>,
    /// `Warning` header values, with the exchange that carried them.
    pub warnings: Vec<(Vec<String>, Exchange)>,
    /// 429 answers.
    pub throttled: Vec<Exchange>,
    /// Redirects followed.
    pub redirects: usize,
}

/// The HTTP client of a run.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    credentials: Option<Credentials>,
    /// Bearer tokens by scope; [`BASIC_MARKER`] once Basic was asked for.
    tokens: Mutex<HashMap<String, String>>,
    /// The token service of the last Bearer challenge: `(realm URL, service)`.
    token_service: Mutex<Option<(Url, Option<String>)>>,
    log: Mutex<VecDeque<Exchange>>,
    seen: Mutex<Seen>,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry address is not `host[:port]` or `http(s)://host[:port]`.
    #[error("invalid registry address: {0}")]
    Url(String),
    /// The CA file cannot be read or parsed.
    #[error("cannot use CA file {0}: {1}")]
    Ca(String, String),
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

fn host_key(u: &Url) -> (String, Option<u16>) {
    (
        u.host_str().unwrap_or_default().to_string(),
        u.port_or_known_default(),
    )
}
impl Client {
    /// Builds the client for a registry URL.
    pub fn new(url: &str, options: &ClientOptions) -> Result<Client, ClientError> {
        let normal = address::base_url(url, false).map_err(ClientError::Url)?;
        let base = Url::parse(&format!("{normal}/"))
            .map_err(|e| ClientError::Url(format!("{url:?}: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(options.request_timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(options.user_agent)
            .use_rustls_tls();
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ClientError::Ca(ca.display().to_string(), e.to_string()))?;
            let bad = |e: String| ClientError::Ca(ca.display().to_string(), e);
            let certs = rustls_pemfile_certs(&pem).map_err(bad)?;
            if certs.is_empty() {
                return Err(bad("no certificate in file".into()));
            }
            if !options.insecure {
                builder = builder.use_preconfigured_tls(trust::client_config(certs).map_err(bad)?);
            }
        }
        if options.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Client {
            http,
            base,
            credentials: options.credentials.clone(),
            tokens: Mutex::new(HashMap::new()),
            token_service: Mutex::new(None),
            log: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Seen::default()),
        })
    }

    /// The registry's base URL (path `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Empties the current check's exchange log.
    pub fn clear_log(&self) {
        self.log.lock().expect("log lock").clear();
    }

    /// The current check's exchanges.
    pub fn log(&self) -> Vec<Exchange> {
        self.log.lock().expect("log lock").iter().cloned().collect()
    }

    /// Runs `f` on the run-wide observations.
    pub fn with_seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().expect("seen lock"))
    }

    fn record(&self, ex: Exchange, raw_body: Option<(&Bytes, &HeaderMap)>) {
        if let Some((body, headers)) = raw_body {
            let mut seen = self.seen.lock().expect("seen lock");
            if (400..500).contains(&ex.status) && seen.client_errors.len() < SEEN_LIMIT {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                seen.client_errors.push((ex.clone(), body.clone(), ct));
            }
            let warnings: Vec<String> = headers
                .get_all("warning")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            if !warnings.is_empty() && seen.warnings.len() < SEEN_LIMIT {
                seen.warnings.push((warnings, ex.clone()));
            }
            if ex.status == 429 && seen.throttled.len() < SEEN_LIMIT {
                seen.throttled.push(ex.clone());
            }
        }
        let mut log = self.log.lock().expect("log lock");
        if log.len() == LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(ex);
    }

    /// Resolves a request target against the registry URL.
    pub fn url(&self, target: &str) -> Result<Url, TransportError> {
        self.base
            .join(target)
            .map_err(|e| TransportError(format!("cannot resolve {target:?}: {e}")))
    }

    fn cached_auth(&self, url: &Url) -> Option<String> {
        let tokens = self.tokens.lock().expect("token lock");
        if let Some(t) = tokens.get(&scope_for(url)) {
            return Some(format!("Bearer {t}"));
        }
        if tokens.contains_key(BASIC_MARKER) {
            return self.basic();
        }
        None
    }

    fn basic(&self) -> Option<String> {
        self.credentials
            .as_ref()
            .map(|c| basic(&c.username, &c.password))
    }

    /// Sends a request, authenticating when challenged and following redirects.
    /// A 429 is retried up to [`MAX_THROTTLE_RETRIES`] times after its
    /// `Retry-After` (at most [`MAX_THROTTLE_WAIT`]; one second when absent).
    pub async fn send(&self, req: Request) -> Result<Response, TransportError> {
        let mut resp = self.send_authenticated(&req).await?;
        for _ in 0..MAX_THROTTLE_RETRIES {
            if resp.status != 429 {
                break;
            }
            let wait = resp
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_THROTTLE_WAIT);
            tokio::time::sleep(wait).await;
            resp = self.send_authenticated(&req).await?;
        }
        Ok(resp)
    }

    async fn send_authenticated(&self, req: &Request) -> Result<Response, TransportError> {
        let url = self.url(&req.target)?;
        let auth = match self.cached_auth(&url) {
            Some(a) => Some(a),
            None => self.token_up_front(&url).await?,
        };
        let resp = self.send_following(req, url.clone(), auth).await?;
        if resp.status != 401 {
            return Ok(resp);
        }
        let Some(auth) = self.answer_challenge(&resp, &url).await? else {
            return Ok(resp);
        };
        self.send_following(req, url, Some(auth)).await
    }

    /// With credentials, once a registry has named its token service, a request for
    /// a new scope gets its token first, as Docker clients do: a registry that also
    /// serves anonymous callers would otherwise answer with the anonymous view and
    /// never challenge.
    async fn token_up_front(&self, url: &Url) -> Result<Option<String>, TransportError> {
        if self.credentials.is_none() {
            return Ok(None);
        }
        let service = self.token_service.lock().expect("token lock").clone();
        let Some((realm, service)) = service else {
            return Ok(None);
        };
        let scope = scope_for(url);
        self.fetch_token(realm, service.as_deref(), &scope, url)
            .await
    }

    /// Asks the token service for `scope` (with the credentials, if any), caching
    /// the token for the scope of `url`.
    async fn fetch_token(
        &self,
        mut token_url: Url,
        service: Option<&str>,
        scope: &str,
        url: &Url,
    ) -> Result<Option<String>, TransportError> {
        {
            let mut q = token_url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let mut token_req = Request::get(token_url.to_string());
        if let Some(b) = self.basic() {
            token_req = token_req.header("Authorization", b);
        }
        let t = self.send_following(&token_req, token_url, None).await?;
        if t.status != 200 {
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_slice(&t.body).unwrap_or_default();
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string);
        let Some(token) = token else {
            return Ok(None);
        };
        self.tokens
            .lock()
            .expect("token lock")
            .insert(scope_for(url), token.clone());
        Ok(Some(format!("Bearer {token}")))
    }

    async fn answer_challenge(
        &self,
        resp: &Response,
        url: &Url,
    ) -> Result<Option<String>, TransportError> {
        let challenges: Vec<_> = resp
            .header_all("www-authenticate")
            .into_iter()
            .flat_map(parse::parse_www_authenticate)
            .collect();
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = c.param("realm") else {
                return Ok(None);
            };
            let scope = c
                .param("scope")
                .map(str::to_string)
                .unwrap_or_else(|| scope_for(url));
            let token_url = Url::parse(realm)
                .or_else(|_| url.join(realm))
                .map_err(|e| TransportError(format!("bad token realm {realm:?}: {e}")))?;
            let service = c.param("service").map(str::to_string);
            *self.token_service.lock().expect("token lock") =
                Some((token_url.clone(), service.clone()));
            return self
                .fetch_token(token_url, service.as_deref(), &scope, url)
                .await;
        }
        if challenges.iter().any(|c| c.scheme == "basic") && self.credentials.is_some() {
            self.tokens
                .lock()
                .expect("token lock")
                .insert(BASIC_MARKER.to_string(), String::new());
            return Ok(self.basic());
        }
        Ok(None)
    }

    async fn send_following(
        &self,
        req: &Request,
        mut url: Url,
        auth: Option<String>,
    ) -> Result<Response, TransportError> {
        let origin = host_key(&url);
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        for _ in 0..=MAX_REDIRECTS {
            // Authorization goes only to the host it was meant for (spec, "API").
            let auth_here = auth.as_ref().filter(|_| host_key(&url) == origin);
            let resp = self
                .send_once(
                    &method,
                    &url,
                    &req.headers,
                    body.clone(),
                    auth_here,
                    req.paced,
                )
                .await?;
            let redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
            let Some(next) = redirect
                .then(|| resp.header(LOCATION.as_str()).and_then(|l| resp.resolve(l)))
                .flatten()
            else {
                return Ok(resp);
            };
            self.seen.lock().expect("seen lock").redirects += 1;
            if resp.status == 303 || (matches!(resp.status, 301 | 302) && method == Method::POST) {
                method = Method::GET;
                body = None;
            }
            url = next;
        }
        Err(TransportError(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        headers: &[(String, String)],
        body: Option<Bytes>,
        auth: Option<&String>,
        paced: bool,
    ) -> Result<Response, TransportError> {
        let mut hm = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| TransportError(format!("bad header name {k:?}: {e}")))?;
            let value = HeaderValue::from_bytes(v.as_bytes())
                .map_err(|e| TransportError(format!("bad header value {v:?}: {e}")))?;
            hm.append(name, value);
        }
        if let Some(a) = auth {
            let v = HeaderValue::from_str(a).map_err(|e| TransportError(e.to_string()))?;
            hm.insert(AUTHORIZATION, v);
        }
        let mut rb = self
            .http
            .request(method.clone(), url.clone())
            .headers(hm.clone());
        let body_len = body.as_ref().map(|b| b.len());
        let request_body = body.as_deref().map(excerpt).unwrap_or_default();
        match body {
            Some(b) if paced => {
                let len = b.len();
                let slices: Vec<Bytes> = (0..len)
                    .step_by(PACED_SLICE)
                    .map(|i| b.slice(i..len.min(i + PACED_SLICE)))
                    .collect();
                let parts = futures_util::stream::iter(slices).then(|part| async move {
                    tokio::time::sleep(PACE).await;
                    Ok::<_, std::io::Error>(part)
                });
                rb = rb
                    .header("content-length", len.to_string())
                    .body(reqwest::Body::wrap_stream(parts));
            }
            Some(b) => rb = rb.body(b),
            None if matches!(*method, Method::PUT | Method::POST | Method::PATCH) => {
                rb = rb.header("content-length", "0");
            }
            None => {}
        }
        let mut request_headers: Vec<(String, String)> = hm
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    redact_header(k.as_str(), &String::from_utf8_lossy(v.as_bytes())),
                )
            })
            .collect();
        if let Some(n) = body_len {
            request_headers.push(("content-length".into(), n.to_string()));
        }
        let mut ex = Exchange {
            method: method.to_string(),
            url: redact_url(url.as_str()),
            request_headers,
            request_body,
            status: 0,
            response_headers: Vec::new(),
            response_body: String::new(),
        };
        let sent = rb.send().await;
        let result = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let final_url = r.url().clone();
                ex.status = status;
                ex.response_headers = headers
                    .iter()
                    .filter(|(k, _)| k.as_str() != "date")
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            redact_header(k.as_str(), &String::from_utf8_lossy(v.as_bytes())),
                        )
                    })
                    .collect();
                match r.bytes().await {
                    Ok(body) => Ok((status, headers, final_url, body)),
                    Err(e) => {
                        let msg = format!(
                            "status {status} received, then the body could not be read: {}",
                            describe(&e, method.as_str(), url)
                        );
                        ex.response_body = format!("({msg})");
                        self.record(ex, None);
                        return Err(TransportError(format!(
                            "{} {}: {msg}",
                            method,
                            redact_url(url.as_str())
                        )));
                    }
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((status, headers, final_url, body)) => {
                let is_token = url.path().contains("token") && status == 200;
                ex.response_body = if is_token {
                    "(token response redacted)".into()
                } else {
                    excerpt(&body)
                };
                self.record(ex, Some((&body, &headers)));
                Ok(Response {
                    status,
                    headers,
                    body,
                    url: final_url,
                })
            }
            Err(e) => {
                let msg = describe(&e, method.as_str(), url);
                ex.response_body = msg.clone();
                self.record(ex, None);
                Err(TransportError(msg))
            }
        }
    }
}

/// One line for a request that got no answer: what could not be done, with the
/// innermost cause, and the URL once.
fn describe(e: &reqwest::Error, method: &str, url: &Url) -> String {
    use std::error::Error as _;
    let mut chain = Vec::new();
    let mut src = e.source();
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let root = chain.last().cloned().unwrap_or_else(|| e.to_string());
    let all = chain.join(": ").to_ascii_lowercase();
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    );
    if all.contains("invalid http version") {
        format!("{host} did not answer in HTTP; if that port speaks HTTPS, use https://{host}")
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        format!("TLS with {host} failed: {root}")
    } else if e.is_connect() {
        format!("cannot connect to {host}: {root}")
    } else if e.is_timeout() {
        format!("{method} {}: no answer in time", redact_url(url.as_str()))
    } else {
        format!("{method} {}: {root}", redact_url(url.as_str()))
    }
}

/// The certificates of a PEM bundle, as DER.
fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, String> {
    use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e:?}"))
}
