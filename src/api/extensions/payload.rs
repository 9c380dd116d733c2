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

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds
/// (`2024-05-01T12:34:56.789Z`).
pub fn rfc3339(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

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
