//! The route table: every request the application answers, named by one
//! [`Endpoint`] parsed from its method, path and query alone.
//!
//! Everything that depends on "which endpoint is this" asks this table: access
//! control ([`Endpoint::required_access`]), metrics labels and the access log
//! ([`Endpoint::template`]), the `Allow` header of a 405 ([`Endpoint::allow`]), the
//! operator's per-repository warnings ([`Endpoint::repository`]), and poem's router,
//! which gets [`Routed::routing_path`]: repository names contain `/`, but a path
//! parameter matches one segment, so the name part of `/v2/<name>/<endpoint>` is
//! percent-encoded (`a/b` → `a%2Fb`) and one OpenAPI path per endpoint serves names
//! of any depth. The split is at the *last* endpoint marker, since a repository may
//! itself contain a component called `manifests` or `blobs`.
//!
//! Values are kept as the client wrote them (percent-decoded, not validated):
//! handlers validate them through their typed parameters and answer the spec's
//! error when they are malformed.

use crate::auth::{Action, MountFrom, Need};

/// One request the application answers, or why it answers none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`: a redirect to the documentation.
    Root,
    /// `/docs`, `/openapi.json`, `/favicon.ico` and the `_marina` extension's definition.
    Document(&'static str),
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
    /// `GET /token` and `POST /token` (token mode's login).
    Token,
    /// `GET /v2/`.
    Base,
    /// `GET /v2/_catalog`.
    Catalog,
    /// `GET /v2/_oci/ext/discover`.
    Discover,
    /// A registry-level endpoint of Marina's listing extension (`/v2/_marina/…`) or
    /// another `/v2/_oci/…` path.
    RegistryExtension,
    /// `GET /v2/<name>/manifests/<reference>`.
    GetManifest { name: String, reference: String },
    /// `HEAD /v2/<name>/manifests/<reference>`.
    HeadManifest { name: String, reference: String },
    /// `PUT /v2/<name>/manifests/<reference>`.
    PutManifest { name: String, reference: String },
    /// `DELETE /v2/<name>/manifests/<reference>`.
    DeleteManifest { name: String, reference: String },
    /// `GET /v2/<name>/blobs/<digest>`.
    GetBlob { name: String, digest: String },
    /// `HEAD /v2/<name>/blobs/<digest>`.
    HeadBlob { name: String, digest: String },
    /// `DELETE /v2/<name>/blobs/<digest>`.
    DeleteBlob { name: String, digest: String },
    /// `POST /v2/<name>/blobs/uploads/`, with the mount it asks for, if any.
    StartUpload {
        name: String,
        mount: Option<MountFrom>,
    },
    /// `GET /v2/<name>/blobs/uploads/<session>`.
    GetUpload { name: String, session: String },
    /// `PATCH /v2/<name>/blobs/uploads/<session>`.
    PatchUpload { name: String, session: String },
    /// `PUT /v2/<name>/blobs/uploads/<session>`.
    PutUpload { name: String, session: String },
    /// `DELETE /v2/<name>/blobs/uploads/<session>`.
    DeleteUpload { name: String, session: String },
    /// `GET /v2/<name>/tags/list`.
    ListTags { name: String },
    /// `GET /v2/<name>/referrers/<digest>`.
    ListReferrers { name: String, digest: String },
    /// `GET /v2/<name>/_oci/ext/discover`.
    RepositoryDiscover { name: String },
    /// A repository-level extension endpoint (`/v2/<name>/_marina/…`, other `_oci/…`).
    RepositoryExtension { name: String },
    /// A known path with a method it does not answer.
    MethodNotAllowed {
        /// The template of the path.
        template: &'static str,
        /// The repository it addresses, if any.
        name: Option<String>,
        /// The methods it answers.
        allow: &'static str,
    },
    /// No such endpoint; under `/v2/` with the repository it seems to address.
    NotFound { v2: bool, name: Option<String> },
}

/// An [`Endpoint`] with the path poem's router should see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// How the path poem's router sees differs from the request's.
    rewrite: Rewrite,
}

/// How a request's path is rewritten for poem's router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// Not at all.
    None,
    /// `/v2/` is routed as `/v2`.
    Base,
    /// A repository path: the name's `/` encoded, `…/uploads/` without its slash.
    Repository,
}

impl Routed {
    /// The path to route on for request path `path` (the one this was routed
    /// from), when it differs from it. Built only when asked: the reads answered
    /// straight from the table never need it.
    pub fn routing_path(&self, path: &str) -> Option<String> {
        match self.rewrite {
            Rewrite::None => None,
            Rewrite::Base => Some("/v2".into()),
            Rewrite::Repository => {
                let (raw_name, tail) = split(path.strip_prefix("/v2/")?)?;
                let tail = if tail == "/blobs/uploads/" {
                    "/blobs/uploads"
                } else {
                    tail
                };
                let routing = format!("/v2/{}{tail}", raw_name.replace('/', "%2F"));
                (routing != path).then_some(routing)
            }
        }
    }
}

/// What labels an unknown path in metrics and logs.
pub const UNMATCHED: &str = "unmatched";

/// The markers that end a repository name, as `/<marker>/`.
const MARKERS: [&str; 5] = [
    "/manifests/",
    "/blobs/",
    "/referrers/",
    "/_oci/",
    "/_marina/",
];

/// A path's kind, before the method is looked at.
enum Resource<'a> {
    Manifest(&'a str),
    Blob(&'a str),
    Uploads,
    Upload(&'a str),
    Tags,
    Referrers(&'a str),
    Discover,
    Extension,
    Unknown,
}

/// Splits `/v2/<name><tail>` at the last marker: the raw name and the tail.
fn split(rest: &str) -> Option<(&str, &str)> {
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return (!name.is_empty()).then_some((name, "/tags/list"));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads") {
        if !name.is_empty() {
            return Some((name, "/blobs/uploads"));
        }
    }
    let cut = MARKERS.iter().filter_map(|m| rest.rfind(m)).max()?;
    (cut > 0).then(|| (&rest[..cut], &rest[cut..]))
}

/// The one segment after `prefix` in `tail`, if `tail` is `prefix<segment>`.
fn one_segment<'a>(tail: &'a str, prefix: &str) -> Option<&'a str> {
    tail.strip_prefix(prefix)
        .filter(|s| !s.is_empty() && !s.contains('/'))
}

fn classify_tail(tail: &str) -> Resource<'_> {
    if tail == "/tags/list" {
        return Resource::Tags;
    }
    if tail == "/blobs/uploads" || tail == "/blobs/uploads/" {
        return Resource::Uploads;
    }
    if let Some(s) = one_segment(tail, "/blobs/uploads/") {
        return Resource::Upload(s);
    }
    if let Some(d) = one_segment(tail, "/blobs/") {
        return Resource::Blob(d);
    }
    if let Some(r) = one_segment(tail, "/manifests/") {
        return Resource::Manifest(r);
    }
    if let Some(d) = one_segment(tail, "/referrers/") {
        return Resource::Referrers(d);
    }
    if tail == "/_oci/ext/discover" {
        return Resource::Discover;
    }
    if tail.starts_with("/_marina/") || tail.starts_with("/_oci/") {
        return Resource::Extension;
    }
    Resource::Unknown
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The mount a `POST …/blobs/uploads/` asks for, from its query.
fn mount_of(query: Option<&str>) -> Option<MountFrom> {
    let (mut mount, mut from) = (false, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "mount" if !mount => mount = true,
            "from" if from.is_none() => from = Some(v.into_owned()),
            _ => {}
        }
    }
    match (mount, from) {
        (false, _) => None,
        (true, Some(from)) if !from.is_empty() => Some(MountFrom::Repository(from)),
        (true, _) => Some(MountFrom::Anywhere),
    }
}

/// The endpoint of `method path?query`. Pure, so it is tested from a table.
pub fn parse(method: &str, path: &str, query: Option<&str>) -> Endpoint {
    route(method, path, query).endpoint
}

/// The endpoint of `method path?query` and the path poem should route on.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Routed {
    let fixed = |endpoint| Routed {
        endpoint,
        rewrite: Rewrite::None,
    };
    // HEAD is GET without a body wherever the table has no HEAD of its own.
    let get = method == "GET" || method == "HEAD";
    let only_get = |endpoint: Endpoint, template: &'static str| {
        if get {
            endpoint
        } else {
            Endpoint::MethodNotAllowed {
                template,
                name: None,
                allow: "GET, HEAD",
            }
        }
    };
    let endpoint = match path {
        "/" => only_get(Endpoint::Root, "/"),
        "/healthz" => only_get(Endpoint::Healthz, "/healthz"),
        "/readyz" => only_get(Endpoint::Readyz, "/readyz"),
        "/metrics" => only_get(Endpoint::Metrics, "/metrics"),
        "/openapi.json" => Endpoint::Document("/openapi.json"),
        "/favicon.ico" => Endpoint::Document("/favicon.ico"),
        p if p == super::extensions::DEFINITION_PATH => {
            Endpoint::Document("/extensions/_marina.md")
        }
        p if p == "/docs" || p.starts_with("/docs/") => Endpoint::Document("/docs"),
        "/token" => match method {
            "GET" | "HEAD" | "POST" => Endpoint::Token,
            _ => Endpoint::MethodNotAllowed {
                template: "/token",
                name: None,
                allow: "GET, HEAD, POST",
            },
        },
        "/v2" => only_get(Endpoint::Base, "/v2/"),
        "/v2/" => {
            return Routed {
                endpoint: only_get(Endpoint::Base, "/v2/"),
                rewrite: Rewrite::Base,
            }
        }
        "/v2/_catalog" => only_get(Endpoint::Catalog, "/v2/_catalog"),
        "/v2/_oci/ext/discover" => only_get(Endpoint::Discover, "/v2/_oci/ext/discover"),
        p if p.starts_with("/v2/_marina/") || p.starts_with("/v2/_oci/") => {
            only_get(Endpoint::RegistryExtension, "/v2/_marina/*")
        }
        _ => return repository_route(method, path, query),
    };
    fixed(endpoint)
}

fn repository_route(method: &str, path: &str, query: Option<&str>) -> Routed {
    let unknown = |v2: bool| Routed {
        endpoint: Endpoint::NotFound { v2, name: None },
        rewrite: Rewrite::None,
    };
    let Some(rest) = path.strip_prefix("/v2/") else {
        return unknown(false);
    };
    let Some((raw_name, tail)) = split(rest) else {
        return unknown(true);
    };
    let name = decode(raw_name);
    let resource = classify_tail(tail);
    let get = method == "GET" || method == "HEAD";
    let n = name.clone();
    let not_allowed = |template, allow| Endpoint::MethodNotAllowed {
        template,
        name: Some(n.clone()),
        allow,
    };
    let endpoint = match resource {
        Resource::Manifest(r) => {
            let reference = decode(r);
            match method {
                "GET" => Endpoint::GetManifest { name, reference },
                "HEAD" => Endpoint::HeadManifest { name, reference },
                "PUT" => Endpoint::PutManifest { name, reference },
                "DELETE" => Endpoint::DeleteManifest { name, reference },
                _ => not_allowed(MANIFEST, "GET, HEAD, PUT, DELETE"),
            }
        }
        Resource::Blob(d) => {
            let digest = decode(d);
            match method {
                "GET" => Endpoint::GetBlob { name, digest },
                "HEAD" => Endpoint::HeadBlob { name, digest },
                "DELETE" => Endpoint::DeleteBlob { name, digest },
                _ => not_allowed(BLOB, "GET, HEAD, DELETE"),
            }
        }
        Resource::Uploads => match method {
            "POST" => Endpoint::StartUpload {
                name,
                mount: mount_of(query),
            },
            _ => not_allowed(UPLOADS, "POST"),
        },
        Resource::Upload(s) => {
            let session = decode(s);
            match method {
                "GET" | "HEAD" => Endpoint::GetUpload { name, session },
                "PATCH" => Endpoint::PatchUpload { name, session },
                "PUT" => Endpoint::PutUpload { name, session },
                "DELETE" => Endpoint::DeleteUpload { name, session },
                _ => not_allowed(UPLOAD, "GET, HEAD, PATCH, PUT, DELETE"),
            }
        }
        Resource::Tags if get => Endpoint::ListTags { name },
        Resource::Tags => not_allowed(TAGS, "GET, HEAD"),
        Resource::Referrers(d) if get => Endpoint::ListReferrers {
            name,
            digest: decode(d),
        },
        Resource::Referrers(_) => not_allowed(REFERRERS, "GET, HEAD"),
        Resource::Discover if get => Endpoint::RepositoryDiscover { name },
        Resource::Discover => not_allowed(REPOSITORY_DISCOVER, "GET, HEAD"),
        Resource::Extension if get => Endpoint::RepositoryExtension { name },
        Resource::Extension => not_allowed(REPOSITORY_EXTENSION, "GET, HEAD"),
        Resource::Unknown => Endpoint::NotFound {
            v2: true,
            name: Some(name),
        },
    };
    Routed {
        endpoint,
        rewrite: Rewrite::Repository,
    }
}

const MANIFEST: &str = "/v2/{name}/manifests/{reference}";
const BLOB: &str = "/v2/{name}/blobs/{digest}";
const UPLOADS: &str = "/v2/{name}/blobs/uploads/";
const UPLOAD: &str = "/v2/{name}/blobs/uploads/{session}";
const TAGS: &str = "/v2/{name}/tags/list";
const REFERRERS: &str = "/v2/{name}/referrers/{digest}";
const REPOSITORY_DISCOVER: &str = "/v2/{name}/_oci/ext/discover";
const REPOSITORY_EXTENSION: &str = "/v2/{name}/_marina/*";

impl Endpoint {
    /// The route template, as metrics labels and access logs name it: a fixed
    /// string per endpoint, never the repository, digest or session of the request
    /// (they would make label values unbounded and leak names).
    pub fn template(&self) -> &'static str {
        use Endpoint as E;
        match self {
            E::Root => "/",
            E::Document(t) => t,
            E::Healthz => "/healthz",
            E::Readyz => "/readyz",
            E::Metrics => "/metrics",
            E::Token => "/token",
            E::Base => "/v2/",
            E::Catalog => "/v2/_catalog",
            E::Discover => "/v2/_oci/ext/discover",
            E::RegistryExtension => "/v2/_marina/*",
            E::GetManifest { .. }
            | E::HeadManifest { .. }
            | E::PutManifest { .. }
            | E::DeleteManifest { .. } => MANIFEST,
            E::GetBlob { .. } | E::HeadBlob { .. } | E::DeleteBlob { .. } => BLOB,
            E::StartUpload { .. } => UPLOADS,
            E::GetUpload { .. }
            | E::PatchUpload { .. }
            | E::PutUpload { .. }
            | E::DeleteUpload { .. } => UPLOAD,
            E::ListTags { .. } => TAGS,
            E::ListReferrers { .. } => REFERRERS,
            E::RepositoryDiscover { .. } => REPOSITORY_DISCOVER,
            E::RepositoryExtension { .. } => REPOSITORY_EXTENSION,
            E::MethodNotAllowed { template, .. } => template,
            E::NotFound { .. } => UNMATCHED,
        }
    }

    /// The repository the request addresses, as written (not yet validated).
    pub fn repository(&self) -> Option<&str> {
        use Endpoint as E;
        match self {
            E::GetManifest { name, .. }
            | E::HeadManifest { name, .. }
            | E::PutManifest { name, .. }
            | E::DeleteManifest { name, .. }
            | E::GetBlob { name, .. }
            | E::HeadBlob { name, .. }
            | E::DeleteBlob { name, .. }
            | E::StartUpload { name, .. }
            | E::GetUpload { name, .. }
            | E::PatchUpload { name, .. }
            | E::PutUpload { name, .. }
            | E::DeleteUpload { name, .. }
            | E::ListTags { name }
            | E::ListReferrers { name, .. }
            | E::RepositoryDiscover { name }
            | E::RepositoryExtension { name } => Some(name),
            E::MethodNotAllowed { name, .. } | E::NotFound { name, .. } => name.as_deref(),
            _ => None,
        }
    }

    /// The methods the endpoint's path answers, for the `Allow` header of a 405
    /// (RFC 9110); `None` for paths the table does not know.
    pub fn allow(&self) -> Option<&'static str> {
        use Endpoint as E;
        Some(match self {
            E::Root
            | E::Healthz
            | E::Readyz
            | E::Metrics
            | E::Base
            | E::Catalog
            | E::Discover
            | E::RegistryExtension
            | E::ListTags { .. }
            | E::ListReferrers { .. }
            | E::RepositoryDiscover { .. }
            | E::RepositoryExtension { .. } => "GET",
            E::Token => "GET, POST",
            E::GetManifest { .. }
            | E::HeadManifest { .. }
            | E::PutManifest { .. }
            | E::DeleteManifest { .. } => "GET, HEAD, PUT, DELETE",
            E::GetBlob { .. } | E::HeadBlob { .. } | E::DeleteBlob { .. } => "GET, HEAD, DELETE",
            E::StartUpload { .. } => "POST",
            E::GetUpload { .. }
            | E::PatchUpload { .. }
            | E::PutUpload { .. }
            | E::DeleteUpload { .. } => "GET, PATCH, PUT, DELETE",
            E::MethodNotAllowed { allow, .. } => allow,
            E::Document(_) | E::NotFound { .. } => return None,
        })
    }

    /// What a caller needs to be let through to this endpoint.
    pub fn required_access(&self) -> Need {
        use Endpoint as E;
        let on = |name: &str, action| Need::Repository {
            name: name.to_string(),
            action,
            mount: None,
        };
        match self {
            E::Root | E::Document(_) | E::Healthz | E::Readyz => Need::Open,
            E::NotFound { v2: false, .. } => Need::Open,
            E::Token => Need::Token,
            // Metrics tell how busy the registry is: signed-in callers only (or open
            // on the separate `metrics_listen` address, which has no access control).
            E::Metrics | E::Base => Need::Base,
            E::MethodNotAllowed { name: None, .. } | E::NotFound { name: None, .. } => Need::Base,
            E::Catalog => Need::Catalog,
            E::Discover | E::RegistryExtension => Need::Extension,
            E::PutManifest { name, .. } => on(name, Action::Push),
            E::DeleteManifest { name, .. } | E::DeleteBlob { name, .. } => on(name, Action::Delete),
            E::StartUpload { name, mount } => Need::Repository {
                name: name.clone(),
                action: Action::Push,
                mount: mount.clone(),
            },
            E::GetUpload { name, .. }
            | E::PatchUpload { name, .. }
            | E::PutUpload { name, .. }
            | E::DeleteUpload { name, .. } => on(name, Action::Push),
            E::GetManifest { name, .. }
            | E::HeadManifest { name, .. }
            | E::GetBlob { name, .. }
            | E::HeadBlob { name, .. }
            | E::ListTags { name }
            | E::ListReferrers { name, .. }
            | E::RepositoryDiscover { name }
            | E::RepositoryExtension { name } => on(name, Action::Pull),
            E::MethodNotAllowed {
                name: Some(name), ..
            }
            | E::NotFound {
                name: Some(name), ..
            } => on(name, Action::Pull),
        }
    }
}

#[cfg(test)]
mod tests;
