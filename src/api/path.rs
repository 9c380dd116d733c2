//! Repository names contain `/`, but a path parameter matches one segment. Before
//! routing, the name part of a `/v2/<name>/<endpoint>` path is percent-encoded
//! (`a/b` → `a%2Fb`) so that one OpenAPI path per endpoint serves names of any
//! depth. The split is at the *last* endpoint marker, since a repository may itself
//! contain a component called `manifests` or `blobs`.

/// A request path after rewriting, with the repository name it addresses (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The path to route on.
    pub path: String,
    /// The repository name as the client wrote it (raw, before validation).
    pub repo: Option<String>,
}

const MARKERS: [&str; 4] = ["/manifests/", "/blobs/", "/referrers/", "/_oci/"];

/// Rewrites one request path (without query). Pure, so it is tested from a table.
pub fn rewrite(path: &str) -> Rewritten {
    let unchanged = |p: &str| Rewritten {
        path: p.to_string(),
        repo: None,
    };
    // poem-openapi registers paths without a trailing slash; the spec writes
    // `/v2/` and `/blobs/uploads/`, so both spellings route to the same operation.
    if path == "/v2/" {
        return unchanged("/v2");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return unchanged(path);
    };
    // `tags/list` ends the path; the other markers are followed by more segments.
    let (name, tail) = if let Some(name) = rest.strip_suffix("/tags/list") {
        (name, "/tags/list".to_string())
    } else {
        let cut = MARKERS.iter().filter_map(|m| rest.rfind(m)).max();
        match cut {
            Some(i) if i > 0 => {
                let mut tail = rest[i..].to_string();
                if tail == "/blobs/uploads/" {
                    tail.pop();
                }
                (&rest[..i], tail)
            }
            _ => {
                // `/v2/<name>/blobs/uploads` without the trailing slash.
                match rest.strip_suffix("/blobs/uploads") {
                    Some(name) if !name.is_empty() => (name, "/blobs/uploads".to_string()),
                    _ => return unchanged(path),
                }
            }
        }
    };
    if name.is_empty() {
        return unchanged(path);
    }
    Rewritten {
        path: format!("/v2/{}{}", name.replace('/', "%2F"), tail),
        repo: Some(
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned(),
        ),
    }
}

/// The methods an endpoint answers, for the `Allow` header of a 405 (RFC 9110).
/// Takes a rewritten path (names already encoded).
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/v2")?;
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] | ["_catalog"] => Some("GET"),
        [_, "tags", "list"] | [_, "referrers", _] => Some("GET"),
        [_, "blobs", "uploads"] => Some("POST"),
        [_, "blobs", "uploads", _] => Some("GET, PATCH, PUT, DELETE"),
        [_, "blobs", _] => Some("GET, HEAD, DELETE"),
        [_, "manifests", _] => Some("GET, HEAD, PUT, DELETE"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_methods_table() {
        let table = [
            ("/v2", Some("GET")),
            ("/v2/_catalog", Some("GET")),
            ("/v2/a%2Fb/tags/list", Some("GET")),
            ("/v2/a/referrers/sha256:x", Some("GET")),
            ("/v2/a/blobs/uploads", Some("POST")),
            ("/v2/a/blobs/uploads/id", Some("GET, PATCH, PUT, DELETE")),
            ("/v2/a/blobs/sha256:x", Some("GET, HEAD, DELETE")),
            ("/v2/a/manifests/v1", Some("GET, HEAD, PUT, DELETE")),
            ("/docs", None),
            ("/v2/a/other", None),
        ];
        for (p, want) in table {
            assert_eq!(allowed_methods(p), want, "{p}");
        }
    }

    #[test]
    fn routing_table() {
        let table: &[(&str, &str, Option<&str>)] = &[
            ("/v2", "/v2", None),
            ("/v2/", "/v2", None),
            ("/v2/_catalog", "/v2/_catalog", None),
            (
                "/v2/a/manifests/latest",
                "/v2/a/manifests/latest",
                Some("a"),
            ),
            (
                "/v2/a/b/c/manifests/v1",
                "/v2/a%2Fb%2Fc/manifests/v1",
                Some("a/b/c"),
            ),
            (
                "/v2/a/manifests/b/manifests/v1",
                "/v2/a%2Fmanifests%2Fb/manifests/v1",
                Some("a/manifests/b"),
            ),
            (
                "/v2/org/app/blobs/sha256:abc",
                "/v2/org%2Fapp/blobs/sha256:abc",
                Some("org/app"),
            ),
            (
                "/v2/org/app/blobs/uploads/",
                "/v2/org%2Fapp/blobs/uploads",
                Some("org/app"),
            ),
            (
                "/v2/org/app/blobs/uploads",
                "/v2/org%2Fapp/blobs/uploads",
                Some("org/app"),
            ),
            (
                "/v2/org/app/blobs/uploads/0123",
                "/v2/org%2Fapp/blobs/uploads/0123",
                Some("org/app"),
            ),
            (
                "/v2/x/blobs/uploads/blobs/uploads/",
                "/v2/x%2Fblobs%2Fuploads/blobs/uploads",
                Some("x/blobs/uploads"),
            ),
            (
                "/v2/org/app/tags/list",
                "/v2/org%2Fapp/tags/list",
                Some("org/app"),
            ),
            (
                "/v2/org/app/referrers/sha256:abc",
                "/v2/org%2Fapp/referrers/sha256:abc",
                Some("org/app"),
            ),
            (
                "/v2/org%2Fapp/manifests/v1",
                "/v2/org%2Fapp/manifests/v1",
                Some("org/app"),
            ),
            ("/v2/manifests/v1", "/v2/manifests/v1", None),
            ("/docs", "/docs", None),
            ("/v2/a/unknown", "/v2/a/unknown", None),
        ];
        for (input, path, repo) in table {
            let r = rewrite(input);
            assert_eq!(r.path, *path, "path for {input}");
            assert_eq!(r.repo.as_deref(), *repo, "repo for {input}");
        }
    }
}
