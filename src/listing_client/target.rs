//! What the `marina list*` commands are pointed at: `<registry>/[namespace/]` and
//! `<registry>/<repo>[@<digest>]`, with the registry as `host[:port]` (or a URL).

use crate::oci::{Digest, RepoName};

/// A registry, optionally narrowed to a namespace (`marina list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`, or `http(s)://host[:port]`.
    pub registry: String,
    /// The namespace, without trailing `/`.
    pub namespace: Option<String>,
}

/// A repository, optionally with a digest (`list-tags`, `list-manifests`, `list-referrers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoTarget {
    /// `host[:port]`, or `http(s)://host[:port]`.
    pub registry: String,
    /// The repository.
    pub repo: RepoName,
    /// The digest after `@`, if any.
    pub digest: Option<Digest>,
}

/// Splits `[scheme://]host[:port][/rest]` into the registry part and the rest.
fn split_registry(s: &str) -> (String, &str) {
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, s),
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let registry = match scheme {
        Some(scheme) => format!("{scheme}://{host}"),
        None => host.to_string(),
    };
    (registry, path)
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (registry, path) = split_registry(s);
        if registry.is_empty() {
            return Err(format!("{s:?}: expected <registry>/[namespace/]"));
        }
        let ns = path.trim_end_matches('/');
        let namespace = if ns.is_empty() {
            None
        } else {
            ns.parse::<RepoName>()
                .map_err(|e| format!("{s:?}: namespace {ns:?}: {e}"))?;
            Some(ns.to_string())
        };
        Ok(Target {
            registry,
            namespace,
        })
    }
}

impl std::str::FromStr for RepoTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (registry, path) = split_registry(s);
        let (repo, digest) = match path.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (path, None),
        };
        if registry.is_empty() || repo.is_empty() {
            return Err(format!(
                "{s:?}: expected <registry>/<repository>[@<digest>]"
            ));
        }
        if let Some((name, tag)) = repo.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            return Err(format!(
                "{s:?}: a tag (:{tag}) is not taken here; name the repository ({name}), \
                 or a manifest with @<digest>"
            ));
        }
        let repo = repo
            .parse::<RepoName>()
            .map_err(|e| format!("{s:?}: {e}"))?;
        let digest = digest
            .map(|d| d.parse::<Digest>().map_err(|e| format!("{s:?}: {e}")))
            .transpose()?;
        Ok(RepoTarget {
            registry,
            repo,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t: Target = "127.0.0.1:5000/org2/team-a/".parse().unwrap();
        assert_eq!(t.registry, "127.0.0.1:5000");
        assert_eq!(t.namespace.as_deref(), Some("org2/team-a"));
        let t: Target = "registry.example:443".parse().unwrap();
        assert_eq!(t.namespace, None);
        let t: Target = "http://localhost:5000/".parse().unwrap();
        assert_eq!(
            (t.registry.as_str(), t.namespace),
            ("http://localhost:5000", None)
        );
        assert!("r/Bad_Name".parse::<Target>().is_err());

        let r: RepoTarget = "localhost:5000/org1/artifact-a".parse().unwrap();
        assert_eq!(r.repo.as_str(), "org1/artifact-a");
        assert_eq!(r.digest, None);
        let d = format!("sha256:{}", "a".repeat(64));
        let r: RepoTarget = format!("localhost:5000/hello-world@{d}").parse().unwrap();
        assert_eq!(r.digest.unwrap().to_string(), d);
        assert!("localhost:5000".parse::<RepoTarget>().is_err());
        let e = "localhost:5000/team/app:v1"
            .parse::<RepoTarget>()
            .unwrap_err();
        assert!(
            e.contains("a tag (:v1) is not taken here; name the repository (team/app)"),
            "{e}"
        );
        assert!("localhost:5000/a@sha256:zz".parse::<RepoTarget>().is_err());
    }
}
