//! What a request presents in `Authorization`, parsed once. Secrets live in types
//! whose `Debug` prints `<redacted>`, so a stray `{:?}` never logs them.

use std::fmt;

use base64::Engine;

/// A password or token; compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The credentials of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header, or Basic with an empty user and password (what
    /// some clients send when they have nothing configured).
    None,
    /// `Basic` user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// `Bearer` token.
    Bearer(Secret),
    /// A header that is neither (malformed, or another scheme).
    Malformed,
}

impl Credentials {
    /// Parses an `Authorization` header value (absent → [`Credentials::None`]).
    pub fn parse(header: Option<&str>) -> Credentials {
        let Some(h) = header else {
            return Credentials::None;
        };
        let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                return Credentials::Malformed;
            };
            let Ok(text) = String::from_utf8(raw) else {
                return Credentials::Malformed;
            };
            match text.split_once(':') {
                Some(("", "")) => Credentials::None,
                Some((user, password)) if !user.is_empty() => Credentials::Basic {
                    user: user.to_string(),
                    password: Secret::new(password),
                },
                _ => Credentials::Malformed,
            }
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Credentials::Bearer(Secret::new(rest))
        } else {
            Credentials::Malformed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn header_table() {
        let basic = |u: &str, p: &str| Credentials::Basic {
            user: u.into(),
            password: Secret::new(p),
        };
        let table = [
            (None, Credentials::None),
            (
                Some(format!("Basic {}", b64("alice:s3cret"))),
                basic("alice", "s3cret"),
            ),
            (
                Some(format!("basic  {}", b64("alice:a:b"))),
                basic("alice", "a:b"),
            ),
            (Some(format!("Basic {}", b64(":"))), Credentials::None),
            (
                Some(format!("Basic {}", b64(":pw"))),
                Credentials::Malformed,
            ),
            (
                Some(format!("Basic {}", b64("nocolon"))),
                Credentials::Malformed,
            ),
            (Some("Basic !!!".to_string()), Credentials::Malformed),
            (
                Some("Bearer abc.def.ghi".to_string()),
                Credentials::Bearer(Secret::new("abc.def.ghi")),
            ),
            (Some("Bearer".to_string()), Credentials::Malformed),
            (Some("Digest x".to_string()), Credentials::Malformed),
        ];
        for (h, want) in table {
            assert_eq!(Credentials::parse(h.as_deref()), want, "{h:?}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::parse(Some(&format!("Basic {}", b64("alice:hunter2"))));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let t = Credentials::parse(Some("Bearer eyJtoken"));
        assert!(!format!("{t:?}").contains("eyJ"));
    }
}
