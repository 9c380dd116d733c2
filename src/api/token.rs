//! `GET /token` and `POST /token`: token mode's login, as ordinary documented
//! operations. The guard lets every request through to them; they check the
//! credentials themselves (`crate::auth::Auth::login`) and answer with the bodies
//! clients read: `{token, access_token, expires_in, issued_at}` for the Docker
//! token protocol, the OAuth2 password grant's `{access_token, token_type, …}` for
//! `POST`. Without a token issuer (access control off, Basic mode, an external
//! issuer) both answer 404.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::{ApiError, ErrorBody};
use super::security::Login;
use super::ApiTags;
use crate::auth::{Auth, Credentials, LoginRefused, Scope};
use crate::oci::ErrorCode;
use crate::timefmt::rfc3339_seconds;

/// The token endpoint's operations; `None` when this registry issues no tokens.
pub struct TokenApi(pub Option<Arc<Auth>>);

/// A token, in the two spellings clients read.
#[derive(Debug, Object)]
pub struct TokenBody {
    /// The token (an ES256 JWT), for `Authorization: Bearer …`.
    pub token: String,
    /// The same token, as OAuth2 clients read it.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// When it was issued (RFC 3339, UTC).
    pub issued_at: String,
}

/// A token, as the OAuth2 password grant answers it.
#[derive(Debug, Object)]
pub struct OAuthToken {
    /// The token (an ES256 JWT), for `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// When it was issued (RFC 3339, UTC).
    pub issued_at: String,
}

/// An OAuth2 error (RFC 6749, section 5.2).
#[derive(Debug, Object)]
pub struct OAuthError {
    /// `unsupported_grant_type` or `invalid_request`.
    pub error: String,
    /// What was wrong.
    pub error_description: String,
}

/// The OAuth2 password grant.
#[derive(Debug, Object, serde::Deserialize)]
pub struct PasswordGrant {
    /// Must be `password`.
    pub grant_type: Option<String>,
    /// User name (else the request's Basic credentials count).
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// The registry's service name (`service` of the challenge).
    pub service: Option<String>,
    /// Space-separated scopes, e.g. `repository:org/app:pull,push`.
    pub scope: Option<String>,
    /// Name of the client, for the log.
    pub client_id: Option<String>,
}

/// Answer of `GET /token`.
#[derive(ApiResponse)]
pub enum TokenResponse {
    /// A token granting the requested actions that the policy allows.
    #[oai(status = 200)]
    Ok(
        Json<TokenBody>,
        /// `no-store`: a token is a credential.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// Answer of `POST /token`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "invalid_grant_request")]
pub enum OAuthResponse {
    /// A token granting the requested actions that the policy allows.
    #[oai(status = 200)]
    Ok(
        Json<OAuthToken>,
        /// `no-store`: a token is a credential.
        #[oai(header = "Cache-Control")]
        String,
    ),
    /// Not a password grant, an unknown service, or an unreadable form.
    #[oai(status = 400)]
    Invalid(Json<OAuthError>),
    /// Wrong credentials, or none while anonymous callers may do nothing (`UNAUTHORIZED`).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorBody>,
        /// A Basic challenge.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// This registry issues no tokens (`UNSUPPORTED`).
    #[oai(status = 404)]
    NoIssuer(Json<ErrorBody>),
    /// Too many failed logins from this address (`TOOMANYREQUESTS`).
    #[oai(status = 429)]
    Throttled(
        Json<ErrorBody>,
        /// Seconds to wait.
        #[oai(header = "Retry-After")]
        String,
    ),
    /// The token could not be signed (`UNSUPPORTED`; see the server log).
    #[oai(status = 500)]
    Failed(Json<ErrorBody>),
}

fn invalid_grant_request(err: poem::Error) -> OAuthResponse {
    invalid(
        "invalid_request",
        format!("unreadable token request: {err}"),
    )
}

fn invalid(error: &str, description: String) -> OAuthResponse {
    OAuthResponse::Invalid(Json(OAuthError {
        error: error.into(),
        error_description: description,
    }))
}

/// The error for a refused login, in the spec's envelope.
fn refusal(auth: Option<&Auth>, r: LoginRefused) -> ApiError {
    let basic = |message: &str| {
        let service = auth.map_or("marina", Auth::service);
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
            .with_header("WWW-Authenticate", format!("Basic realm=\"{service}\""))
    };
    match r {
        LoginRefused::NoIssuer => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Unsupported,
            "this registry issues no tokens: access control is off, in Basic mode, or tokens come from an external issuer",
        ),
        LoginRefused::UnknownService { asked, ours } => ApiError::bad_request(
            ErrorCode::Unsupported,
            format!("unknown service {asked:?}; this registry is {ours:?}"),
        ),
        LoginRefused::BearerGiven => basic("the token endpoint takes Basic credentials"),
        LoginRefused::Credentials => basic("authentication required"),
        LoginRefused::Throttled(secs) => super::guard::throttled(secs),
        LoginRefused::Signing => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unsupported,
            "cannot issue a token; see the server log",
        ),
    }
}

fn header_credentials(req: &Request) -> Credentials {
    Credentials::parse(
        req.headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

const NO_STORE: &str = "no-store";

impl TokenApi {
    async fn login(
        &self,
        req: &Request,
        creds: &Credentials,
        service: Option<&str>,
        scopes: Vec<Scope>,
    ) -> Result<crate::auth::token::Issued, ApiError> {
        let Some(auth) = &self.0 else {
            return Err(refusal(None, LoginRefused::NoIssuer));
        };
        let ip = super::observe::client_ip(req);
        auth.login(creds, service, scopes, ip)
            .await
            .map_err(|r| refusal(Some(auth), r))
    }
}

#[OpenApi]
impl TokenApi {
    /// Get a token
    ///
    /// In token mode: Basic credentials (or none, when anonymous callers may do
    /// something) and the scopes of a `WWW-Authenticate: Bearer` challenge in; a
    /// short-lived token out. Wrong credentials get 401, too many failures 429.
    #[oai(
        path = "/token",
        method = "get",
        operation_id = "getToken",
        tag = "ApiTags::Token"
    )]
    async fn get(
        &self,
        req: &Request,
        _login: Login,
        /// The registry's service name (`service` of the challenge).
        service: Query<Option<String>>,
        /// A scope, e.g. `repository:org/app:pull,push` (repeatable; several may
        /// also be separated by spaces).
        #[oai(default)]
        scope: Query<Vec<String>>,
        /// The user the token is for (informational; the credentials decide).
        account: Query<Option<String>>,
    ) -> Result<TokenResponse, ApiError> {
        let _ = account;
        let scopes = Scope::parse_all(scope.iter().map(String::as_str));
        let creds = header_credentials(req);
        let issued = self.login(req, &creds, service.as_deref(), scopes).await?;
        Ok(TokenResponse::Ok(
            Json(TokenBody {
                token: issued.token.clone(),
                access_token: issued.token,
                expires_in: issued.expires_in,
                issued_at: rfc3339_seconds(issued.issued_at),
            }),
            NO_STORE.into(),
        ))
    }

    /// Get a token with the OAuth2 password grant
    ///
    /// The same token as `GET /token`, for clients that log in with a form
    /// (`grant_type=password`); the user may also come from Basic credentials.
    #[oai(
        path = "/token",
        method = "post",
        operation_id = "postToken",
        tag = "ApiTags::Token"
    )]
    async fn post(&self, req: &Request, grant: Form<PasswordGrant>) -> OAuthResponse {
        let grant = grant.0;
        if grant.grant_type.as_deref() != Some("password") {
            return invalid(
                "unsupported_grant_type",
                "only grant_type=password is supported".into(),
            );
        }
        let creds = match (grant.username, grant.password) {
            (Some(user), Some(password)) if !user.is_empty() => Credentials::Basic {
                user,
                password: crate::auth::credentials::Secret::new(password),
            },
            _ => header_credentials(req),
        };
        let scopes = Scope::parse_all(grant.scope.as_deref());
        match self
            .login(req, &creds, grant.service.as_deref(), scopes)
            .await
        {
            Ok(issued) => OAuthResponse::Ok(
                Json(OAuthToken {
                    access_token: issued.token,
                    token_type: "Bearer".into(),
                    expires_in: issued.expires_in,
                    issued_at: rfc3339_seconds(issued.issued_at),
                }),
                NO_STORE.into(),
            ),
            Err(e) => {
                let header = e
                    .headers
                    .first()
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                match e.status {
                    StatusCode::BAD_REQUEST => invalid("invalid_request", e.message),
                    StatusCode::UNAUTHORIZED => OAuthResponse::Unauthorized(Json(e.body()), header),
                    StatusCode::NOT_FOUND => OAuthResponse::NoIssuer(Json(e.body())),
                    StatusCode::TOO_MANY_REQUESTS => {
                        OAuthResponse::Throttled(Json(e.body()), header)
                    }
                    _ => OAuthResponse::Failed(Json(e.body())),
                }
            }
        }
    }
}
