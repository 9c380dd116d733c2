//! `GET /token` and `POST /token`: the token endpoint of token mode, in the OpenAPI
//! document. With access control on, `crate::auth` answers these requests before
//! routing (see `crate::auth::endpoint`); these operations answer only when access
//! control is off, with a 404 that says so.

use poem::http::StatusCode;
use poem_openapi::param::Query;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::ApiError;
use super::security::Login;
use super::ApiTags;
use crate::oci::ErrorCode;

/// The token endpoint's operations.
pub struct TokenApi;

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

/// The OAuth2 password grant.
#[derive(Debug, Object, serde::Deserialize)]
pub struct PasswordGrant {
    /// Must be `password`.
    pub grant_type: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// The registry's service name (`service` of the challenge).
    pub service: Option<String>,
    /// Space-separated scopes, e.g. `repository:org/app:pull,push`.
    pub scope: Option<String>,
    /// Name of the client, for the log.
    pub client_id: Option<String>,
}

/// Answer of a token request.
#[derive(ApiResponse)]
pub enum TokenResponse {
    /// A token granting the requested actions that the policy allows.
    #[oai(status = 200)]
    Ok(Json<TokenBody>),
}

fn no_token_service() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::Unsupported,
        "this registry issues no tokens: access control is off (or in Basic mode)",
    )
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
        _login: Login,
        /// The registry's service name (`service` of the challenge).
        service: Query<Option<String>>,
        /// A scope, e.g. `repository:org/app:pull,push` (repeatable).
        #[oai(default)]
        scope: Query<Vec<String>>,
        /// The user the token is for (informational; the credentials decide).
        account: Query<Option<String>>,
    ) -> Result<TokenResponse, ApiError> {
        let _ = (service, scope, account);
        Err(no_token_service())
    }

    /// Get a token with the OAuth2 password grant
    ///
    /// The same token as `GET /token`, for clients that log in with a form.
    #[oai(
        path = "/token",
        method = "post",
        operation_id = "postToken",
        tag = "ApiTags::Token"
    )]
    async fn post(&self, grant: Form<PasswordGrant>) -> Result<TokenResponse, ApiError> {
        let _ = grant;
        Err(no_token_service())
    }
}
