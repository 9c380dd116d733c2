//! What a request needs to be allowed. The route table
//! (`Endpoint::required_access` in the api layer's route module) says it for every endpoint.

use super::actions::Action;

/// The source of a cross-repository mount (`POST …/blobs/uploads/?mount=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountFrom {
    /// `from=<repository>`.
    Repository(String),
    /// No `from`: the registry may look in any repository.
    Anywhere,
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Outside the registry API (`/docs`, `/openapi.json`, `/healthz`, …): open to all.
    Open,
    /// Marina's token endpoint.
    Token,
    /// `GET /v2/` (and unknown `/v2/…` paths): any authenticated caller.
    Base,
    /// `GET /v2/_catalog`: answered with the repositories the caller may pull.
    Catalog,
    /// A registry-level extension endpoint (`_oci/ext/discover`, `_marina/…`): open
    /// to every caller that may pull something; listings show only the
    /// repositories the caller may pull.
    Extension,
    /// An action on a repository.
    Repository {
        /// The repository, as written in the path.
        name: String,
        /// The action.
        action: Action,
        /// For a mount: where the blob comes from (which needs `pull` there too).
        mount: Option<MountFrom>,
    },
}
