//! Request and response bodies the OCI API needs beyond poem-openapi's payloads: a
//! raw request body that does not insist on a Content-Type (clients often send
//! none), a manifest body served with the exact media type it was pushed with, and
//! a streamed blob body.

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use poem::{Body, IntoResponse, Request, RequestBody, Response};
use poem_openapi::registry::{
    MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry as OaRegistry,
};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// A boxed stream of body bytes, as the registry layer consumes them.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

fn binary_schema() -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        format: Some("binary"),
        ..MetaSchema::new("string")
    }))
}

/// Any request body, with or without Content-Type, kept as a stream.
pub struct RawBody {
    /// The body.
    pub body: Body,
    /// The request's Content-Type, if any.
    pub content_type: Option<String>,
    /// The length its `Content-Length` declares (the server holds the body
    /// to it), if any.
    pub declared_len: Option<u64>,
}

impl RawBody {
    /// The body as a byte stream for the registry layer.
    pub fn into_stream(self) -> ByteStream {
        Box::pin(self.body.into_bytes_stream())
    }

    /// Reads the whole body, failing with `None` once it exceeds `limit` bytes.
    pub async fn read_limited(self, limit: u64) -> io::Result<Result<Vec<u8>, u64>> {
        let mut stream = self.into_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > limit {
                // Read (and drop) the rest, up to a bound, so the client is still
                // reading when the 413 arrives instead of hitting a reset connection.
                let mut seen = (buf.len() + chunk.len()) as u64;
                drop(buf);
                let drain_limit = limit.saturating_add(64 << 20);
                while seen <= drain_limit {
                    match stream.next().await {
                        Some(Ok(c)) => seen += c.len() as u64,
                        _ => break,
                    }
                }
                return Ok(Err(seen));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Ok(buf))
    }
}

impl<'a> ApiExtractor<'a> for RawBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some("Raw bytes; any Content-Type (or none) is accepted."),
            content: vec![MetaMediaType {
                content_type: "application/octet-stream",
                schema: binary_schema(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let declared_len = request
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        Ok(RawBody {
            body: body.take().unwrap_or_else(|_| Body::empty()),
            content_type: request.content_type().map(str::to_string),
            declared_len,
        })
    }
}

/// A manifest request body (documented with the manifest media types).
pub struct ManifestBody(pub RawBody);

impl<'a> ApiExtractor<'a> for ManifestBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<MetaRequest> {
        let json = || MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")));
        Some(MetaRequest {
            description: Some(
                "The manifest, stored byte for byte. Content-Type should equal its mediaType.",
            ),
            content: [
                crate::oci::media_types::OCI_MANIFEST,
                crate::oci::media_types::OCI_INDEX,
                crate::oci::media_types::DOCKER_MANIFEST,
                crate::oci::media_types::DOCKER_MANIFEST_LIST,
            ]
            .into_iter()
            .map(|content_type| MetaMediaType {
                content_type,
                schema: json(),
            })
            .collect(),
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(ManifestBody(
            RawBody::from_request(request, body, opts).await?,
        ))
    }

    fn register(_registry: &mut OaRegistry) {}
}

/// A manifest response, served with the media type it was pushed with.
pub struct ManifestPayload {
    /// Exact bytes (empty for HEAD).
    pub bytes: Bytes,
    /// Content-Type to send.
    pub media_type: String,
}

impl IntoResponse for ManifestPayload {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(self.media_type)
            .body(self.bytes)
    }
}

impl poem_openapi::payload::Payload for ManifestPayload {
    const CONTENT_TYPE: &'static str = "application/vnd.oci.image.manifest.v1+json";
    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
    }
}

/// A JSON document with an OCI media type (the referrers index).
pub struct IndexPayload(pub Vec<u8>);

impl IntoResponse for IndexPayload {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(crate::oci::media_types::OCI_INDEX)
            .body(self.0)
    }
}

impl poem_openapi::payload::Payload for IndexPayload {
    const CONTENT_TYPE: &'static str = "application/vnd.oci.image.index.v1+json";
    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
    }
}

/// A blob body streamed from disk (empty for HEAD).
pub struct BlobPayload(pub Body);

impl IntoResponse for BlobPayload {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("application/octet-stream")
            .body(self.0)
    }
}

impl poem_openapi::payload::Payload for BlobPayload {
    const CONTENT_TYPE: &'static str = "application/octet-stream";
    fn schema_ref() -> MetaSchemaRef {
        binary_schema()
    }
}
