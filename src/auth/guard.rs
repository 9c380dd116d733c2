//! The poem middleware: identifies the caller, decides with the policy, and answers
//! 401 (with a challenge), 403 or 429 in the spec's error envelope, before routing.

use std::sync::Arc;

use poem::http::{header, StatusCode, Uri};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use super::credentials::Credentials;
use super::need::{query_pairs, MountFrom, Need};
use super::scope::Scope;
use super::{Access, Action, Actions, Auth, Caller, Rejected};
use crate::api::error::ApiError;
use crate::api::route::{self, Routed};
use crate::oci::ErrorCode;
use crate::registry::Registry;

#[derive(Clone)]
enum State {
    Off,
    On(Arc<Auth>),
    Broken(String),
}

/// Access-control middleware; does nothing when the configuration has no `[auth]`.
#[derive(Clone)]
pub struct Guard {
    registry: Arc<Registry>,
    state: State,
}

impl Guard {
    /// Loads the registry configuration's `[auth]` section (blocking: reads files).
    /// A section that cannot be loaded makes every request fail with 503 rather
    /// than run open; `marina::server::start` checks it first and refuses to start.
    pub fn new(registry: Arc<Registry>) -> Guard {
        let state = match &registry.config().auth {
            None => State::Off,
            Some(c) => match Auth::load(c) {
                Ok(a) => State::On(Arc::new(a)),
                Err(e) => {
                    tracing::error!(error = %e, "access control cannot be loaded; refusing every request");
                    State::Broken(e)
                }
            },
        };
        Guard { registry, state }
    }

    /// Why access control could not be loaded, if it could not.
    pub fn error(&self) -> Option<&str> {
        match &self.state {
            State::Broken(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: Endpoint> Middleware<E> for Guard {
    type Output = GuardEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        GuardEndpoint {
            inner: ep,
            guard: self.clone(),
        }
    }
}

/// The guarded endpoint.
pub struct GuardEndpoint<E> {
    inner: E,
    guard: Guard,
}

/// `<scheme>://<host>/token` of the request, for challenges when no realm is set.
fn default_realm(req: &Request) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{}://{host}{}", req.scheme(), super::need::TOKEN_PATH)
}

/// The actions a challenge asks for when `action` was refused.
fn scope_actions(action: Action) -> Actions {
    match action {
        Action::Push => Actions::of(&[Action::Pull, Action::Push]),
        a => Actions::of(&[a]),
    }
}

pub(super) fn unauthorized(
    auth: &Auth,
    req: &Request,
    scope: Option<Scope>,
    insufficient: bool,
) -> Response {
    let challenge = auth.challenge(&default_realm(req), scope, insufficient);
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "authentication required",
    )
    .with_header("WWW-Authenticate", challenge.to_string())
    .into_response()
}

pub(super) fn rejected(auth: &Auth, req: &Request, r: Rejected) -> Response {
    match r {
        Rejected::Credentials => unauthorized(auth, req, None, false),
        Rejected::Throttled(secs) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Toomanyrequests,
            "too many failed logins from this address; retry later",
        )
        .with_header("Retry-After", secs.to_string())
        .into_response(),
    }
}

fn denied(repo: &str, action: Action) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Denied,
        format!(
            "requested access to the resource is denied: {} on repository {repo} is not granted",
            action.as_str()
        ),
    )
}

/// Replaces the query of `req` (keeping the path).
fn set_query(req: &mut Request, pairs: &[(String, String)]) {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let pq = if query.is_empty() {
        req.uri().path().to_string()
    } else {
        format!("{}?{}", req.uri().path(), query.join("&"))
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

impl<E: Endpoint> GuardEndpoint<E> {
    async fn pass(
        &self,
        mut req: Request,
        auth: &Arc<Auth>,
        caller: Caller,
    ) -> poem::Result<Response> {
        req.extensions_mut().insert(Access {
            auth: auth.clone(),
            caller,
        });
        self.inner.call(req).await.map(IntoResponse::into_response)
    }

    /// Makes a mount honest about the caller: the source must be readable by it.
    async fn adjust_mount(
        &self,
        req: &mut Request,
        auth: &Auth,
        caller: &Caller,
        from: &MountFrom,
    ) {
        let pairs = query_pairs(req.uri().query());
        let digest = pairs
            .iter()
            .find(|(k, _)| k == "mount")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let source = match from {
            MountFrom::Repository(src) if auth.visible(caller, src) => return,
            MountFrom::Repository(_) => None,
            MountFrom::Anywhere if super::catalog::reads_everything(auth, caller) => return,
            MountFrom::Anywhere => {
                super::catalog::readable_source(&self.guard.registry, auth, caller, &digest).await
            }
        };
        let mut kept: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(k, _)| k != "mount" && k != "from")
            .collect();
        if let Some(src) = source {
            kept.push(("mount".into(), digest));
            kept.push(("from".into(), src));
        }
        set_query(req, &kept);
    }
}

/// Leaves who called and why a refusal happened on the response.
fn with_verdict(mut resp: Response, user: Option<String>, rejected: Option<Rejected>) -> Response {
    let refusal = match (rejected, resp.status()) {
        (Some(Rejected::Credentials), _) => Some("credentials"),
        (Some(Rejected::Throttled(_)), _) | (None, StatusCode::TOO_MANY_REQUESTS) => {
            Some("throttled")
        }
        (None, StatusCode::UNAUTHORIZED) => Some("unauthenticated"),
        (None, StatusCode::FORBIDDEN) => Some("denied"),
        _ => None,
    };
    resp.extensions_mut()
        .insert(super::Verdict { user, refusal });
    resp
}

impl<E: Endpoint> Endpoint for GuardEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let mut seen = Seen::default();
        let resp = self.decide(req, &mut seen).await?;
        Ok(with_verdict(resp, seen.user, seen.rejected))
    }
}

/// What the guard learnt of the caller: its user name and why it was rejected.
#[derive(Default)]
struct Seen {
    user: Option<String>,
    rejected: Option<Rejected>,
}

impl<E: Endpoint> GuardEndpoint<E> {
    async fn decide(&self, mut req: Request, seen: &mut Seen) -> poem::Result<Response> {
        let auth = match &self.guard.state {
            State::Off => return self.inner.call(req).await.map(IntoResponse::into_response),
            State::Broken(_) => {
                return Ok(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unsupported,
                    "access control is misconfigured; see the server log",
                )
                .into_response())
            }
            State::On(a) => a.clone(),
        };
        let need = match req.extensions().get::<Routed>() {
            Some(r) => r.endpoint.required_access(),
            None => route::parse(req.method().as_str(), req.uri().path(), req.uri().query())
                .required_access(),
        };
        if need == Need::Open {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        if need == Need::Token {
            return Ok(super::endpoint::token(&auth, &mut req).await);
        }
        let creds = Credentials::parse(
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        );
        let ip = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let caller = match auth.identify(&creds, ip).await {
            Ok(c) => c,
            Err(r) => {
                seen.rejected = Some(r);
                return Ok(rejected(&auth, &req, r));
            }
        };
        seen.user = caller.user().map(str::to_string);
        match need {
            Need::Open | Need::Token => unreachable!("answered above"),
            Need::Base => match caller {
                Caller::Anonymous => Ok(unauthorized(&auth, &req, None, false)),
                c => self.pass(req, &auth, c).await,
            },
            Need::Catalog | Need::Extension => {
                if caller == Caller::Anonymous
                    && !auth.policy.grants_anything(super::Subject::Anonymous)
                {
                    return Ok(unauthorized(&auth, &req, Some(Scope::Catalog), false));
                }
                if need == Need::Extension {
                    return self.pass(req, &auth, caller).await;
                }
                Ok(super::catalog::serve(&self.guard.registry, &auth, &caller, &req).await)
            }
            Need::Repository {
                name,
                action,
                mount,
            } => {
                if auth.grants(&caller, &name).contains(action) {
                    if let Some(from) = &mount {
                        self.adjust_mount(&mut req, &auth, &caller, from).await;
                    }
                    return self.pass(req, &auth, caller).await;
                }
                let scope = Some(Scope::Repository {
                    name: name.clone(),
                    actions: scope_actions(action),
                });
                Ok(match &caller {
                    Caller::Anonymous => unauthorized(&auth, &req, scope, false),
                    // An anonymous token is sent to log in.
                    Caller::Token(c) if c.sub.is_empty() => unauthorized(&auth, &req, scope, false),
                    // An external issuer's token without the scope: ask for it.
                    Caller::Token(_) if auth.issuer.is_none() => {
                        unauthorized(&auth, &req, scope, true)
                    }
                    // Right credentials, no grant: denied. In token mode the
                    // answer also names the scope in a challenge, so clients that
                    // fetch a new token on 403 (oras-py) do so once and then stop
                    // with the error, instead of retrying for minutes.
                    _ => {
                        let mut e = denied(&name, action);
                        if auth.config.scheme == super::AuthScheme::Token {
                            let challenge = auth.challenge(&default_realm(&req), scope, true);
                            e = e.with_header("WWW-Authenticate", challenge.to_string());
                        }
                        e.into_response()
                    }
                })
            }
        }
    }
}
