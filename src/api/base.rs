//! `GET /v2/` (end-1): the API version check every client starts with.

use crate::api::security::Login;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;

/// The base endpoint.
pub struct BaseApi;

/// The empty JSON object the version check answers with.
#[derive(Debug, Object)]
pub struct Empty {}

/// Answer of the version check.
#[derive(ApiResponse)]
pub enum BaseResponse {
    /// The registry implements the OCI Distribution API.
    #[oai(status = 200)]
    Ok(
        Json<Empty>,
        #[oai(header = "Docker-Distribution-API-Version")] String,
    ),
}

#[OpenApi]
impl BaseApi {
    /// Check API support
    ///
    /// 200 when the registry implements the OCI Distribution API.
    #[oai(
        path = "/v2/",
        method = "get",
        operation_id = "apiVersion",
        tag = "ApiTags::Base"
    )]
    async fn version(&self, _login: Login) -> BaseResponse {
        BaseResponse::Ok(Json(Empty {}), "registry/2.0".to_string())
    }
}
