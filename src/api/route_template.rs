//! The route template of a request path, as metrics labels and access logs name
//! it: a fixed string per endpoint, never the repository, digest or session of
//! the request (they would make label values unbounded and leak names).

use super::path::rewrite;

/// What an unknown path is labelled.
pub const UNMATCHED: &str = "unmatched";

/// The template of `path` (without query). Pure, so it is tested from a table.
pub fn route_template(path: &str) -> &'static str {
    classify(path).0
}

/// The template of `path` and the repository name it addresses, as written (not
/// yet validated), from one pass over the path.
pub fn classify(path: &str) -> (&'static str, Option<String>) {
    let fixed = match path {
        "/v2" | "/v2/" => Some("/v2/"),
        "/v2/_catalog" => Some("/v2/_catalog"),
        "/v2/_oci/ext/discover" => Some("/v2/_oci/ext/discover"),
        "/token" => Some("/token"),
        "/metrics" => Some("/metrics"),
        "/healthz" => Some("/healthz"),
        "/readyz" => Some("/readyz"),
        "/" => Some("/"),
        "/favicon.ico" => Some("/favicon.ico"),
        "/openapi.json" => Some("/openapi.json"),
        p if p == super::extensions::DEFINITION_PATH => Some("/extensions/_marina.md"),
        p if p == "/docs" || p.starts_with("/docs/") => Some("/docs"),
        p if p.starts_with("/v2/_marina/") => Some("/v2/_marina/*"),
        p if !p.starts_with("/v2/") => Some(UNMATCHED),
        _ => None,
    };
    if let Some(t) = fixed {
        return (t, None);
    }
    let rewritten = rewrite(path);
    let Some(repo) = rewritten.repo else {
        return (UNMATCHED, None);
    };
    // The rewritten path is `/v2/<name with %2F>/<tail>`.
    let after = &rewritten.path["/v2/".len()..];
    let tail = after.find('/').map_or("", |i| &after[i..]);
    let one_more = |prefix: &str| {
        tail.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    let template = if tail == "/tags/list" {
        "/v2/{name}/tags/list"
    } else if tail == "/blobs/uploads" {
        "/v2/{name}/blobs/uploads/"
    } else if one_more("/blobs/uploads/") {
        "/v2/{name}/blobs/uploads/{session}"
    } else if one_more("/blobs/") {
        "/v2/{name}/blobs/{digest}"
    } else if one_more("/manifests/") {
        "/v2/{name}/manifests/{reference}"
    } else if one_more("/referrers/") {
        "/v2/{name}/referrers/{digest}"
    } else if tail == "/_oci/ext/discover" {
        "/v2/{name}/_oci/ext/discover"
    } else if tail.starts_with("/_marina/") {
        "/v2/{name}/_marina/*"
    } else {
        UNMATCHED
    };
    (template, Some(repo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_its_template_and_nothing_of_the_request_leaks() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let rows: Vec<(String, &str)> = vec![
            ("/v2/".into(), "/v2/"),
            ("/v2".into(), "/v2/"),
            ("/v2/_catalog".into(), "/v2/_catalog"),
            ("/token".into(), "/token"),
            ("/metrics".into(), "/metrics"),
            ("/healthz".into(), "/healthz"),
            ("/readyz".into(), "/readyz"),
            ("/docs/index.css".into(), "/docs"),
            (
                "/v2/a/b/c/manifests/v1".into(),
                "/v2/{name}/manifests/{reference}",
            ),
            (
                format!("/v2/app/manifests/{d}"),
                "/v2/{name}/manifests/{reference}",
            ),
            (format!("/v2/app/blobs/{d}"), "/v2/{name}/blobs/{digest}"),
            ("/v2/app/blobs/uploads/".into(), "/v2/{name}/blobs/uploads/"),
            ("/v2/app/blobs/uploads".into(), "/v2/{name}/blobs/uploads/"),
            (
                "/v2/app/blobs/uploads/abc123".into(),
                "/v2/{name}/blobs/uploads/{session}",
            ),
            ("/v2/org/app/tags/list".into(), "/v2/{name}/tags/list"),
            (
                format!("/v2/app/referrers/{d}"),
                "/v2/{name}/referrers/{digest}",
            ),
            (
                "/v2/app/_oci/ext/discover".into(),
                "/v2/{name}/_oci/ext/discover",
            ),
            ("/v2/_oci/ext/discover".into(), "/v2/_oci/ext/discover"),
            ("/v2/app/_marina/list/tags".into(), "/v2/{name}/_marina/*"),
            ("/v2/_marina/list/repositories".into(), "/v2/_marina/*"),
            // A repository called `manifests` is still a name.
            (
                "/v2/manifests/manifests/v1".into(),
                "/v2/{name}/manifests/{reference}",
            ),
            ("/v2/app/nothing".into(), UNMATCHED),
            ("/v2/app/blobs/a/b".into(), UNMATCHED),
            ("/etc/passwd".into(), UNMATCHED),
        ];
        for (path, want) in rows {
            assert_eq!(route_template(&path), want, "{path}");
        }
    }
}
