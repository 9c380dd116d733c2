//! `<tag-or-digest>`: the reference part of a manifest path.

use std::fmt;
use std::str::FromStr;

use super::{Digest, DigestError, NameError, Tag};

/// The reference grammar (a tag or a digest) as a regular expression, for schemas.
pub const REFERENCE_PATTERN: &str =
    r"^([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}|sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$";

/// A manifest reference: a tag or a digest, and nothing else (spec: "Pulling manifests").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag such as `latest`.
    Tag(Tag),
    /// A content digest such as `sha256:…`.
    Digest(Digest),
}

/// Why a string is not a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Contains `:` so it was read as a digest, and is not a usable one.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Read as a tag, and not a valid one.
    #[error(transparent)]
    Tag(#[from] NameError),
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        // A tag can never contain ':', so its presence means a digest was meant.
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_tags_and_digests() {
        assert!(matches!("latest".parse(), Ok(Reference::Tag(_))));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(d.parse(), Ok(Reference::Digest(_))));
        assert!(matches!(
            "sha256:baddigeststring".parse::<Reference>(),
            Err(ReferenceError::Digest(_))
        ));
        assert!(matches!(
            ".INVALID_MANIFEST_NAME".parse::<Reference>(),
            Err(ReferenceError::Tag(_))
        ));
    }

    proptest! {
        /// Display and parse are inverse for every valid reference.
        #[test]
        fn round_trip(tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let t: Reference = tag.parse().unwrap();
            prop_assert_eq!(t.to_string(), tag);
            let d = Reference::Digest(crate::oci::Algorithm::Sha256.digest_of(&bytes));
            prop_assert_eq!(d.to_string().parse::<Reference>().unwrap(), d);
        }
    }
}
