//! Registry extensions, following the distribution-spec's extension rules:
//! `GET /v2/_oci/ext/discover` and `GET /v2/<name>/_oci/ext/discover` announce them,
//! and Marina's own extension lives under `_marina`:
//!
//! - `GET /v2/_marina/list/repositories` (registry level)
//! - `GET /v2/<name>/_marina/list/{tags,manifests,referrers}` (repository level)
//!
//! `_marina` is the project's name, as the spec asks (`_<extension>` "aligning with
//! the project"); it is neither reserved (`_oci`, `_catalog`) nor taken in the
//! spec's table (`_chainguard`, `_docker`), and it cannot clash with a repository
//! path since repository name components never start with `_`. Responses are
//! versioned JSON with the extension's own media types (see [`model`]).

mod discover;
mod listing;
pub(crate) mod model;
pub(crate) mod params;
pub(crate) mod payload;

use std::sync::Arc;

use poem_openapi::Tags;

use crate::registry::Registry;

/// The extension's name in URL paths.
pub const NAME: &str = crate::oci::media_types::MARINA_EXTENSION;

/// Where the registry serves the extension's definition (`spec/extensions/_marina.md`),
/// which `_oci/ext/discover` names as the extension's documentation.
pub const DEFINITION_PATH: &str = "/extensions/_marina.md";

/// The extension's definition, in the style of the spec's `extensions/_<ext>.md`.
pub const DEFINITION: &str = include_str!("../../../spec/extensions/_marina.md");

/// Operation groups of the extensions in the OpenAPI document and `/docs`.
#[derive(Tags)]
pub enum ExtensionTags {
    /// Discovering the registry's extensions (`_oci/ext/discover`).
    Extensions,
    /// The `_marina` listing extension: repositories, tags, manifests and referrers,
    /// filtered, sorted and paged.
    Listing,
}

/// The extension operations, to merge into the OpenAPI service.
pub type ExtensionApis = (discover::DiscoverApi, listing::ListingExtApi);

/// Builds [`ExtensionApis`] over a registry.
pub fn apis(registry: Arc<Registry>) -> ExtensionApis {
    (
        discover::DiscoverApi(registry.clone()),
        listing::ListingExtApi(registry),
    )
}
