//! HTTP: the OCI Distribution API on poem-openapi, its OpenAPI document, `/docs`.
//!
//! Handlers are thin: they parse path, query and headers into the `oci` newtypes,
//! call the [`crate::registry::Registry`], and turn its answer into a
//! response; every failure goes through `error` into the spec's JSON envelope. One
//! route table (`route`) names every request's endpoint before poem routes it.

pub(crate) mod body;
pub(crate) mod error;
pub(crate) mod extensions;
pub(crate) mod headers;

mod base;
mod blobs;
mod guard;
mod health;
mod links;
mod listing;
mod manifests;
mod namespace;
pub(crate) mod observe;
mod params;
mod referrers;
pub(crate) mod route;
mod security;
mod token;
mod uploads;

use std::sync::Arc;

use poem::http::{HeaderValue, Uri};
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::config::Config;
use crate::oci::{Digest, RepoName};
use crate::registry::Registry;
use error::ApiError;

/// Operation groups in the OpenAPI document and `/docs`.
#[derive(Tags)]
pub enum ApiTags {
    /// API version check.
    Base,
    /// Pulling, checking and deleting blobs.
    Blobs,
    /// Pushing blobs: sessions, chunks, single-request uploads and mounts.
    Uploads,
    /// Pushing, pulling and deleting manifests and tags.
    Manifests,
    /// Listing tags.
    Tags,
    /// Listing the manifests that refer to a subject.
    Referrers,
    /// Listing repositories (outside the spec; widely used).
    Catalog,
    /// Tokens for Bearer authentication (token mode).
    Token,
    /// Health, readiness and metrics, for orchestrators and monitoring.
    Operations,
}

pub(crate) fn parse_repo(name: &str) -> Result<RepoName, ApiError> {
    name.parse::<RepoName>().map_err(ApiError::from)
}

pub(crate) fn parse_digest(digest: &str) -> Result<Digest, ApiError> {
    digest.parse::<Digest>().map_err(ApiError::from)
}

/// The OpenAPI service with every operation of the registry.
#[allow(clippy::type_complexity)] // the tuple of API groups; one line per group
fn openapi_service(
    registry: Arc<Registry>,
    auth: Option<Arc<crate::auth::Auth>>,
) -> OpenApiService<
    (
        base::BaseApi,
        blobs::BlobsApi,
        uploads::UploadsApi,
        manifests::ManifestsApi,
        listing::ListingApi,
        referrers::ReferrersApi,
        extensions::ExtensionApis,
        token::TokenApi,
        health::HealthApi,
    ),
    (),
> {
    OpenApiService::new(
        (
            base::BaseApi,
            blobs::BlobsApi(registry.clone()),
            uploads::UploadsApi(registry.clone()),
            manifests::ManifestsApi(registry.clone()),
            listing::ListingApi(registry.clone()),
            referrers::ReferrersApi(registry.clone()),
            extensions::apis(registry.clone()),
            token::TokenApi(auth),
            health::HealthApi(registry),
        ),
        "Marina — OCI Distribution API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "The OCI Distribution Specification (v1.1 and the additions on its main branch), as served by \
         Marina's reference registry. Repository names may contain `/`: in the path they may be written \
         raw (`/v2/org/app/manifests/v1`) or percent-encoded (`org%2Fapp`), which is what this page sends.",
    )
}

/// The OpenAPI document as JSON (what `/openapi.json` serves), built from a
/// throwaway registry in a temporary directory since the document does not depend
/// on stored content.
pub fn openapi_document() -> Result<String, crate::registry::RegistryError> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::open(crate::config::Config::ephemeral(dir.path()).registry)?;
    Ok(links::with_links(
        &openapi_service(Arc::new(registry), None).spec(),
    ))
}

/// A small icon for browsers that open `/docs` (they all ask for one).
const FAVICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0b5394"/><path d="M3 11h10l-2 3H5z M7 3v7h1V3z M8 4l4 5H8z" fill="#fff"/></svg>"##;

/// Only `/healthz`, `/readyz` and `/metrics`, open to all and counted like every
/// request: what `metrics_listen` serves on its own address.
pub fn operations_app(registry: Arc<Registry>, server: &Config) -> impl Endpoint {
    let ops = OpenApiService::new(
        health::HealthApi(registry.clone()),
        "Marina operations",
        env!("CARGO_PKG_VERSION"),
    );
    Route::new()
        .nest("/", ops)
        // As on the main address (see `dispatch`): a HEAD is the GET without
        // its body, with its length.
        .around(|ep, mut req| async move {
            let head = req.method() == poem::http::Method::HEAD;
            if head {
                req.set_method(poem::http::Method::GET);
            }
            let resp = ep.call(req).await?;
            Ok(if head { head_of(resp).await } else { resp })
        })
        .with(observe::Observer::new(registry, server))
}

/// The complete HTTP application: API, `/openapi.json`, `/docs`, `/healthz`,
/// `/readyz`, `/metrics`.
pub fn app(registry: Arc<Registry>, server: &Config) -> impl Endpoint {
    // Access control (`crate::auth`): off without an `[auth]` section.
    let auth = guard::AuthState::load(server.auth.as_ref());
    let service = openapi_service(registry.clone(), auth.auth());
    // The document with its links, served as JSON and embedded in the docs page.
    let plain = service.spec();
    let linked = links::with_links(&plain);
    let docs_html = service.swagger_ui_html().replace(&plain, &linked);
    let route = Route::new()
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| {
                Response::builder()
                    .content_type("application/json; charset=utf-8")
                    .body(linked.clone())
            }),
        )
        .nest(
            "/docs",
            Route::new().at(
                "/",
                poem::endpoint::make_sync(move |_| poem::web::Html(docs_html.clone())),
            ),
        )
        .at(
            "/favicon.ico",
            poem::endpoint::make_sync(|_| {
                Response::builder()
                    .content_type("image/svg+xml")
                    .header(poem::http::header::CACHE_CONTROL, "public, max-age=86400")
                    .body(FAVICON)
            }),
        )
        .at(
            extensions::DEFINITION_PATH,
            poem::endpoint::make_sync(|_| {
                poem::Response::builder()
                    .content_type("text/markdown; charset=utf-8")
                    .body(extensions::DEFINITION)
            }),
        )
        .nest("/", service);
    let guard = guard::Guard::new(auth);
    let observer = observe::Observer::new(registry.clone(), server);
    let scoping = registry.clone();
    route
        .catch_all_error(|err: poem::Error| async move { error::framework_error(err) })
        .around(move |ep, req| {
            let registry = registry.clone();
            async move { Ok(dispatch(&ep, req, &registry).await) }
        })
        .with(guard)
        // Before access control: `?ns=` decides which repository is meant.
        .around(move |ep, req| {
            let registry = scoping.clone();
            async move { Ok(namespace::scope(&ep, req, &registry).await) }
        })
        .with(CatchPanic::new().with_handler(|_| {
            ApiError::new(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                crate::oci::ErrorCode::Unsupported,
                "internal error; see the server log",
            )
            .into_response()
        }))
        // Outermost: refusals and panics are logged and counted too.
        .with(observer)
}

/// The path prefix under which the application is mounted: what the original path
/// has before the path the routes see.
fn mount_prefix(original: &str, current: &str) -> String {
    match original.strip_suffix(current) {
        Some(prefix) if prefix.starts_with('/') => prefix.to_string(),
        _ => String::new(),
    }
}

/// The path prefix the application is mounted under (empty at the root), for
/// handlers that write URLs into bodies.
#[derive(Debug, Clone, Default)]
pub(crate) struct MountPrefix(pub String);

/// Gives the request the path `path`, keeping its query; false (and the request
/// unchanged) when the result is not a valid URI.
fn replace_path(req: &mut Request, path: String) -> bool {
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    let Ok(pq) = pq.parse() else {
        return false;
    };
    parts.path_and_query = Some(pq);
    match Uri::from_parts(parts) {
        Ok(uri) => {
            *req.uri_mut() = uri;
            true
        }
        Err(_) => false,
    }
}

/// The answer to an endpoint served straight from the route table, like Garage's
/// router: the manifest and blob reads, which are most of a registry's requests and
/// whose cost was mostly the generated routes' layers, and a small blob's push
/// (a plain `POST` of a session, a `PUT` closing it with a small body). Every other endpoint, and a request
/// whose values do not parse, gets `None` and goes through the generated routes,
/// which the OpenAPI document describes (the same handlers answer both ways).
async fn direct(
    endpoint: &route::Endpoint,
    req: &mut Request,
    registry: &Arc<Registry>,
) -> Option<Response> {
    use route::Endpoint as E;
    let headers = req.headers();
    match endpoint {
        E::GetManifest { name, reference } => {
            manifests::serve_direct(registry, name, reference, false).await
        }
        E::HeadManifest { name, reference } => {
            manifests::serve_direct(registry, name, reference, true).await
        }
        E::GetBlob { name, digest } => {
            blobs::serve_direct(registry, name, digest, headers, false).await
        }
        E::HeadBlob { name, digest } => {
            blobs::serve_direct(registry, name, digest, headers, true).await
        }
        E::StartUpload { name, mount: None } => {
            uploads::start_direct(registry, name, req.uri().query()).await
        }
        E::PutUpload { name, session } => {
            uploads::finish_direct(registry, name, session, req).await
        }
        _ => None,
    }
}

/// The methods of `allow` (comma-separated) other than `method`.
fn allow_without(allow: &str, method: &str) -> String {
    allow
        .split(", ")
        .filter(|m| *m != method)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The answer to a HEAD made from the GET's: the same head, no body, and a
/// `Content-Length` saying how long the GET's body is (RFC 9110 §9.3.2). The
/// GETs answered this way send small JSON documents (lists, errors); a
/// response with no body of its own kind (204, 304) gets no length.
async fn head_of(resp: Response) -> Response {
    use poem::http::{header::CONTENT_LENGTH, StatusCode};
    let (mut parts, body) = resp.into_parts();
    let no_body = matches!(
        parts.status,
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    );
    if !no_body && !parts.headers.contains_key(CONTENT_LENGTH) {
        if let Ok(bytes) = body.into_bytes().await {
            parts.headers.insert(CONTENT_LENGTH, bytes.len().into());
        }
    }
    Response::from_parts(parts, poem::Body::empty())
}

/// Answers [`direct`] endpoints itself, rewrites the path and calls the generated
/// routes for the others, and adds the operator's `Warning` headers to both.
async fn dispatch<E: Endpoint>(ep: &E, mut req: Request, registry: &Arc<Registry>) -> Response {
    // Mounted under a prefix (poem's `nest`), the URI we see lacks it; the
    // `Location` and `Link` headers we send must carry it.
    let prefix = mount_prefix(req.original_uri().path(), req.uri().path());
    // RFC 9112 §3.2: a request with more than one Host line is answered 400
    // (two servers could each take a different one for the target).
    if req
        .headers()
        .get_all(poem::http::header::HOST)
        .iter()
        .nth(1)
        .is_some()
    {
        return ApiError::bad_request(
            crate::oci::ErrorCode::Unsupported,
            "a request carries at most one Host header (RFC 9112 §3.2)",
        )
        .into_response();
    }
    if req.uri().path() == "/" {
        // People who open the registry's address in a browser get the API docs.
        return Response::builder()
            .status(poem::http::StatusCode::FOUND)
            .header(poem::http::header::LOCATION, format!("{prefix}/docs"))
            .finish();
    }
    let routed = match req.extensions_mut().remove::<route::Routed>() {
        Some(r) => r,
        None => route::route(req.method().as_str(), req.uri().path(), req.uri().query()),
    };
    let method = req.method().clone();
    // A HEAD the table has no handler of its own for is answered as the GET,
    // its body then dropped and its length kept (see `head_of`).
    let head = method == poem::http::Method::HEAD
        && !matches!(
            routed.endpoint,
            route::Endpoint::HeadManifest { .. } | route::Endpoint::HeadBlob { .. }
        );
    if head {
        req.set_method(poem::http::Method::GET);
    }
    let mut resp = match direct(&routed.endpoint, &mut req, registry).await {
        Some(resp) => resp,
        None => {
            if let Some(path) = routed.routing_path(req.uri().path()) {
                replace_path(&mut req, path);
            }
            req.extensions_mut().insert(MountPrefix(prefix.clone()));
            match ep.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => error::framework_error(e),
            }
        }
    };
    if head {
        resp = head_of(resp).await;
    }
    if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
        && !resp.headers().contains_key("allow")
    {
        if let Some(allow) = routed.endpoint.allow() {
            // The method refused is not one the resource allows, even where
            // the route has it (a deletion the operator turned off).
            let allow = allow_without(allow, method.as_str());
            if let Ok(v) = HeaderValue::from_str(&allow) {
                resp.headers_mut().insert("allow", v);
            }
        }
    }
    if !prefix.is_empty() {
        for name in [poem::http::header::LOCATION, poem::http::header::LINK] {
            let Some(v) = resp.headers().get(&name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let fixed = match v.strip_prefix('<') {
                Some(rest) if rest.starts_with('/') => format!("<{prefix}{rest}"),
                _ if v.starts_with('/') => format!("{prefix}{v}"),
                _ => continue,
            };
            if let Ok(v) = HeaderValue::from_str(&fixed) {
                resp.headers_mut().insert(name, v);
            }
        }
    }
    if let Some(repo) = routed.endpoint.repository() {
        for msg in registry.warnings_for(repo) {
            if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{msg}\"")) {
                resp.headers_mut().append("Warning", v);
            }
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: on the operations address (`metrics_listen`) a HEAD went
    /// through poem's GET-for-HEAD and lost the GET's `Content-Length`.
    #[tokio::test]
    async fn the_operations_address_answers_head_with_the_length_of_its_get() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::ephemeral(dir.path());
        let registry = Arc::new(Registry::open(config.registry.clone()).unwrap());
        let app = &operations_app(registry, &config);
        let ask = |method: poem::http::Method| async move {
            let req = Request::builder()
                .method(method)
                .uri(Uri::from_static("/healthz"))
                .finish();
            app.call(req).await.unwrap().into_response()
        };
        let get = ask(poem::http::Method::GET).await;
        assert_eq!(get.status(), poem::http::StatusCode::OK);
        let body = get.into_body().into_bytes().await.unwrap();
        assert!(!body.is_empty());
        let head = ask(poem::http::Method::HEAD).await;
        assert_eq!(head.status(), poem::http::StatusCode::OK);
        assert_eq!(
            head.headers()
                .get(poem::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()),
            Some(body.len().to_string().as_str())
        );
        assert!(head.into_body().into_bytes().await.unwrap().is_empty());
    }
}
