//! Where the suite sends its requests: a registry URL reduced to the parts both
//! suites need (scheme and `host[:port]`), plus optional credentials.

use std::fmt;

use anyhow::{anyhow, bail};

/// A registry's base address. The suites take only a scheme and an authority:
/// a path, query or fragment would be silently dropped, so they are rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// True for `https://`.
    pub tls: bool,
    /// `host[:port]`, as the current suite's `registry` field wants it.
    pub authority: String,
}

impl Endpoint {
    /// Parses `host[:port]`, `http://host[:port]` or `https://host[:port]` (a
    /// trailing `/` and `/v2/` are accepted), as every tool does.
    pub fn parse(given: &str) -> anyhow::Result<Endpoint> {
        let url = crate::client::address::base_url(given, false).map_err(|e| anyhow!(e))?;
        let (tls, authority) = match url.split_once("://") {
            Some(("https", a)) => (true, a),
            Some((_, a)) => (false, a),
            None => bail!("registry address {given:?} has no scheme"),
        };
        Ok(Endpoint {
            tls,
            authority: authority.to_string(),
        })
    }

    /// The base URL, `http(s)://host[:port]`, as the v1.1.x suite wants it.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// A user name and password passed through to the suite.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password; never printed.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scheme_and_authority() {
        let e = Endpoint::parse("http://127.0.0.1:5001").unwrap();
        assert_eq!(
            e,
            Endpoint {
                tls: false,
                authority: "127.0.0.1:5001".into()
            }
        );
        assert_eq!(e.url(), "http://127.0.0.1:5001");
        let e = Endpoint::parse("https://registry.example/v2/").unwrap();
        assert!(e.tls);
        assert_eq!(e.authority, "registry.example");
        assert_eq!(
            Endpoint::parse("http://[::1]:5000/").unwrap().authority,
            "[::1]:5000"
        );
    }

    #[test]
    fn rejects_what_the_suites_would_drop() {
        // The same forms as every tool: `host[:port]` means http on loopback.
        assert_eq!(
            Endpoint::parse("127.0.0.1:5000").unwrap().url(),
            "http://127.0.0.1:5000"
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://host/prefix",
            "http://host:99999",
            "http://user@host",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
