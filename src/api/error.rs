//! The one place where failures become HTTP: every [`RegistryError`] (and every
//! framework error) is mapped, by `match`, to a status, an OCI error code and the
//! spec's JSON envelope.

use poem::http::{HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry as OaRegistry};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object};

use crate::oci::{DigestError, ErrorCode, ManifestError, NameError};
use crate::registry::{RegistryError, UpstreamError};

/// One error of the envelope (documented in the OpenAPI schema).
#[derive(Debug, Clone, Object)]
pub struct ErrorItem {
    /// One of the spec's fourteen codes.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Extra context, when there is any.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<serde_json::Value>,
}

/// The spec's error body: `{"errors":[{code,message,detail}]}`.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// The errors.
    pub errors: Vec<ErrorItem>,
}

/// An error response: status, OCI code, message and any extra headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OCI error code.
    pub code: ErrorCode,
    /// Explanation for humans.
    pub message: String,
    /// Optional structured detail.
    pub detail: Option<serde_json::Value>,
    /// Headers to add (e.g. `Range` on a 416).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// Builds an error with no detail.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Adds detail.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Shorthand for a 400 with `code`.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        match e {
            NameError::InvalidName(_) => {
                ApiError::bad_request(ErrorCode::NameInvalid, e.to_string())
            }
            NameError::InvalidTag(_) => {
                ApiError::bad_request(ErrorCode::ManifestInvalid, e.to_string())
            }
        }
    }
}

impl From<DigestError> for ApiError {
    fn from(e: DigestError) -> Self {
        ApiError::bad_request(ErrorCode::DigestInvalid, e.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let msg = e.to_string();
        match e {
            E::NameUnknown(_) => ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NameUnknown, msg),
            E::Name(n) => n.into(),
            E::Digest(d) => d.into(),
            E::DigestMismatch { expected, actual } => {
                ApiError::bad_request(ErrorCode::DigestInvalid, msg)
                    .with_detail(serde_json::json!({ "expected": expected, "actual": actual }))
            }
            E::BlobUnknown(_) => ApiError::new(StatusCode::NOT_FOUND, ErrorCode::BlobUnknown, msg),
            E::ManifestUnknown(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::ManifestUnknown, msg)
            }
            E::UploadUnknown(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::BlobUploadUnknown, msg)
            }
            E::RangeNotSatisfiable { size, .. } | E::RangeInverted { size, .. } => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::BlobUploadInvalid,
                msg,
            )
            .with_header("Range", upload_range(size)),
            E::SizeInvalid(_) => ApiError::bad_request(ErrorCode::SizeInvalid, msg),
            E::BodyIncomplete(_) => ApiError::bad_request(ErrorCode::BlobUploadInvalid, msg),
            E::ManifestInvalid(ManifestError::Descriptor(_)) => {
                ApiError::bad_request(ErrorCode::ManifestInvalid, msg)
            }
            E::ManifestInvalid(_) => ApiError::bad_request(ErrorCode::ManifestInvalid, msg),
            E::ManifestBlobUnknown(mut missing) => {
                // A digest referenced twice (config and layer) is missing once.
                let mut seen = std::collections::HashSet::new();
                missing.retain(|d| seen.insert(d.clone()));
                // Bounded: an error is never larger than the request that caused it.
                const SHOWN: usize = 10;
                let count = missing.len();
                let shown = &missing[..count.min(SHOWN)];
                let more = match count - shown.len() {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                ApiError::bad_request(
                    ErrorCode::ManifestBlobUnknown,
                    format!(
                        "manifest references {count} unknown blobs or manifests: {}{more}",
                        shown.join(", ")
                    ),
                )
                .with_detail(serde_json::json!({ "missing": shown, "count": count }))
            }
            E::ManifestTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::SizeInvalid, msg)
            }
            E::Unsupported(_) => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, msg)
            }
            E::ReferrersDisabled => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::Unsupported, msg)
            }
            // The spec has no code for a full disk; UNSUPPORTED is the one that
            // claims nothing about the request. The status says what happened.
            E::Collected(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::BlobUploadInvalid,
                msg,
            )
            .with_header("Retry-After", "1".into()),
            E::StorageFull(_) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                ErrorCode::Unsupported,
                "insufficient storage: the registry's storage is full; nothing was stored, retry once space is freed",
            ),
            E::ReserveKept(_) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::Unsupported, msg)
            }
            E::Denied(_) => ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Denied, msg),
            E::NamespaceUnknown(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NameUnknown, msg)
            }
            E::Upstream { error, .. } => upstream_error(error, msg),
            E::UpstreamCorrupt { .. } => {
                tracing::warn!(%msg, "pull-through: refused bad upstream content");
                ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::DigestInvalid, msg)
            }
            E::Unavailable(cause) => {
                tracing::warn!(%cause, "storage unavailable");
                retry_later("storage unavailable: a storage backend does not answer; retry later")
            }
            E::OutOfHandles(cause) => {
                tracing::error!(%cause, "out of file descriptors: raise the limit (ulimit -n) or lower the load");
                retry_later("the registry is out of file handles; nothing was stored, retry later")
            }
            E::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Unsupported,
                    "internal storage error; see the server log",
                )
            }
        }
    }
}

/// Seconds a client is asked to wait (`Retry-After`) when a storage backend
/// does not answer.
const UNAVAILABLE_RETRY_AFTER: &str = "5";

/// A 503 that asks the client to come back after [`UNAVAILABLE_RETRY_AFTER`].
fn retry_later(msg: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unsupported, msg)
        .with_header("Retry-After", UNAVAILABLE_RETRY_AFTER.into())
}

/// The answer for an upstream that could not supply something: 504 when it
/// timed out, 429 (with its `Retry-After`) when it throttles, else 502. The
/// spec has no code for a gateway; UNSUPPORTED claims nothing about the request.
fn upstream_error(error: UpstreamError, msg: String) -> ApiError {
    match error {
        UpstreamError::TimedOut(_) => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, ErrorCode::Unsupported, msg)
        }
        UpstreamError::Throttled(after) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Toomanyrequests,
            msg,
        )
        .with_header("Retry-After", after.unwrap_or(1).to_string()),
        UpstreamError::TooLarge { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::SizeInvalid, msg)
        }
        _ => ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::Unsupported, msg),
    }
}

/// The `Range` value of an upload holding `size` bytes: `0-<last byte>`.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

impl ApiError {
    /// The envelope of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            errors: vec![ErrorItem {
                code: self.code.as_str().to_string(),
                message: self.message.clone(),
                detail: self.detail.clone(),
            }],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let json = self.body().to_json_string();
        let mut resp = Response::builder()
            .status(self.status)
            .content_type("application/json")
            .body(json);
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

const DOCUMENTED: [(u16, &str); 11] = [
    (400, "Invalid name, reference, digest, manifest or upload (`NAME_INVALID`, `DIGEST_INVALID`, `MANIFEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`, `SIZE_INVALID`, `BLOB_UPLOAD_INVALID`)"),
    (401, "Authentication required (`UNAUTHORIZED`)"),
    (403, "Access denied (`DENIED`)"),
    (404, "Unknown repository, blob, manifest or upload session (`NAME_UNKNOWN`, `BLOB_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UPLOAD_UNKNOWN`)"),
    (405, "Operation disabled by the operator (`UNSUPPORTED`)"),
    (413, "Manifest larger than the configured limit (`SIZE_INVALID`)"),
    (416, "Chunk out of order; `Range` gives what the upload holds (`BLOB_UPLOAD_INVALID`)"),
    (429, "Too many requests (`TOOMANYREQUESTS`)"),
    (500, "An internal error; nothing was stored, and the server log says why (`UNSUPPORTED`)"),
    (503, "A blob was garbage-collected while the same content was being stored; push it again (`BLOB_UPLOAD_INVALID`, with `Retry-After`). Or a storage backend does not answer; retry later (`UNSUPPORTED`, with `Retry-After`)"),
    (507, "The registry's storage is full; nothing was stored (`UNSUPPORTED`)"),
];

impl ApiResponse for ApiError {
    const BAD_REQUEST_HANDLER: bool = true;

    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json",
                        schema: <poem_openapi::payload::Json<ErrorBody> as poem_openapi::payload::Payload>::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut OaRegistry) {
        <ErrorBody as poem_openapi::types::Type>::register(registry);
    }

    fn from_parse_request_error(err: poem::Error) -> Self {
        // A typed parameter (`api::params`) names its own OCI error.
        let reason = err
            .downcast_ref::<poem_openapi::error::ParsePathError>()
            .map(|p| p.reason.as_str())
            .or_else(|| {
                err.downcast_ref::<poem_openapi::error::ParseParamError>()
                    .map(|p| p.reason.as_str())
            });
        reason
            .and_then(super::params::parameter_error)
            .unwrap_or_else(|| {
                ApiError::bad_request(ErrorCode::Unsupported, format!("invalid request: {err}"))
            })
    }
}

/// Turns any framework error (unknown route, wrong method, bad header) into the
/// spec's envelope, so no response escapes without it.
pub fn framework_error(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.clone().into_response();
    }
    if err.is::<poem_openapi::error::ParseParamError>()
        || err.is::<poem_openapi::error::ParsePathError>()
    {
        return ApiError::from_parse_request_error(err).into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => ErrorCode::Unsupported,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Denied,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::SizeInvalid,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::Toomanyrequests,
        _ => ErrorCode::Unsupported,
    };
    let message = match status {
        StatusCode::NOT_FOUND => "no such endpoint in the OCI Distribution API".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this endpoint".to_string(),
        _ => err.to_string(),
    };
    let status = if status.is_server_error() {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::new(status, code, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framework_parameter_errors_get_the_parameter_s_code() {
        let reason = format!(
            "failed to parse \"Digest\": {}",
            <crate::oci::Digest as poem_openapi::types::ParseFromParameter>::parse_from_parameter(
                "x"
            )
            .err()
            .unwrap()
            .into_message()
        );
        for err in [
            poem::Error::from(poem_openapi::error::ParseParamError {
                name: "mount",
                reason: reason.clone(),
            }),
            poem::Error::from(poem_openapi::error::ParsePathError {
                name: "digest",
                reason,
            }),
        ] {
            let resp = framework_error(err);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn an_unreachable_backend_or_no_file_handles_is_a_503_with_retry_after_and_other_failures_stay_500(
    ) {
        use crate::store::StoreError;
        use std::io;
        let retry_after = |e: &ApiError| {
            e.headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                .map(|(_, v)| v.clone())
        };
        for unavailable in [
            RegistryError::from(StoreError::Unavailable("connection refused".into())),
            RegistryError::from(io::Error::new(io::ErrorKind::TimedOut, "no answer")),
            RegistryError::from(io::Error::new(io::ErrorKind::ConnectionRefused, "refused")),
            RegistryError::from(io::Error::from_raw_os_error(libc::EMFILE)),
            RegistryError::from(io::Error::from_raw_os_error(libc::ENFILE)),
        ] {
            let e = ApiError::from(unavailable);
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.code, ErrorCode::Unsupported);
            let after: u32 = retry_after(&e).expect("Retry-After").parse().unwrap();
            assert!(after > 0);
            let resp = e.into_response();
            assert!(resp.headers().contains_key("retry-after"));
        }
        for internal in [
            RegistryError::from(StoreError::Postgres("42P01: relation missing".into())),
            RegistryError::from(io::Error::other("bad descriptor")),
        ] {
            let e = ApiError::from(internal);
            assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(retry_after(&e), None);
        }
    }

    #[test]
    fn untyped_parameter_errors_are_unsupported() {
        let err: poem::Error = poem_openapi::error::ParseParamError {
            name: "n",
            reason: "failed to parse \"integer\": bad".into(),
        }
        .into();
        assert_eq!(
            ApiError::from_parse_request_error(err).code,
            ErrorCode::Unsupported
        );
    }
}
