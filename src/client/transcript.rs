//! Recorded HTTP exchanges, rendered as text for failure reports, with credentials
//! redacted before anything is stored.

use std::fmt::Write as _;

/// Headers whose values are never recorded.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-registry-auth",
];

/// Query parameters whose values are never recorded.
const SECRET_PARAMS: [&str; 5] = [
    "token",
    "access_token",
    "password",
    "signature",
    "x-amz-signature",
];

/// Longest body excerpt kept per exchange.
pub const BODY_EXCERPT: usize = 1024;

/// One request and its response (or transport error), redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// HTTP method.
    pub method: String,
    /// Full URL, secret query values replaced.
    pub url: String,
    /// Request headers, secrets replaced.
    pub request_headers: Vec<(String, String)>,
    /// Request body excerpt.
    pub request_body: String,
    /// Response status, or 0 when the request failed in transport.
    pub status: u16,
    /// Response headers, secrets replaced.
    pub response_headers: Vec<(String, String)>,
    /// Response body excerpt, or the transport error.
    pub response_body: String,
}

/// Replaces secret header values.
pub fn redact_header(name: &str, value: &str) -> String {
    if SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        let scheme = value
            .split_whitespace()
            .next()
            .filter(|_| value.contains(' '));
        match scheme {
            Some(s) => format!("{s} <redacted>"),
            None => "<redacted>".to_string(),
        }
    } else {
        value.to_string()
    }
}

/// Replaces the values of secret query parameters in a URL.
pub fn redact_url(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}=<redacted>")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{head}?{}", parts.join("&"))
}

/// A printable excerpt of a body: text up to [`BODY_EXCERPT`] bytes, or a size note.
pub fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    match std::str::from_utf8(body) {
        Ok(s) if !s.chars().any(|c| c.is_control() && !c.is_whitespace()) => {
            if s.len() > BODY_EXCERPT {
                let mut end = BODY_EXCERPT;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}… ({} bytes in all)", &s[..end], s.len())
            } else {
                s.to_string()
            }
        }
        _ => format!("({} bytes of binary data)", body.len()),
    }
}

impl Exchange {
    /// Renders the exchange as `> request` / `< response` lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "> {} {}", self.method, self.url);
        for (k, v) in &self.request_headers {
            let _ = writeln!(out, "> {k}: {v}");
        }
        if !self.request_body.is_empty() {
            let _ = writeln!(out, ">");
            for line in self.request_body.lines() {
                let _ = writeln!(out, "> {line}");
            }
        }
        if self.status == 0 {
            let _ = writeln!(out, "< transport error: {}", self.response_body);
            return out;
        }
        let _ = writeln!(out, "< {}", self.status);
        for (k, v) in &self.response_headers {
            let _ = writeln!(out, "< {k}: {v}");
        }
        if !self.response_body.is_empty() {
            let _ = writeln!(out, "<");
            for line in self.response_body.lines() {
                let _ = writeln!(out, "< {line}");
            }
        }
        out
    }
}

/// Renders the last `max` exchanges, noting how many earlier ones were left out.
pub fn render_all(exchanges: &[Exchange], max: usize) -> String {
    let skip = exchanges.len().saturating_sub(max);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "({skip} earlier exchanges omitted)\n");
    }
    for (i, e) in exchanges[skip..].iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&e.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_header("Authorization", "Bearer abc.def"),
            "Bearer <redacted>"
        );
        assert_eq!(
            redact_header("authorization", "Basic dXNlcjpwYXNz"),
            "Basic <redacted>"
        );
        assert_eq!(redact_header("Cookie", "a=b"), "<redacted>");
        assert_eq!(redact_header("Location", "/v2/x"), "/v2/x");
        assert_eq!(
            redact_url("https://h/token?service=s&access_token=xyz&scope=a"),
            "https://h/token?service=s&access_token=<redacted>&scope=a"
        );
        assert_eq!(redact_url("https://h/v2/"), "https://h/v2/");
    }

    #[test]
    fn excerpts() {
        assert_eq!(excerpt(b""), "");
        assert_eq!(excerpt(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(excerpt(&[0, 1, 2, 255]), "(4 bytes of binary data)");
        let long = "x".repeat(BODY_EXCERPT + 10);
        assert!(
            excerpt(long.as_bytes()).ends_with(&format!("({} bytes in all)", BODY_EXCERPT + 10))
        );
    }

    #[test]
    fn render_omits_early_exchanges() {
        let e = Exchange {
            method: "GET".into(),
            url: "http://h/v2/".into(),
            request_headers: vec![],
            request_body: String::new(),
            status: 200,
            response_headers: vec![("content-length".into(), "2".into())],
            response_body: "{}".into(),
        };
        let text = render_all(&[e.clone(), e.clone(), e], 2);
        assert!(text.starts_with("(1 earlier exchanges omitted)"));
        assert_eq!(text.matches("> GET http://h/v2/").count(), 2);
        assert!(text.contains("< 200\n< content-length: 2\n<\n< {}"));
    }
}
