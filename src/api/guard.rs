//! The access guard: the poem middleware that identifies the caller, asks the
//! route table what the request needs and `crate::auth` whether the caller has it,
//! and answers 401 (with a challenge), 403 or 429 in the spec's error envelope
//! before routing. What it lets through carries an [`Access`] in its extensions.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use super::error::ApiError;
use super::route::{self, Routed};
use crate::auth::{
    Access, Action, Actions, Auth, AuthConfig, AuthScheme, Caller, Credentials, Need, Rejected,
    Scope, Verdict,
};
use crate::oci::ErrorCode;

/// The path of the token endpoint, named by challenges.
pub(crate) const TOKEN_PATH: &str = "/token";

/// Access control as loaded at start.
#[derive(Clone)]
pub(crate) enum AuthState {
    /// No `[auth]` section: open to all.
    Off,
    /// Loaded.
    On(Arc<Auth>),
    /// The section could not be loaded: every request fails with 503 rather than
    /// run open (`marina::server::start` checks it first and refuses to start).
    Broken,
}

impl AuthState {
    /// Loads an `[auth]` section (blocking: reads files).
    pub(crate) fn load(config: Option<&AuthConfig>) -> AuthState {
        match config {
            None => AuthState::Off,
            Some(c) => match Auth::load(c) {
                Ok(a) => AuthState::On(Arc::new(a)),
                Err(e) => {
                    tracing::error!(error = %e, "access control cannot be loaded; refusing every request");
                    AuthState::Broken
                }
            },
        }
    }

    /// The loaded access control, if it is on.
    pub(crate) fn auth(&self) -> Option<Arc<Auth>> {
        match self {
            AuthState::On(a) => Some(a.clone()),
            _ => None,
        }
    }
}

/// Access-control middleware; does nothing when access control is off.
#[derive(Clone)]
pub(crate) struct Guard {
    state: AuthState,
}

impl Guard {
    pub(crate) fn new(state: AuthState) -> Guard {
        Guard { state }
    }
}

impl<E: Endpoint> Middleware<E> for Guard {
    type Output = GuardEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        GuardEndpoint {
            inner: ep,
            state: self.state.clone(),
        }
    }
}

/// The guarded endpoint.
pub(crate) struct GuardEndpoint<E> {
    inner: E,
    state: AuthState,
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
    // Mounted under a prefix, the token endpoint is under it too.
    let prefix = super::mount_prefix(req.original_uri().path(), req.uri().path());
    format!("{}://{host}{prefix}{TOKEN_PATH}", req.scheme())
}

/// The actions a challenge asks for when `action` was refused.
fn scope_actions(action: Action) -> Actions {
    match action {
        Action::Push => Actions::of(&[Action::Pull, Action::Push]),
        a => Actions::of(&[a]),
    }
}

fn unauthorized(auth: &Auth, req: &Request, scope: Option<Scope>, insufficient: bool) -> Response {
    let challenge = auth.challenge(&default_realm(req), scope, insufficient);
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "authentication required",
    )
    .with_header("WWW-Authenticate", challenge.to_string())
    .into_response()
}

/// The answer to credentials that were not accepted.
pub(crate) fn rejected(auth: &Auth, req: &Request, r: Rejected) -> Response {
    match r {
        Rejected::Credentials => unauthorized(auth, req, None, false),
        Rejected::Throttled(secs) => throttled(secs).into_response(),
    }
}

/// 429 for an address locked out after failed logins.
pub(crate) fn throttled(secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Toomanyrequests,
        "too many failed logins from this address; retry later",
    )
    .with_header("Retry-After", secs.to_string())
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
    resp.extensions_mut().insert(Verdict { user, refusal });
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
    async fn pass(
        &self,
        mut req: Request,
        auth: &Arc<Auth>,
        caller: Caller,
    ) -> poem::Result<Response> {
        req.extensions_mut()
            .insert(Access::new(auth.clone(), caller));
        self.call_inner(req).await
    }

    async fn call_inner(&self, req: Request) -> poem::Result<Response> {
        self.inner.call(req).await.map(IntoResponse::into_response)
    }

    async fn decide(&self, req: Request, seen: &mut Seen) -> poem::Result<Response> {
        let auth = match &self.state {
            AuthState::Off => return self.call_inner(req).await,
            AuthState::Broken => {
                return Ok(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unsupported,
                    "access control is misconfigured; see the server log",
                )
                .into_response())
            }
            AuthState::On(a) => a.clone(),
        };
        let need = match req.extensions().get::<Routed>() {
            Some(r) => r.endpoint.required_access(),
            None => route::parse(req.method().as_str(), req.uri().path(), req.uri().query())
                .required_access(),
        };
        // The token endpoint checks credentials itself (it is where they go).
        if matches!(need, Need::Open | Need::Token) {
            return self.call_inner(req).await;
        }
        let creds = Credentials::parse(
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        );
        let ip = super::observe::client_ip(&req);
        let caller = match auth.identify(&creds, ip).await {
            Ok(c) => c,
            Err(r) => {
                seen.rejected = Some(r);
                return Ok(rejected(&auth, &req, r));
            }
        };
        seen.user = caller.user().map(str::to_string);
        match need {
            Need::Open | Need::Token => unreachable!("passed above"),
            Need::Base => match caller {
                Caller::Anonymous => Ok(unauthorized(&auth, &req, None, false)),
                c => self.pass(req, &auth, c).await,
            },
            Need::Catalog | Need::Extension => {
                if caller == Caller::Anonymous && !auth.anonymous_may_act() {
                    return Ok(unauthorized(&auth, &req, Some(Scope::Catalog), false));
                }
                self.pass(req, &auth, caller).await
            }
            Need::Repository { name, action, .. } => {
                // A mount's source is filtered by the handler, through the Access
                // it finds on the request.
                if auth.grants(&caller, &name).contains(action) {
                    return self.pass(req, &auth, caller).await;
                }
                let scope = Some(Scope::Repository {
                    name: name.clone(),
                    actions: scope_actions(action),
                });
                Ok(match (&caller, auth.refusal_asks_for_token(&caller)) {
                    (Caller::Anonymous, _) => unauthorized(&auth, &req, scope, false),
                    // An anonymous token is sent to log in; an external issuer's
                    // token without the scope is asked to widen.
                    (_, Some(insufficient)) => unauthorized(&auth, &req, scope, insufficient),
                    // Right credentials, no grant: denied. In token mode the
                    // answer also names the scope in a challenge, so clients that
                    // fetch a new token on 403 (oras-py) do so once and then stop
                    // with the error, instead of retrying for minutes.
                    _ => {
                        let mut e = denied(&name, action);
                        if auth.config().scheme == AuthScheme::Token {
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
