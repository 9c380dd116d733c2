//! `GET /v2/_oci/ext/discover` and `GET /v2/<name>/_oci/ext/discover`: the spec's
//! base extension, announcing which extensions (here `_marina`) and endpoints the
//! registry and a repository offer.

use crate::api::security::Login;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use poem::Request;

use super::{ExtensionTags, DEFINITION_PATH, NAME};
use crate::api::error::ApiError;
use crate::api::MountPrefix;
use crate::oci::RepoName;

/// The discover endpoints.
pub struct DiscoverApi(pub std::sync::Arc<crate::registry::Registry>);

/// One extension a registry offers (the spec's `_oci` extension format).
#[derive(Debug, Clone, Object)]
pub struct Extension {
    /// Name as it appears in URL paths, with its leading `_`.
    pub name: String,
    /// Where the extension is documented.
    pub url: String,
    /// What it is for.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The endpoints it provides at this level (registry or repository).
    pub endpoints: Vec<String>,
}

/// The discover response body.
#[derive(Debug, Clone, Object)]
pub struct ExtensionList {
    /// The extensions offered.
    pub extensions: Vec<Extension>,
}

/// Answer of a discover request.
#[derive(ApiResponse)]
pub enum DiscoverResponse {
    /// The extensions offered at this level.
    #[oai(status = 200)]
    Ok(Json<ExtensionList>),
}

/// The URL of the definition, under the prefix the registry is mounted at.
fn definition_url(req: &Request) -> String {
    let prefix = req
        .extensions()
        .get::<MountPrefix>()
        .map(|p| p.0.as_str())
        .unwrap_or("");
    format!("{prefix}{DEFINITION_PATH}")
}

fn listing(url: String, endpoints: Vec<String>) -> ExtensionList {
    ExtensionList {
        extensions: vec![Extension {
            name: NAME.to_string(),
            url,
            description: Some(
                "Listing: repositories of the registry or a namespace; tags with digests and push \
                 times; manifests tagged and untagged; referrers; filtered by artifact type and \
                 annotation, sorted by name or push time, paged by cursor."
                    .to_string(),
            ),
            endpoints,
        }],
    }
}

/// The registry-level endpoints of the listing extension.
pub fn registry_endpoints() -> Vec<String> {
    vec![format!("/v2/{NAME}/list/repositories")]
}

/// The repository-level endpoints of the listing extension for `repo`; the
/// `referrers` module only while the referrers API is on (one switch governs both).
pub fn repository_endpoints(repo: &str, referrers: bool) -> Vec<String> {
    ["tags", "manifests", "referrers"]
        .iter()
        .filter(|m| referrers || **m != "referrers")
        .map(|m| format!("/v2/{repo}/{NAME}/list/{m}"))
        .collect()
}

#[OpenApi]
impl DiscoverApi {
    /// Discover registry extensions
    ///
    /// The extensions this registry offers at registry level, with their endpoints.
    #[oai(
        path = "/v2/_oci/ext/discover",
        method = "get",
        operation_id = "discoverExtensions",
        tag = "ExtensionTags::Extensions"
    )]
    async fn registry(&self, req: &Request, _login: Login) -> Result<DiscoverResponse, ApiError> {
        Ok(DiscoverResponse::Ok(Json(listing(
            definition_url(req),
            registry_endpoints(),
        ))))
    }

    /// Discover repository extensions
    ///
    /// The extensions this registry offers for one repository, with their endpoints.
    #[oai(
        path = "/v2/:name/_oci/ext/discover",
        method = "get",
        operation_id = "discoverRepositoryExtensions",
        tag = "ExtensionTags::Extensions"
    )]
    async fn repository(
        &self,
        req: &Request,
        _login: Login,
        /// Repository name (may contain `/`).
        name: Path<RepoName>,
    ) -> Result<DiscoverResponse, ApiError> {
        let repo = name.0;
        Ok(DiscoverResponse::Ok(Json(listing(
            definition_url(req),
            repository_endpoints(repo.as_str(), self.0.config().referrers),
        ))))
    }
}
