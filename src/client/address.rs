//! How every tool names a registry: `host[:port]` or `http(s)://host[:port]`,
//! with an optional trailing `/` or `/v2/`. `marina check`, `bench`,
//! `conformance` and `list*` all read their target through [`base_url`], so
//! they accept the same forms and refuse the same mistakes (a path they would
//! otherwise drop silently).

/// The base URL (`scheme://host[:port]`, no trailing `/`) for `registry`.
///
/// Without a scheme, `http` is chosen when `plain_http` is set or the host is a
/// loopback name or address (`localhost`, `127.*`, `[::1]`), `https` otherwise.
/// A path other than `/` or `/v2/`, a query, a fragment or user info is refused
/// with a sentence saying so.
pub fn base_url(registry: &str, plain_http: bool) -> Result<String, String> {
    let given = registry.trim();
    let (scheme, rest) = match given.split_once("://") {
        Some((s, rest)) => {
            let s = s.to_ascii_lowercase();
            if s != "http" && s != "https" {
                return Err(format!(
                    "{given:?}: the scheme must be http:// or https://, not {s}://"
                ));
            }
            (Some(s), rest)
        }
        None => (None, given),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !matches!(path, "" | "/" | "/v2" | "/v2/") {
        return Err(format!(
            "{given:?}: a registry is named by host[:port] or http(s)://host[:port] only; \
             the path, query or fragment {path:?} would be ignored"
        ));
    }
    if authority.is_empty() {
        return Err(format!("{given:?}: no host given"));
    }
    if authority.contains(['@', ' ']) {
        return Err(format!(
            "{given:?}: user info or spaces are not taken in a registry address \
             (use --username and --password)"
        ));
    }
    let host = if authority.starts_with('[') {
        match authority.split_once(']') {
            Some((h, port)) => {
                check_port(given, port.strip_prefix(':'), port.is_empty())?;
                format!("{h}]")
            }
            None => return Err(format!("{given:?}: unclosed '[' in the host")),
        }
    } else {
        let (h, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        check_port(given, port, port.is_none())?;
        h.to_string()
    };
    if host.is_empty() {
        return Err(format!("{given:?}: no host given"));
    }
    let scheme = scheme.unwrap_or_else(|| {
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        if plain_http || loopback {
            "http"
        } else {
            "https"
        }
        .to_string()
    });
    Ok(format!("{scheme}://{authority}"))
}

/// A port, when present, is a number from 1 to 65535.
fn check_port(given: &str, port: Option<&str>, absent: bool) -> Result<(), String> {
    if absent {
        return Ok(());
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(p)) if p > 0 => Ok(()),
        _ => Err(format!(
            "{given:?}: the port must be a number from 1 to 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn the_forms_every_tool_takes() {
        let ok = |s: &str, plain: bool| base_url(s, plain).unwrap();
        assert_eq!(ok("127.0.0.1:5000", false), "http://127.0.0.1:5000");
        assert_eq!(ok("localhost", false), "http://localhost");
        assert_eq!(ok("[::1]:5000", false), "http://[::1]:5000");
        assert_eq!(ok("ghcr.io", false), "https://ghcr.io");
        assert_eq!(ok("registry.lan:5000", true), "http://registry.lan:5000");
        assert_eq!(
            ok("https://127.0.0.1:5000/", false),
            "https://127.0.0.1:5000"
        );
        assert_eq!(ok("http://r.example:80/v2/", false), "http://r.example:80");
        assert_eq!(ok("HTTP://r.example/v2", false), "http://r.example");
    }

    #[test]
    fn a_path_that_would_be_dropped_is_refused() {
        for bad in [
            "http://host:5100/docs",
            "host:5100/v2/team",
            "http://h/?n=1",
            "http://u:p@h:1",
            "ftp://h",
            "h:0",
            "h:99999",
            "h:x",
            "",
            "http://",
            "[::1",
        ] {
            assert!(base_url(bad, false).is_err(), "{bad:?} was accepted");
        }
        let e = base_url("http://host:5100/docs", false).unwrap_err();
        assert!(e.contains("\"/docs\" would be ignored"), "{e}");
    }
}
