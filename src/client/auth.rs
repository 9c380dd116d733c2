//! Pure helpers of the authentication flow: the token scope asked for a request,
//! and Basic credentials.

use base64::Engine as _;
use reqwest::Url;

/// The token scope the harness asks for a path: push/pull on the repository, plus
/// pull on the `from` repository of a mount.
pub fn scope_for(url: &Url) -> String {
    let path = url.path();
    let Some(rest) = path.strip_prefix("/v2/") else {
        return String::new();
    };
    if rest == "_catalog" || rest.starts_with("_marina/") {
        return "registry:catalog:*".to_string();
    }
    let markers = [
        "/blobs/",
        "/manifests/",
        "/tags/",
        "/referrers/",
        "/_marina/",
        "/_oci/",
    ];
    let name = markers
        .iter()
        .filter_map(|m| rest.rfind(m).map(|i| &rest[..i]))
        .max_by_key(|n| n.len());
    let Some(name) = name else {
        return String::new();
    };
    let mut scope = format!("repository:{name}:pull,push,delete");
    if let Some((_, from)) = url.query_pairs().find(|(k, _)| k == "from") {
        scope.push_str(&format!(" repository:{from}:pull"));
    }
    scope
}

/// The `Authorization` value for Basic credentials.
pub fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_as_rfc_7617_writes_them() {
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn scopes() {
        let u = Url::parse("http://h/v2/a/b/blobs/uploads/?mount=x&from=c/d").unwrap();
        assert_eq!(
            scope_for(&u),
            "repository:a/b:pull,push,delete repository:c/d:pull"
        );
        let u = Url::parse("http://h/v2/org/manifests/x/manifests/latest").unwrap();
        assert_eq!(scope_for(&u), "repository:org/manifests/x:pull,push,delete");
        assert_eq!(scope_for(&Url::parse("http://h/v2/").unwrap()), "");
        let u = Url::parse("http://h/v2/org/app/_marina/list/tags?n=1").unwrap();
        assert_eq!(scope_for(&u), "repository:org/app:pull,push,delete");
        let u = Url::parse("http://h/v2/org/app/_oci/ext/discover").unwrap();
        assert_eq!(scope_for(&u), "repository:org/app:pull,push,delete");
        for path in ["/v2/_catalog", "/v2/_marina/list/repositories"] {
            let u = Url::parse(&format!("http://h{path}")).unwrap();
            assert_eq!(scope_for(&u), "registry:catalog:*", "{path}");
        }
    }
}
