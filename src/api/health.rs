//! What orchestrators and monitoring ask: `/healthz` (the process answers),
//! `/readyz` (the stores answer and the schema is current) and `/metrics`
//! (Prometheus). With access control on, `/metrics` on the main address needs a
//! signed-in user; `--metrics-listen` serves these three open on a second address.

use std::sync::Arc;

use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi};

use super::error::ApiError;
use super::security::Login;
use super::ApiTags;
use crate::registry::Registry;

/// The operations endpoints.
pub struct HealthApi(pub Arc<Registry>);

/// Answer of `/healthz`.
#[derive(ApiResponse)]
pub enum LiveResponse {
    /// The process is up and serving requests.
    #[oai(status = 200)]
    Ok(PlainText<&'static str>),
}

/// Answer of `/readyz`.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The metadata and blob stores answer and the schema is current.
    #[oai(status = 200)]
    Ready(PlainText<&'static str>),
    /// A store does not answer or its schema is not current; the body says which.
    #[oai(status = 503)]
    NotReady(PlainText<String>),
}

/// Answer of `/metrics`.
#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Every metric, in Prometheus's text format.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

#[OpenApi]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process serves requests; it checks nothing else, so a
    /// restart is the only remedy for a failure.
    #[oai(
        path = "/healthz",
        method = "get",
        operation_id = "healthz",
        tag = "ApiTags::Operations"
    )]
    async fn healthz(&self) -> LiveResponse {
        LiveResponse::Ok(PlainText("ok"))
    }

    /// Readiness
    ///
    /// 200 when the metadata store and the blob store answer and the database
    /// schema is the one this build needs; 503 with the reason otherwise.
    #[oai(
        path = "/readyz",
        method = "get",
        operation_id = "readyz",
        tag = "ApiTags::Operations"
    )]
    async fn readyz(&self) -> ReadyResponse {
        match self.0.ready().await {
            Ok(()) => ReadyResponse::Ready(PlainText("ready")),
            Err(why) => ReadyResponse::NotReady(PlainText(why)),
        }
    }

    /// Prometheus metrics
    ///
    /// Requests by route template, method and status; latency; bytes in and out;
    /// uploads in progress; what the stores hold; garbage collection; refusals by
    /// access control; storage-full errors; build information.
    #[oai(
        path = "/metrics",
        method = "get",
        operation_id = "metrics",
        tag = "ApiTags::Operations"
    )]
    async fn metrics(&self, _login: Login) -> Result<MetricsResponse, ApiError> {
        let totals = self.0.storage_totals().await;
        Ok(MetricsResponse::Ok(PlainText(
            self.0.metrics().encode(totals),
        )))
    }
}
