//! Typed parameters: repository names, digests, tags, references and upload ids
//! are parsed once, by poem-openapi, into the `oci` and `registry` types. Their
//! schema patterns come from the grammar constants in `oci`, so the OpenAPI
//! document and the parsers say the same thing; a value that does not parse
//! answers its own OCI error (`NAME_INVALID`, `DIGEST_INVALID`,
//! `MANIFEST_INVALID`, `BLOB_UPLOAD_UNKNOWN`) through [`parameter_error`].

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};

use super::error::ApiError;
use crate::oci::digest::DIGEST_PATTERN;
use crate::oci::name::{MAX_NAME_LEN, MAX_TAG_LEN, NAME_PATTERN, TAG_PATTERN};
use crate::oci::reference::{ReferenceError, REFERENCE_PATTERN};
use crate::oci::Algorithm;
use crate::oci::{Digest, ErrorCode, Reference, RepoName, Tag};
use crate::registry::uploads::UPLOAD_ID_PATTERN;
use crate::registry::{ChunkRange, UploadId};

/// Separates the OCI code from the message in a parse error's text.
const CODE_SEPARATOR: &str = " :: ";

/// The text of a parse error: the OCI error it answers, encoded so that
/// [`parameter_error`] finds it again in poem-openapi's message.
fn encode(e: ApiError) -> String {
    format!("{}{CODE_SEPARATOR}{}", e.code.as_str(), e.message)
}

/// The OCI error of a parameter that did not parse: the code and message its
/// type gave, or `None` for parameters without a typed grammar.
pub(crate) fn parameter_error(reason: &str) -> Option<ApiError> {
    // poem-openapi writes `failed to parse "<type>": <our text>`, and may wrap
    // that again; the code is the word before the separator.
    let (before, message) = reason.split_once(CODE_SEPARATOR)?;
    let code = ErrorCode::parse(before.rsplit(' ').next()?)?;
    // An optional parameter's error ends `(occurred while parsing "…")`.
    let message = match message.rfind(" (occurred while parsing ") {
        Some(i) if message.ends_with("\")") => &message[..i],
        _ => message,
    };
    let status = match code {
        ErrorCode::BlobUploadUnknown | ErrorCode::ManifestUnknown => {
            poem::http::StatusCode::NOT_FOUND
        }
        _ => poem::http::StatusCode::BAD_REQUEST,
    };
    Some(ApiError::new(status, code, message))
}

/// One typed parameter: its schema name, pattern and longest length, and how it
/// parses.
macro_rules! typed_parameter {
    ($ty:ty, $name:literal, $pattern:expr, $max:expr, $parse:expr) => {
        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new(MetaSchema {
                    pattern: Some($pattern.to_string()),
                    max_length: $max,
                    ..MetaSchema::new("string")
                }))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromParameter for $ty {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                let parse: fn(&str) -> Result<$ty, ApiError> = $parse;
                parse(value).map_err(|e| ParseError::custom(encode(e)))
            }

            /// A required parameter left out answers the type's own error,
            /// as an empty value does (not the framework's generic one).
            fn parse_from_parameters<I: IntoIterator<Item = A>, A: AsRef<str>>(
                values: I,
            ) -> ParseResult<Self> {
                match values.into_iter().next() {
                    Some(value) => Self::parse_from_parameter(value.as_ref()),
                    None => Self::parse_from_parameter(""),
                }
            }
        }
    };
}

typed_parameter!(
    RepoName,
    "RepositoryName",
    NAME_PATTERN,
    Some(MAX_NAME_LEN),
    |s| s.parse::<RepoName>().map_err(ApiError::from)
);
typed_parameter!(Digest, "Digest", DIGEST_PATTERN, None, |s| s
    .parse::<Digest>()
    .map_err(ApiError::from));
typed_parameter!(Reference, "Reference", REFERENCE_PATTERN, None, |s| s
    .parse::<Reference>()
    .map_err(|e| match e {
        ReferenceError::Digest(d) => d.into(),
        ReferenceError::Tag(t) => t.into(),
    }));
typed_parameter!(Tag, "Tag", TAG_PATTERN, Some(MAX_TAG_LEN), |s| s
    .parse::<Tag>()
    .map_err(ApiError::from));

/// A reference a manifest is looked up by (`GET`, `HEAD`, `DELETE`): a tag that
/// breaks the grammar names no manifest (404 `MANIFEST_UNKNOWN`); a malformed
/// digest is still `DIGEST_INVALID`.
pub(crate) struct Lookup(pub Reference);

typed_parameter!(Lookup, "Reference", REFERENCE_PATTERN, None, |s| s
    .parse::<Reference>()
    .map(Lookup)
    .map_err(|e| match e {
        ReferenceError::Digest(d) => d.into(),
        ReferenceError::Tag(_) =>
            crate::registry::RegistryError::ManifestUnknown(s.to_string()).into(),
    }));
typed_parameter!(UploadId, "UploadId", UPLOAD_ID_PATTERN, Some(64), |s| s
    .parse::<UploadId>()
    .map_err(ApiError::from));

/// A chunk's `Content-Range` (see [`super::headers::parse_content_range`]);
/// blank is none.
pub(crate) struct ContentRange(pub Option<ChunkRange>);

typed_parameter!(
    ContentRange,
    "ContentRange",
    super::headers::CONTENT_RANGE_PATTERN,
    None,
    |s| super::uploads::chunk_range(Some(s)).map(ContentRange)
);

/// The hash algorithm a chunked upload is opened for (`digest-algorithm`);
/// blank is the default, sha256.
pub(crate) struct DigestAlgorithm(pub Algorithm);

typed_parameter!(
    DigestAlgorithm,
    "DigestAlgorithm",
    "^(sha256|sha512)?$",
    None,
    |s| match s {
        "" => Ok(DigestAlgorithm(Algorithm::Sha256)),
        s => s
            .parse::<Algorithm>()
            .map(DigestAlgorithm)
            .map_err(ApiError::from),
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Each type's parse error, as poem-openapi reports it, comes back as the
    /// type's own OCI error.
    #[test]
    fn each_parameter_type_answers_its_own_code() {
        let reason = |r: String| format!("failed to parse \"X\": {r}");
        let cases: Vec<(String, ErrorCode, u16)> = vec![
            (
                RepoName::parse_from_parameter("UPPER")
                    .err()
                    .unwrap()
                    .into_message(),
                ErrorCode::NameInvalid,
                400,
            ),
            (
                Digest::parse_from_parameter("sha256:xyz")
                    .err()
                    .unwrap()
                    .into_message(),
                ErrorCode::DigestInvalid,
                400,
            ),
            (
                Reference::parse_from_parameter("sha256:1")
                    .err()
                    .unwrap()
                    .into_message(),
                ErrorCode::DigestInvalid,
                400,
            ),
            (
                Reference::parse_from_parameter("-tag")
                    .err()
                    .unwrap()
                    .into_message(),
                ErrorCode::ManifestInvalid,
                400,
            ),
            (
                Lookup::parse_from_parameter("-tag")
                    .err()
                    .unwrap()
                    .into_message(),
                ErrorCode::ManifestUnknown,
                404,
            ),
            (
                UploadId::parse_from_parameter("../etc")
                    .err()
                    .unwrap()
                    .into_message(),
                ErrorCode::BlobUploadUnknown,
                404,
            ),
        ];
        for (message, code, status) in cases {
            let e = parameter_error(&message).unwrap_or_else(|| panic!("{message}"));
            assert_eq!((e.code, e.status.as_u16()), (code, status), "{message}");
            assert!(!e.message.contains("::"), "{}", e.message);
            assert_eq!(
                parameter_error(&reason(message.clone())).unwrap().code,
                code
            );
        }
        assert!(parameter_error("failed to parse \"integer\": not a number").is_none());
    }

    #[test]
    fn valid_values_parse() {
        assert_eq!(
            RepoName::parse_from_parameter("org/app").unwrap().as_str(),
            "org/app"
        );
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(Digest::parse_from_parameter(d).unwrap().to_string(), d);
        assert!(matches!(
            Reference::parse_from_parameter("v1").unwrap(),
            Reference::Tag(_)
        ));
        assert!(UploadId::parse_from_parameter("0123456789abcdef0123456789abcdef").is_ok());
    }
}
