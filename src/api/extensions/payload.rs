//! Versioned JSON bodies: a poem-openapi payload whose `Content-Type` is the listing
//! extension's own media type, content negotiation on `Accept`, and the time format.

use std::marker::PhantomData;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry as OaRegistry};
use poem_openapi::types::{ToJSON, Type};

use crate::api::error::ApiError;
use crate::oci::ErrorCode;

/// A media type a versioned body is served as.
pub trait MediaType: Send {
    /// The `Content-Type` value.
    const MEDIA_TYPE: &'static str;
}

/// A JSON body served with the media type `M` (documented with `T`'s schema).
pub struct Versioned<T, M>(pub T, PhantomData<fn() -> M>);

impl<T, M> Versioned<T, M> {
    /// Wraps a body.
    pub fn new(body: T) -> Self {
        Versioned(body, PhantomData)
    }
}

impl<T: Type + Send, M: MediaType> Payload for Versioned<T, M> {
    const CONTENT_TYPE: &'static str = M::MEDIA_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut OaRegistry) {
        T::register(registry);
    }
}

impl<T: ToJSON + Send, M: MediaType> IntoResponse for Versioned<T, M> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(M::MEDIA_TYPE)
            .body(self.0.to_json_string())
    }
}

/// Checks that an `Accept` header admits `media_type` (directly, as `application/json`,
/// or through a wildcard); no header admits everything. Otherwise 406, naming what
/// the endpoint serves, so a client asking only for a future version learns which one
/// this registry speaks.
pub fn negotiate(accept: Option<&str>, media_type: &str) -> Result<(), ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(());
    };
    let admits = accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let ty = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        !refused && ["*/*", "application/*", "application/json", media_type].contains(&ty.as_str())
    });
    if admits {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::Unsupported,
            format!(
                "this endpoint serves {media_type} (or application/json); Accept was {accept:?}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_table() {
        let mt = "application/vnd.marina.list.tags.v1+json";
        let ok = [
            None,
            Some(""),
            Some("*/*"),
            Some("application/json"),
            Some(mt),
            Some("application/vnd.marina.list.tags.v2+json, application/vnd.marina.list.tags.v1+json;q=0.5"),
            Some("text/html, application/*;q=0.1"),
        ];
        for a in ok {
            assert!(negotiate(a, mt).is_ok(), "{a:?}");
        }
        let refused = [
            "application/vnd.marina.list.tags.v2+json",
            "text/html",
            "application/json;q=0",
        ];
        for a in refused {
            let e = negotiate(Some(a), mt).unwrap_err();
            assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE, "{a:?}");
        }
    }
}
