//! Pure parsers for the headers the harness reads: `Link` (RFC 8288/5988),
//! `WWW-Authenticate` challenges, `Content-Range` of partial responses, the upload
//! `Range` header (`0-<end>`) and `Warning` values.

/// One link of a `Link` header: its target and parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URI between `<` and `>`, unresolved.
    pub target: String,
    /// `(name, value)` pairs, quotes removed.
    pub params: Vec<(String, String)>,
}

impl Link {
    /// True when one of the `rel` values is `next` (case-insensitive).
    pub fn is_next(&self) -> bool {
        self.params.iter().any(|(k, v)| {
            k == "rel"
                && v.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        })
    }
}

/// Splits `s` on `sep` outside double-quoted strings.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let mut out = String::new();
        let mut chars = v[1..v.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        v.to_string()
    }
}

/// Parses one `Link` header value; `None` when it is not `<uri> *(; param)` links.
pub fn parse_link(value: &str) -> Option<Vec<Link>> {
    let mut links = Vec::new();
    for part in split_outside_quotes(value, ',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let rest = part.strip_prefix('<')?;
        let (target, params) = rest.split_once('>')?;
        let mut parsed = Vec::new();
        for p in split_outside_quotes(params, ';').into_iter().skip(1) {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = k.trim();
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~*".contains(&b))
            {
                return None;
            }
            parsed.push((k.to_ascii_lowercase(), unquote(v)));
        }
        if !params.trim().is_empty() && !params.trim_start().starts_with(';') {
            return None;
        }
        links.push(Link {
            target: target.to_string(),
            params: parsed,
        });
    }
    (!links.is_empty()).then_some(links)
}

/// The `rel="next"` target among several `Link` header values.
/// `Err` carries the first value that does not parse.
pub fn next_link<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Option<String>, String> {
    let mut next = None;
    for v in values {
        let links = parse_link(v).ok_or_else(|| v.to_string())?;
        if let Some(l) = links.into_iter().find(Link::is_next) {
            next.get_or_insert(l.target);
        }
    }
    Ok(next)
}

/// An authentication challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lowercased (`basic`, `bearer`).
    pub scheme: String,
    /// Auth parameters, names lowercased, quotes removed.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of a parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value into its challenges (RFC 9110 §11.6.1).
pub fn parse_www_authenticate(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    for item in split_outside_quotes(value, ',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        // "Scheme k=v" starts a challenge; a bare "k=v" continues the previous one.
        let (head, rest) = match item.split_once(char::is_whitespace) {
            Some((h, r)) if !h.contains('=') => (Some(h), r.trim()),
            _ if !item.contains('=') => (Some(item), ""),
            _ => (None, item),
        };
        if let Some(scheme) = head {
            out.push(Challenge {
                scheme: scheme.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
        if let (Some(c), Some((k, v))) = (out.last_mut(), rest.split_once('=')) {
            c.params.push((k.trim().to_ascii_lowercase(), unquote(v)));
        }
    }
    out
}

/// A `Content-Range` of a 206 answer: `bytes first-last/complete` (complete may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte position.
    pub first: u64,
    /// Last byte position (inclusive).
    pub last: u64,
    /// Complete length, when known.
    pub complete: Option<u64>,
}

/// Parses `bytes first-last/complete`; `None` when malformed or `last < first`.
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, complete) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (first, last) = (num(a)?, num(b)?);
    let complete = if complete == "*" {
        None
    } else {
        Some(num(complete)?)
    };
    (first <= last && complete.is_none_or(|c| last < c)).then_some(ContentRange {
        first,
        last,
        complete,
    })
}

/// Parses the upload progress header `Range: 0-<end>` and returns `end`.
pub fn parse_upload_range(value: &str) -> Option<u64> {
    // The spec fixes `0-<end>`; the `bytes=` unit of request ranges is not part
    // of it (a registry sending it fails the same way as a Link without rel).
    let (a, b) = value.trim().split_once('-')?;
    if a != "0" || b.is_empty() || !b.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    b.parse().ok()
}

/// Checks one `Warning` value against the spec's rules: `299 - "<text>"`, no date.
/// Returns the warning text, or why it is malformed.
pub fn parse_warning(value: &str) -> Result<String, String> {
    let v = value.trim();
    let rest = v
        .strip_prefix("299 ")
        .ok_or_else(|| format!("warn-code is not 299 in {v:?}"))?;
    let rest = rest
        .strip_prefix("- ")
        .ok_or_else(|| format!("warn-agent is not '-' in {v:?}"))?;
    if !rest.starts_with('"') {
        return Err(format!("warn-text is not quoted in {v:?}"));
    }
    let mut escaped = false;
    let mut text_end = None;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                text_end = Some(i + 1);
                break;
            }
            _ => {}
        }
    }
    let text_end = text_end.ok_or_else(|| format!("warn-text is not terminated in {v:?}"))?;
    if !rest[text_end..].trim().is_empty() {
        return Err(format!(
            "a warn-date or extra data follows the text in {v:?}"
        ));
    }
    Ok(unquote(&rest[..text_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let l = parse_link(r#"</v2/r/tags/list?n=2&last=b>; rel="next""#).unwrap();
        assert_eq!(l[0].target, "/v2/r/tags/list?n=2&last=b");
        assert!(l[0].is_next());
        let l = parse_link(r#"<https://x/a>; rel=next, <https://x/b>; rel="prev last""#).unwrap();
        assert!(l[0].is_next() && !l[1].is_next());
        assert_eq!(l[1].params, vec![("rel".into(), "prev last".into())]);
        let l = parse_link(r#"<a>; title="x, y"; REL="Next""#).unwrap();
        assert_eq!(l.len(), 1);
        assert!(l[0].is_next());
        assert_eq!(parse_link("/v2/r/tags/list?n=2; rel=next"), None);
        assert_eq!(parse_link("<a> rel=next"), None);
        assert_eq!(parse_link(""), None);
        assert_eq!(
            next_link([r#"<a>; rel="prev""#, r#"<b>; rel="next""#]),
            Ok(Some("b".to_string()))
        );
        assert_eq!(next_link(["garbage"]), Err("garbage".to_string()));
        // The forms registries send: relative and absolute targets, quoted and
        // bare `rel`, several links in one value.
        for (value, want) in [
            (
                r#"</v2/a/tags/list?n=2&last=b>; rel="next""#,
                Some("/v2/a/tags/list?n=2&last=b"),
            ),
            ("<https://r/x>;rel=next", Some("https://r/x")),
            (
                r#"<http://h/p>; rel="prev", <http://h/n?a=1>;rel=next"#,
                Some("http://h/n?a=1"),
            ),
            (r#"</x>; rel="prev""#, None),
            ("</x>", None),
        ] {
            assert_eq!(next_link([value]), Ok(want.map(String::from)), "{value}");
        }
    }

    #[test]
    fn www_authenticate() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("service"), Some("registry.example"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
        let c = parse_www_authenticate(r#"Basic realm="r", Bearer realm="t""#);
        assert_eq!(
            c.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(),
            ["basic", "bearer"]
        );
        assert_eq!(c[1].param("realm"), Some("t"));
        let c = parse_www_authenticate("Basic");
        assert_eq!(c[0].scheme, "basic");
        assert!(c[0].params.is_empty());
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 0-0/2"),
            Some(ContentRange {
                first: 0,
                last: 0,
                complete: Some(2)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Some(ContentRange {
                first: 5,
                last: 9,
                complete: None
            })
        );
        for bad in [
            "bytes 5-4/10",
            "bytes 0-9/9",
            "0-1/2",
            "bytes -1/2",
            "bytes 1-2",
            "bytes a-b/c",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn upload_range() {
        assert_eq!(parse_upload_range("0-4"), Some(4));
        assert_eq!(parse_upload_range("bytes=0-9"), None);
        assert_eq!(parse_upload_range("1-4"), None);
        assert_eq!(parse_upload_range("0-"), None);
    }

    #[test]
    fn warnings() {
        assert_eq!(
            parse_warning(r#"299 - "Your auth token will expire""#),
            Ok("Your auth token will expire".into())
        );
        assert_eq!(
            parse_warning(r#"299 - "a \"quoted\" word""#),
            Ok(r#"a "quoted" word"#.into())
        );
        assert!(parse_warning(r#"199 - "x""#).is_err());
        assert!(parse_warning(r#"299 registry "x""#).is_err());
        assert!(parse_warning(r#"299 - "x" "Wed, 21 Oct 2015 07:28:00 GMT""#).is_err());
        assert!(parse_warning(r#"299 - x"#).is_err());
    }
}
