//! What a request needs to be allowed, derived from its method, path and query
//! alone (a pure function, tested from a table). The repository name is found the
//! way routing finds it, through [`crate::api::path::rewrite`].

use super::actions::Action;

/// The source of a cross-repository mount (`POST …/blobs/uploads/?mount=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountFrom {
    /// `from=<repository>`.
    Repository(String),
    /// No `from`: the registry may look in any repository.
    Anywhere,
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Outside the registry API (`/docs`, `/openapi.json`, `/healthz`, …): open to all.
    Open,
    /// Marina's token endpoint.
    Token,
    /// `GET /v2/` (and unknown `/v2/…` paths): any authenticated caller.
    Base,
    /// `GET /v2/_catalog`: answered with the repositories the caller may pull.
    Catalog,
    /// A registry-level extension endpoint (`_oci/ext/discover`, `_marina/…`): open
    /// to every caller that may pull something; listings show only the
    /// repositories the caller may pull.
    Extension,
    /// An action on a repository.
    Repository {
        /// The repository, as written in the path.
        name: String,
        /// The action.
        action: Action,
        /// For a mount: where the blob comes from (which needs `pull` there too).
        mount: Option<MountFrom>,
    },
}

/// Where registry-level extension endpoints live.
const EXTENSION_PREFIXES: [&str; 2] = ["/v2/_oci/", "/v2/_marina/"];

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/token";

/// Decoded `key=value` pairs of a query string.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Derives what `method path?query` needs.
pub fn need(method: &str, path: &str, query: Option<&str>) -> Need {
    if path == TOKEN_PATH {
        return Need::Token;
    }
    // Metrics tell how busy the registry is: signed-in callers only (or open on
    // the separate `metrics_listen` address, which has no access control).
    if path == "/metrics" {
        return Need::Base;
    }
    if path != "/v2" && !path.starts_with("/v2/") {
        return Need::Open;
    }
    let rewritten = crate::api::path::rewrite(path);
    let Some(name) = rewritten.repo else {
        return match rewritten.path.as_str() {
            "/v2/_catalog" => Need::Catalog,
            p if EXTENSION_PREFIXES.iter().any(|x| p.starts_with(x)) => Need::Extension,
            _ => Need::Base,
        };
    };
    // The rewritten path is `/v2/<name with %2F>/<tail>`.
    let after = &rewritten.path["/v2/".len()..];
    let tail = after.find('/').map_or("", |i| &after[i..]);
    let upload = tail == "/blobs/uploads" || tail.starts_with("/blobs/uploads/");
    let action = match (method, tail) {
        ("PUT", t) if t.starts_with("/manifests/") => Action::Push,
        ("DELETE", t) if t.starts_with("/manifests/") => Action::Delete,
        (_, _) if upload => Action::Push,
        ("DELETE", t) if t.starts_with("/blobs/") => Action::Delete,
        _ => Action::Pull,
    };
    let mount = if method == "POST" && tail == "/blobs/uploads" {
        let pairs = query_pairs(query);
        let has = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match (has("mount"), has("from")) {
            (Some(_), Some(from)) if !from.is_empty() => Some(MountFrom::Repository(from)),
            (Some(_), _) => Some(MountFrom::Anywhere),
            _ => None,
        }
    } else {
        None
    };
    Need::Repository {
        name,
        action,
        mount,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn repo(name: &str, action: Action) -> Need {
        Need::Repository {
            name: name.into(),
            action,
            mount: None,
        }
    }

    #[test]
    fn action_table() {
        let mount = |name: &str, from: MountFrom| Need::Repository {
            name: name.into(),
            action: Push,
            mount: Some(from),
        };
        let table: Vec<(&str, &str, Option<&str>, Need)> = vec![
            ("GET", "/healthz", None, Need::Open),
            ("GET", "/docs/", None, Need::Open),
            ("GET", "/openapi.json", None, Need::Open),
            ("GET", "/v2x/a/manifests/1", None, Need::Open),
            ("GET", "/token", Some("service=marina"), Need::Token),
            ("GET", "/v2", None, Need::Base),
            ("GET", "/v2/", None, Need::Base),
            ("GET", "/v2/nothing-here", None, Need::Base),
            ("GET", "/metrics", None, Need::Base),
            ("GET", "/healthz", None, Need::Open),
            ("GET", "/readyz", None, Need::Open),
            ("GET", "/v2/_catalog", Some("n=1"), Need::Catalog),
            (
                "GET",
                "/v2/_marina/list/repositories",
                Some("namespace=org"),
                Need::Extension,
            ),
            ("GET", "/v2/_oci/ext/discover", None, Need::Extension),
            (
                "GET",
                "/v2/org/app/_marina/list/tags",
                None,
                repo("org/app", Pull),
            ),
            ("GET", "/v2/a/manifests/v1", None, repo("a", Pull)),
            (
                "HEAD",
                "/v2/org/app/manifests/sha256:ab",
                None,
                repo("org/app", Pull),
            ),
            (
                "PUT",
                "/v2/org/app/manifests/v1",
                None,
                repo("org/app", Push),
            ),
            (
                "DELETE",
                "/v2/org/app/manifests/v1",
                None,
                repo("org/app", Delete),
            ),
            (
                "GET",
                "/v2/org/app/blobs/sha256:ab",
                None,
                repo("org/app", Pull),
            ),
            (
                "HEAD",
                "/v2/org/app/blobs/sha256:ab",
                None,
                repo("org/app", Pull),
            ),
            (
                "DELETE",
                "/v2/org/app/blobs/sha256:ab",
                None,
                repo("org/app", Delete),
            ),
            (
                "POST",
                "/v2/org/app/blobs/uploads/",
                None,
                repo("org/app", Push),
            ),
            (
                "POST",
                "/v2/org/app/blobs/uploads",
                Some("digest=sha256:ab"),
                repo("org/app", Push),
            ),
            (
                "GET",
                "/v2/org/app/blobs/uploads/abc",
                None,
                repo("org/app", Push),
            ),
            (
                "PATCH",
                "/v2/org/app/blobs/uploads/abc",
                None,
                repo("org/app", Push),
            ),
            (
                "PUT",
                "/v2/org/app/blobs/uploads/abc",
                Some("digest=x"),
                repo("org/app", Push),
            ),
            (
                "DELETE",
                "/v2/org/app/blobs/uploads/abc",
                None,
                repo("org/app", Push),
            ),
            (
                "GET",
                "/v2/org/app/tags/list",
                Some("n=2"),
                repo("org/app", Pull),
            ),
            (
                "GET",
                "/v2/org/app/referrers/sha256:ab",
                None,
                repo("org/app", Pull),
            ),
            (
                "GET",
                "/v2/org/app/_oci/ext/list",
                None,
                repo("org/app", Pull),
            ),
            (
                "PUT",
                "/v2/org/manifests/app/manifests/v1",
                None,
                repo("org/manifests/app", Push),
            ),
            (
                "DELETE",
                "/v2/x/blobs/uploads/blobs/uploads/id",
                None,
                repo("x/blobs/uploads", Push),
            ),
            ("OPTIONS", "/v2/a/manifests/v1", None, repo("a", Pull)),
            (
                "POST",
                "/v2/b/blobs/uploads/",
                Some("mount=sha256:ab&from=org%2Fa"),
                mount("b", MountFrom::Repository("org/a".into())),
            ),
            (
                "POST",
                "/v2/b/blobs/uploads/",
                Some("mount=sha256:ab"),
                mount("b", MountFrom::Anywhere),
            ),
            (
                "POST",
                "/v2/b/blobs/uploads/",
                Some("mount=sha256:ab&from="),
                mount("b", MountFrom::Anywhere),
            ),
        ];
        for (method, path, query, want) in table {
            assert_eq!(need(method, path, query), want, "{method} {path}?{query:?}");
        }
    }

    #[test]
    fn query_pairs_decode() {
        assert_eq!(
            query_pairs(Some("scope=repository%3Aa%3Apull&scope=x+y&flag")),
            vec![
                ("scope".to_string(), "repository:a:pull".to_string()),
                ("scope".to_string(), "x y".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
    }
}
