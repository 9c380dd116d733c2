//! Pure helpers of the authentication flow: the token scope asked for a request,
//! and Basic credentials.

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
        base64_lite::encode(format!("{username}:{password}").as_bytes())
    )
}

/// Minimal standard base64 encoding (for Basic credentials), so no crate is needed.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Encodes bytes as padded standard base64.
    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn rfc4648_vectors() {
            for (i, o) in [
                ("", ""),
                ("f", "Zg=="),
                ("fo", "Zm8="),
                ("foo", "Zm9v"),
                ("foobar", "Zm9vYmFy"),
            ] {
                assert_eq!(super::encode(i.as_bytes()), o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
