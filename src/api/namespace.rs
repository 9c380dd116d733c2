//! `?ns=` (the spec's "Registry Proxying"): a request for `<name>` scoped to
//! an upstream host is served from that upstream's local prefix,
//! `<prefix><name>`, before access control and routing see it, and its answer
//! carries `OCI-Namespace`. An `ns` that names no upstream is refused with 404
//! (or ignored, as the operator chose); a registry without upstreams ignores it.

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};

use super::error::{framework_error, ApiError};
use super::route;
use crate::oci::RepoName;
use crate::registry::{Namespace, Registry};

/// The repository an `ns` request was served from, for the access log (which
/// saw the name before rescoping).
#[derive(Debug, Clone)]
pub(crate) struct Rescoped(pub RepoName);

/// The value of the first `ns` parameter of a query.
fn ns_of(query: Option<&str>) -> Option<String> {
    let query = query.filter(|q| q.contains("ns="))?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "ns")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Calls `ep` with the request rescoped to the upstream its `ns` names.
pub(crate) async fn scope<E: Endpoint>(ep: &E, mut req: Request, registry: &Registry) -> Response {
    // Most requests carry no ns: they pass without a second look.
    let Some(ns) = ns_of(req.uri().query()) else {
        return call(ep, req).await;
    };
    let endpoint = match req.extensions().get::<route::Routed>() {
        Some(r) => r.endpoint.clone(),
        None => route::parse(req.method().as_str(), req.uri().path(), req.uri().query()),
    };
    let Some(name) = endpoint.repository() else {
        return call(ep, req).await;
    };
    let prefix = match registry.namespace(&ns) {
        Ok(Namespace::Ignored) => return call(ep, req).await,
        Ok(Namespace::Prefix(p)) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let path = req.uri().path();
    // `/v2/<name><tail>`: the name starts right after `/v2/`.
    let rescoped = path
        .strip_prefix("/v2/")
        .filter(|rest| rest.starts_with(name))
        .map(|rest| format!("/v2/{prefix}{rest}"));
    if let Some(path) = rescoped {
        if super::replace_path(&mut req, path) {
            // What the outer layers routed was the name before rescoping.
            let routed = route::route(req.method().as_str(), req.uri().path(), req.uri().query());
            req.extensions_mut().insert(routed);
        }
    }
    let local = format!("{prefix}{name}").parse::<RepoName>().ok();
    let mut resp = call(ep, req).await;
    if let Some(local) = local {
        resp.extensions_mut().insert(Rescoped(local));
    }
    if let Ok(v) = HeaderValue::from_str(&ns) {
        resp.headers_mut().insert("OCI-Namespace", v);
    }
    resp
}

async fn call<E: Endpoint>(ep: &E, req: Request) -> Response {
    match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => framework_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::ns_of;

    #[test]
    fn the_first_non_empty_ns_is_the_namespace() {
        assert_eq!(ns_of(Some("ns=docker.io")).as_deref(), Some("docker.io"));
        assert_eq!(
            ns_of(Some("n=1&ns=a.org&ns=b.org")).as_deref(),
            Some("a.org")
        );
        assert_eq!(ns_of(Some("ns=")), None);
        assert_eq!(ns_of(Some("last=x")), None);
        assert_eq!(ns_of(None), None);
    }
}
