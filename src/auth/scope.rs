//! Scopes of the token protocol (`repository:org/app:pull,push`,
//! `registry:catalog:*`) and the `WWW-Authenticate` challenges that name them.

use std::fmt;

use super::actions::Actions;

/// A requested or refused scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Actions on one repository.
    Repository {
        /// The repository name.
        name: String,
        /// The actions.
        actions: Actions,
    },
    /// Listing all repositories (`registry:catalog:*`).
    Catalog,
}

impl Scope {
    /// Parses one scope; `None` for types Marina does not grant (ignored, as the
    /// protocol asks) and for malformed text.
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        match kind {
            "repository" if !name.is_empty() => Some(Scope::Repository {
                name: name.to_string(),
                actions: Actions::parse_list(actions),
            }),
            "registry" if name == "catalog" => Some(Scope::Catalog),
            _ => None,
        }
    }

    /// Every scope of a list of `scope` parameters, each possibly space-separated.
    pub fn parse_all<'a>(params: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        params
            .into_iter()
            .flat_map(|p| p.split(' '))
            .filter_map(Scope::parse)
            .collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { name, actions } => write!(f, "repository:{name}:{actions}"),
            Scope::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

/// A `WWW-Authenticate` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic {
        /// Shown by browsers; Marina uses the service name.
        realm: String,
    },
    /// `Bearer realm="…",service="…"[,scope="…"][,error="insufficient_scope"]`.
    Bearer {
        /// Where to get a token.
        realm: String,
        /// The service to ask a token for.
        service: String,
        /// The scope that was missing.
        scope: Option<Scope>,
        /// Whether a token was presented but did not grant enough.
        insufficient: bool,
    },
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Challenge::Basic { realm } => write!(f, "Basic realm=\"{realm}\""),
            Challenge::Bearer {
                realm,
                service,
                scope,
                insufficient,
            } => {
                write!(f, "Bearer realm=\"{realm}\",service=\"{service}\"")?;
                if let Some(s) = scope {
                    write!(f, ",scope=\"{s}\"")?;
                }
                if *insufficient {
                    f.write_str(",error=\"insufficient_scope\"")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::actions::Action::*;
    use super::*;

    #[test]
    fn scope_table() {
        let repo = |n: &str, a: &[super::super::Action]| {
            Some(Scope::Repository {
                name: n.into(),
                actions: Actions::of(a),
            })
        };
        let table = [
            (
                "repository:org/app:pull,push",
                repo("org/app", &[Pull, Push]),
            ),
            ("repository:a:*", repo("a", &[Pull, Push, Delete])),
            ("repository:a:delete", repo("a", &[Delete])),
            ("repository:a:", repo("a", &[])),
            ("registry:catalog:*", Some(Scope::Catalog)),
            ("registry:other:*", None),
            ("repository(plugin):a:pull", None),
            ("repository::pull", None),
            ("garbage", None),
        ];
        for (text, want) in table {
            assert_eq!(Scope::parse(text), want, "{text}");
        }
        assert_eq!(
            Scope::parse_all(["repository:a:pull repository:b:push", "registry:catalog:*"]).len(),
            3
        );
        assert_eq!(
            repo("x/y", &[Push, Pull]).unwrap().to_string(),
            "repository:x/y:pull,push"
        );
    }

    #[test]
    fn challenge_formatting() {
        let bearer = Challenge::Bearer {
            realm: "https://r.example/token".into(),
            service: "marina".into(),
            scope: Some(Scope::Repository {
                name: "org/app".into(),
                actions: Actions::of(&[Pull, Push]),
            }),
            insufficient: false,
        };
        assert_eq!(
            bearer.to_string(),
            r#"Bearer realm="https://r.example/token",service="marina",scope="repository:org/app:pull,push""#
        );
        let bare = Challenge::Bearer {
            realm: "http://127.0.0.1:5000/token".into(),
            service: "marina".into(),
            scope: None,
            insufficient: true,
        };
        assert_eq!(
            bare.to_string(),
            r#"Bearer realm="http://127.0.0.1:5000/token",service="marina",error="insufficient_scope""#
        );
        assert_eq!(
            Challenge::Basic {
                realm: "marina".into()
            }
            .to_string(),
            r#"Basic realm="marina""#
        );
    }
}
