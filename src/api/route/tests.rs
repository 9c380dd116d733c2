use super::*;
use Endpoint as E;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn s(v: &str) -> String {
    v.to_string()
}

/// `METHOD "uri" => Endpoint`, one row per kind of request.
#[test]
fn every_request_parses_to_its_endpoint() {
    let d = D;
    let table: Vec<(&str, String, Endpoint)> = vec![
        ("GET", s("/"), E::Root),
        ("GET", s("/docs/index.css"), E::Document("/docs")),
        ("GET", s("/openapi.json"), E::Document("/openapi.json")),
        ("GET", s("/healthz"), E::Healthz),
        ("GET", s("/readyz"), E::Readyz),
        ("GET", s("/metrics"), E::Metrics),
        ("GET", s("/token?service=marina"), E::Token),
        ("POST", s("/token"), E::Token),
        ("GET", s("/v2"), E::Base),
        ("GET", s("/v2/"), E::Base),
        ("HEAD", s("/v2/"), E::Base),
        ("GET", s("/v2/_catalog?n=1"), E::Catalog),
        ("GET", s("/v2/_oci/ext/discover"), E::Discover),
        (
            "GET",
            s("/v2/_marina/list/repositories?namespace=org"),
            E::RegistryExtension,
        ),
        (
            "GET",
            s("/v2/a/b/c/manifests/v1"),
            E::GetManifest {
                name: s("a/b/c"),
                reference: s("v1"),
            },
        ),
        (
            "HEAD",
            format!("/v2/app/manifests/{d}"),
            E::HeadManifest {
                name: s("app"),
                reference: s(d),
            },
        ),
        (
            "PUT",
            s("/v2/org/app/manifests/v1"),
            E::PutManifest {
                name: s("org/app"),
                reference: s("v1"),
            },
        ),
        (
            "DELETE",
            s("/v2/org/app/manifests/v1"),
            E::DeleteManifest {
                name: s("org/app"),
                reference: s("v1"),
            },
        ),
        // A repository may hold a component called `manifests` or `blobs`.
        (
            "PUT",
            s("/v2/a/manifests/b/manifests/v1"),
            E::PutManifest {
                name: s("a/manifests/b"),
                reference: s("v1"),
            },
        ),
        (
            "GET",
            s("/v2/manifests/manifests/v1"),
            E::GetManifest {
                name: s("manifests"),
                reference: s("v1"),
            },
        ),
        (
            "GET",
            s("/v2/org%2Fapp/manifests/v1"),
            E::GetManifest {
                name: s("org/app"),
                reference: s("v1"),
            },
        ),
        (
            "GET",
            format!("/v2/org/app/blobs/{d}"),
            E::GetBlob {
                name: s("org/app"),
                digest: s(d),
            },
        ),
        (
            "HEAD",
            format!("/v2/org/app/blobs/{d}"),
            E::HeadBlob {
                name: s("org/app"),
                digest: s(d),
            },
        ),
        (
            "DELETE",
            format!("/v2/org/app/blobs/{d}"),
            E::DeleteBlob {
                name: s("org/app"),
                digest: s(d),
            },
        ),
        (
            "POST",
            s("/v2/org/app/blobs/uploads/"),
            E::StartUpload {
                name: s("org/app"),
                mount: None,
            },
        ),
        (
            "POST",
            format!("/v2/org/app/blobs/uploads?digest={d}"),
            E::StartUpload {
                name: s("org/app"),
                mount: None,
            },
        ),
        (
            "POST",
            s("/v2/b/blobs/uploads/?mount=sha256:ab&from=org%2Fa"),
            E::StartUpload {
                name: s("b"),
                mount: Some(MountFrom::Repository(s("org/a"))),
            },
        ),
        (
            "POST",
            s("/v2/b/blobs/uploads/?mount=sha256:ab"),
            E::StartUpload {
                name: s("b"),
                mount: Some(MountFrom::Anywhere),
            },
        ),
        (
            "POST",
            s("/v2/b/blobs/uploads/?mount=sha256:ab&from="),
            E::StartUpload {
                name: s("b"),
                mount: Some(MountFrom::Anywhere),
            },
        ),
        (
            "POST",
            s("/v2/x/blobs/uploads/blobs/uploads/"),
            E::StartUpload {
                name: s("x/blobs/uploads"),
                mount: None,
            },
        ),
        (
            "GET",
            s("/v2/org/app/blobs/uploads/abc"),
            E::GetUpload {
                name: s("org/app"),
                session: s("abc"),
            },
        ),
        (
            "PATCH",
            s("/v2/org/app/blobs/uploads/abc"),
            E::PatchUpload {
                name: s("org/app"),
                session: s("abc"),
            },
        ),
        (
            "PUT",
            s("/v2/org/app/blobs/uploads/abc?digest=x"),
            E::PutUpload {
                name: s("org/app"),
                session: s("abc"),
            },
        ),
        (
            "DELETE",
            s("/v2/x/blobs/uploads/blobs/uploads/id"),
            E::DeleteUpload {
                name: s("x/blobs/uploads"),
                session: s("id"),
            },
        ),
        (
            "GET",
            s("/v2/org/app/tags/list?n=2"),
            E::ListTags { name: s("org/app") },
        ),
        (
            "GET",
            format!("/v2/org/app/referrers/{d}"),
            E::ListReferrers {
                name: s("org/app"),
                digest: s(d),
            },
        ),
        (
            "GET",
            s("/v2/org/app/_oci/ext/discover"),
            E::RepositoryDiscover { name: s("org/app") },
        ),
        (
            "GET",
            s("/v2/a/b/_marina/list/tags"),
            E::RepositoryExtension { name: s("a/b") },
        ),
        (
            "GET",
            s("/v2/a/manifests/b/_marina/list/manifests"),
            E::RepositoryExtension {
                name: s("a/manifests/b"),
            },
        ),
        (
            "OPTIONS",
            s("/v2/a/manifests/v1"),
            E::MethodNotAllowed {
                template: "/v2/{name}/manifests/{reference}",
                name: Some(s("a")),
                allow: "GET, HEAD, PUT, DELETE",
            },
        ),
        (
            "POST",
            s("/v2/a/tags/list"),
            E::MethodNotAllowed {
                template: "/v2/{name}/tags/list",
                name: Some(s("a")),
                allow: "GET, HEAD",
            },
        ),
        (
            "DELETE",
            s("/v2/_catalog"),
            E::MethodNotAllowed {
                template: "/v2/_catalog",
                name: None,
                allow: "GET, HEAD",
            },
        ),
        (
            "GET",
            s("/v2/a/nothing"),
            E::NotFound {
                v2: true,
                name: None,
            },
        ),
        (
            "GET",
            s("/v2/app/blobs/a/b"),
            E::NotFound {
                v2: true,
                name: Some(s("app")),
            },
        ),
        (
            "GET",
            s("/v2/manifests/v1"),
            E::NotFound {
                v2: true,
                name: None,
            },
        ),
        (
            "GET",
            s("/v2x/a/manifests/1"),
            E::NotFound {
                v2: false,
                name: None,
            },
        ),
        (
            "GET",
            s("/etc/passwd"),
            E::NotFound {
                v2: false,
                name: None,
            },
        ),
    ];
    for (method, uri, want) in table {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri.as_str(), None),
        };
        assert_eq!(parse(method, path, query), want, "{method} {uri}");
    }
}

#[test]
fn routing_paths_encode_the_name_and_drop_trailing_slashes() {
    let table: &[(&str, Option<&str>)] = &[
        ("/v2", None),
        ("/v2/", Some("/v2")),
        ("/v2/_catalog", None),
        ("/v2/a/manifests/latest", None),
        ("/v2/a/b/c/manifests/v1", Some("/v2/a%2Fb%2Fc/manifests/v1")),
        (
            "/v2/a/manifests/b/manifests/v1",
            Some("/v2/a%2Fmanifests%2Fb/manifests/v1"),
        ),
        (
            "/v2/org/app/blobs/uploads/",
            Some("/v2/org%2Fapp/blobs/uploads"),
        ),
        (
            "/v2/org/app/blobs/uploads",
            Some("/v2/org%2Fapp/blobs/uploads"),
        ),
        ("/v2/a/blobs/uploads/", Some("/v2/a/blobs/uploads")),
        (
            "/v2/x/blobs/uploads/blobs/uploads/",
            Some("/v2/x%2Fblobs%2Fuploads/blobs/uploads"),
        ),
        ("/v2/org%2Fapp/manifests/v1", None),
        (
            "/v2/a/b/_marina/list/tags",
            Some("/v2/a%2Fb/_marina/list/tags"),
        ),
        ("/v2/_marina/list/repositories", None),
        ("/docs", None),
        ("/v2/a/unknown", None),
    ];
    for (path, want) in table {
        assert_eq!(
            route("GET", path, None).routing_path(path).as_deref(),
            *want,
            "{path}"
        );
    }
}

#[test]
fn access_follows_the_endpoint() {
    use crate::auth::Action::*;
    let repo = |name: &str, action| Need::Repository {
        name: name.into(),
        action,
        mount: None,
    };
    let table: Vec<(&str, &str, Need)> = vec![
        ("GET", "/healthz", Need::Open),
        ("GET", "/readyz", Need::Open),
        ("GET", "/docs/", Need::Open),
        ("GET", "/openapi.json", Need::Open),
        ("GET", "/v2x/a/manifests/1", Need::Open),
        ("GET", "/token", Need::Token),
        ("GET", "/metrics", Need::Base),
        ("GET", "/v2/", Need::Base),
        ("GET", "/v2/nothing-here", Need::Base),
        ("GET", "/v2/_catalog", Need::Catalog),
        ("GET", "/v2/_oci/ext/discover", Need::Extension),
        ("GET", "/v2/_marina/list/repositories", Need::Extension),
        ("GET", "/v2/a/manifests/v1", repo("a", Pull)),
        ("HEAD", "/v2/a/blobs/sha256:ab", repo("a", Pull)),
        ("PUT", "/v2/a/manifests/v1", repo("a", Push)),
        ("DELETE", "/v2/a/manifests/v1", repo("a", Delete)),
        ("DELETE", "/v2/a/blobs/sha256:ab", repo("a", Delete)),
        ("POST", "/v2/a/blobs/uploads/", repo("a", Push)),
        ("GET", "/v2/a/blobs/uploads/s", repo("a", Push)),
        ("PATCH", "/v2/a/blobs/uploads/s", repo("a", Push)),
        ("PUT", "/v2/a/blobs/uploads/s", repo("a", Push)),
        ("DELETE", "/v2/a/blobs/uploads/s", repo("a", Push)),
        ("GET", "/v2/a/tags/list", repo("a", Pull)),
        ("GET", "/v2/a/referrers/sha256:ab", repo("a", Pull)),
        ("GET", "/v2/a/_oci/ext/list", repo("a", Pull)),
        ("GET", "/v2/a/_marina/list/tags", repo("a", Pull)),
        ("OPTIONS", "/v2/a/manifests/v1", repo("a", Pull)),
    ];
    for (method, path, want) in table {
        assert_eq!(
            parse(method, path, None).required_access(),
            want,
            "{method} {path}"
        );
    }
    assert_eq!(
        parse(
            "POST",
            "/v2/b/blobs/uploads/",
            Some("mount=sha256:ab&from=a")
        )
        .required_access(),
        Need::Repository {
            name: "b".into(),
            action: Push,
            mount: Some(MountFrom::Repository("a".into())),
        }
    );
}

#[test]
fn templates_never_hold_what_the_request_names() {
    let rows: Vec<(String, &str)> = vec![
        (s("/v2/"), "/v2/"),
        (s("/v2"), "/v2/"),
        (s("/v2/_catalog"), "/v2/_catalog"),
        (s("/token"), "/token"),
        (s("/metrics"), "/metrics"),
        (s("/docs/index.css"), "/docs"),
        (s("/v2/a/b/c/manifests/v1"), MANIFEST),
        (format!("/v2/app/manifests/{D}"), MANIFEST),
        (format!("/v2/app/blobs/{D}"), BLOB),
        (s("/v2/app/blobs/uploads/"), UPLOADS),
        (s("/v2/app/blobs/uploads/abc123"), UPLOAD),
        (s("/v2/org/app/tags/list"), TAGS),
        (format!("/v2/app/referrers/{D}"), REFERRERS),
        (s("/v2/app/_oci/ext/discover"), REPOSITORY_DISCOVER),
        (s("/v2/_oci/ext/discover"), "/v2/_oci/ext/discover"),
        (s("/v2/app/_marina/list/tags"), REPOSITORY_EXTENSION),
        (s("/v2/_marina/list/repositories"), "/v2/_marina/*"),
        (s("/v2/app/nothing"), UNMATCHED),
        (s("/v2/app/blobs/a/b"), UNMATCHED),
        (s("/etc/passwd"), UNMATCHED),
    ];
    for (path, want) in rows {
        let method = if path.ends_with("/uploads/") {
            "POST"
        } else {
            "GET"
        };
        let t = parse(method, &path, None).template();
        assert_eq!(t, want, "{path}");
        assert!(!t.contains("app") && !t.contains("sha256"), "{t}");
    }
}

#[test]
fn allow_lists_the_methods_of_the_path() {
    let table: &[(&str, &str, Option<&str>)] = &[
        ("POST", "/v2/", Some("GET, HEAD")),
        ("POST", "/v2/_catalog", Some("GET, HEAD")),
        ("POST", "/v2/a/tags/list", Some("GET, HEAD")),
        ("POST", "/v2/a/referrers/sha256:x", Some("GET, HEAD")),
        ("GET", "/v2/a/blobs/uploads/", Some("POST")),
        (
            "POST",
            "/v2/a/blobs/uploads/id",
            Some("GET, HEAD, PATCH, PUT, DELETE"),
        ),
        ("PUT", "/v2/a/blobs/sha256:x", Some("GET, HEAD, DELETE")),
        ("POST", "/v2/a/manifests/v1", Some("GET, HEAD, PUT, DELETE")),
        ("PUT", "/token", Some("GET, HEAD, POST")),
        ("GET", "/docs", None),
        ("GET", "/v2/a/other", None),
    ];
    for (method, path, want) in table {
        assert_eq!(parse(method, path, None).allow(), *want, "{method} {path}");
    }
}
