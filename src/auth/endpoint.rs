//! Marina's token endpoint (`GET /token`, and the OAuth2 password grant on `POST
//! /token`): Basic credentials (or none, when the policy grants anonymous callers
//! something), a `service` and `scope`s in; a short-lived signed token granting the
//! requested actions that the policy allows out, as
//! `{token, access_token, expires_in, issued_at}`.

use poem::http::{header, Method, StatusCode};
use poem::{IntoResponse, Request, Response};

use super::credentials::{Credentials, Secret};
use super::guard::rejected;
use super::scope::Scope;
use super::token::{now, Access};
use super::{Auth, Caller, Rejected, Subject};
use crate::api::error::ApiError;
use crate::oci::{ErrorCode, RepoName};
use crate::timefmt::rfc3339_seconds;

const MAX_FORM_BYTES: usize = 64 * 1024;

fn basic_challenge(auth: &Auth, message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
        .with_header(
            "WWW-Authenticate",
            format!("Basic realm=\"{}\"", auth.config.token.service),
        )
        .into_response()
}

/// What the token request asked for, from the query (GET) or the form (POST).
struct TokenRequest {
    creds: Credentials,
    service: Option<String>,
    scopes: Vec<Scope>,
    oauth: bool,
}

async fn read_request(req: &mut Request) -> Result<TokenRequest, Response> {
    let header_creds = Credentials::parse(
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    if req.method() == Method::GET {
        let pairs = super::need::query_pairs(req.uri().query());
        return Ok(TokenRequest {
            creds: header_creds,
            service: pairs
                .iter()
                .find(|(k, _)| k == "service")
                .map(|(_, v)| v.clone()),
            scopes: Scope::parse_all(
                pairs
                    .iter()
                    .filter(|(k, _)| k == "scope")
                    .map(|(_, v)| v.as_str()),
            ),
            oauth: false,
        });
    }
    if req.method() != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            "use GET or POST",
        )
        .into_response());
    }
    let body = req
        .take_body()
        .into_bytes_limit(MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            ApiError::bad_request(ErrorCode::Unsupported, "form too large or unreadable")
                .into_response()
        })?;
    let pairs = super::need::query_pairs(Some(&String::from_utf8_lossy(&body)));
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if get("grant_type").as_deref() != Some("password") {
        let body = serde_json::json!({"error": "unsupported_grant_type", "error_description": "only grant_type=password is supported"});
        return Err(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .content_type("application/json")
            .body(body.to_string()));
    }
    let creds = match (get("username"), get("password")) {
        (Some(user), Some(pw)) if !user.is_empty() => Credentials::Basic {
            user,
            password: Secret::new(pw),
        },
        _ => header_creds,
    };
    Ok(TokenRequest {
        creds,
        service: get("service"),
        scopes: Scope::parse_all(get("scope").as_deref()),
        oauth: true,
    })
}

/// Answers a token request.
pub(super) async fn token(auth: &Auth, req: &mut Request) -> Response {
    let Some(issuer) = &auth.issuer else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Unsupported,
            "this registry does not issue tokens",
        )
        .into_response();
    };
    let tr = match read_request(req).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    if let Some(s) = &tr.service {
        if *s != auth.config.token.service {
            return ApiError::bad_request(
                ErrorCode::Unsupported,
                format!(
                    "unknown service {s:?}; this registry is {:?}",
                    auth.config.token.service
                ),
            )
            .into_response();
        }
    }
    if matches!(tr.creds, Credentials::Bearer(_)) {
        return basic_challenge(auth, "the token endpoint takes Basic credentials");
    }
    let ip = req.remote_addr().as_socket_addr().map(|a| a.ip());
    let subject = match auth.identify(&tr.creds, ip).await {
        Ok(Caller::User(u)) => Some(u),
        Ok(_) => None,
        Err(Rejected::Credentials) => return basic_challenge(auth, "authentication required"),
        Err(r) => return rejected(auth, req, r),
    };
    let who = subject.as_deref().map_or(Subject::Anonymous, Subject::User);
    if subject.is_none() && !auth.policy.grants_anything(Subject::Anonymous) {
        return basic_challenge(auth, "authentication required");
    }
    let mut access: Vec<Access> = Vec::new();
    for scope in tr.scopes {
        match scope {
            Scope::Repository { name, actions } => {
                if name.parse::<RepoName>().is_err() {
                    continue;
                }
                let granted = actions.intersect(auth.policy.grants(who, &name));
                if !granted.is_empty()
                    && !access
                        .iter()
                        .any(|a| a.kind == "repository" && a.name == name)
                {
                    access.push(Access {
                        kind: "repository".into(),
                        name,
                        actions: granted.iter().map(|a| a.as_str().to_string()).collect(),
                    });
                } else if let Some(a) = access
                    .iter_mut()
                    .find(|a| a.kind == "repository" && a.name == name)
                {
                    let merged = granted.union(super::Actions::parse_list(&a.actions.join(",")));
                    a.actions = merged.iter().map(|a| a.as_str().to_string()).collect();
                }
            }
            Scope::Catalog => {
                if !access.iter().any(|a| a.kind == "registry") {
                    access.push(Access {
                        kind: "registry".into(),
                        name: "catalog".into(),
                        actions: vec!["*".into()],
                    });
                }
            }
        }
    }
    let issued = match issuer.issue(subject.as_deref(), access, now()) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a token");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Unsupported,
                "cannot issue a token",
            )
            .into_response();
        }
    };
    let body = if tr.oauth {
        serde_json::json!({
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": rfc3339_seconds(issued.issued_at),
            "token_type": "Bearer",
        })
    } else {
        serde_json::json!({
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": rfc3339_seconds(issued.issued_at),
        })
    };
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}
