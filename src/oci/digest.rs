//! Content digests: `algorithm ":" encoded`, and the streaming hashers behind them.
//!
//! Grammar (spec, "Pulling blobs" / image-spec descriptor):
//! `digest ::= algorithm ":" encoded`, `algorithm ::= component (separator component)*`,
//! `component ::= [a-z0-9]+`, `separator ::= [+._-]`, `encoded ::= [a-zA-Z0-9=_-]+`.
//! Marina verifies `sha256` (64 lowercase hex) and `sha512` (128 lowercase hex); any
//! other well-formed algorithm is reported as unsupported, which the API answers with
//! 400 `DIGEST_INVALID` like a malformed digest.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A hash algorithm Marina can verify content with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the canonical algorithm of the spec.
    Sha256,
    /// SHA-512, selectable per upload with `digest-algorithm=sha512`.
    Sha512,
}

impl Algorithm {
    /// The identifier used in digests (`sha256`, `sha512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded hash.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A fresh streaming hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Digest of a complete byte slice.
    pub fn digest_of(self, bytes: &[u8]) -> Digest {
        let mut h = self.hasher();
        h.update(bytes);
        h.finish()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other if is_algorithm_grammar(other) => {
                Err(DigestError::UnsupportedAlgorithm(other.to_string()))
            }
            other => Err(DigestError::Malformed(other.to_string())),
        }
    }
}

/// Why a string is not a digest Marina can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string does not follow the digest grammar or the algorithm's encoding.
    #[error("malformed digest {0:?}")]
    Malformed(String),
    /// Well-formed, but the algorithm is not one Marina verifies.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

/// A validated content digest, such as `sha256:e3b0…b855`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (lowercase hex) part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Builds a digest from an algorithm and a raw hash.
    pub fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Digest {
        Digest {
            algorithm,
            hex: hex::encode(raw),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// The digests [`Digest`]'s parser accepts, as a regular expression for schemas
/// (the OpenAPI document's parameter patterns): the spec's grammar narrowed to
/// the algorithms Marina verifies, each with its length of lowercase hex.
pub const DIGEST_PATTERN: &str = r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$";

fn is_algorithm_grammar(s: &str) -> bool {
    // component (separator component)*, components of [a-z0-9]+
    !s.is_empty()
        && s.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_encoded_grammar(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, DigestError> {
        let malformed = || DigestError::Malformed(s.to_string());
        let (alg, encoded) = s.split_once(':').ok_or_else(malformed)?;
        if !is_algorithm_grammar(alg) || !is_encoded_grammar(encoded) {
            return Err(malformed());
        }
        let algorithm: Algorithm = alg.parse()?;
        if encoded.len() != algorithm.hex_len()
            || !encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(malformed());
        }
        Ok(Digest {
            algorithm,
            hex: encoded.to_string(),
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A streaming hasher for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Feeds bytes into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The hash's internal state, so that hashing can go on in another process
    /// ([`Hasher::resume`]) without reading the bytes again: a chunked upload's
    /// cost stays linear in its size whichever server takes each chunk.
    pub fn state(&self) -> Vec<u8> {
        use sha2::digest::common::hazmat::SerializableState;
        match self {
            Hasher::Sha256(h) => h.serialize().to_vec(),
            Hasher::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// A hasher of `algorithm` continuing from a [`Hasher::state`]; `None` when
    /// the state is not one (of this algorithm).
    pub fn resume(algorithm: Algorithm, state: &[u8]) -> Option<Hasher> {
        use sha2::digest::common::hazmat::SerializableState;
        match algorithm {
            Algorithm::Sha256 => {
                let s = state.try_into().ok()?;
                sha2::Sha256::deserialize(s).ok().map(Hasher::Sha256)
            }
            Algorithm::Sha512 => {
                let s = state.try_into().ok()?;
                sha2::Sha512::deserialize(s).ok().map(Hasher::Sha512)
            }
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_raw(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_raw(Algorithm::Sha512, &h.finalize()),
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hasher::Sha256(_) => f.write_str("Hasher(sha256)"),
            Hasher::Sha512(_) => f.write_str("Hasher(sha512)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digests_of_empty_input() {
        assert_eq!(
            Algorithm::Sha256.digest_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(Algorithm::Sha512
            .digest_of(b"")
            .to_string()
            .starts_with("sha512:cf83e1357eefb8bdf1542850d66d8007"));
    }

    #[test]
    fn rejects_by_kind() {
        let cases = [
            ("sha256:abc", "malformed"),
            ("sha256", "malformed"),
            (
                "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "malformed",
            ),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                "malformed",
            ),
            ("unknown:12345", "unsupported"),
            ("blake3:abcd", "unsupported"),
            ("sha256:baddigeststring", "malformed"),
            (":abc", "malformed"),
            ("sha256:", "malformed"),
        ];
        for (input, kind) in cases {
            let got = input.parse::<Digest>().unwrap_err();
            let got_kind = match got {
                DigestError::Malformed(_) => "malformed",
                DigestError::UnsupportedAlgorithm(_) => "unsupported",
            };
            assert_eq!(got_kind, kind, "{input}");
        }
    }

    #[test]
    fn a_state_of_another_algorithm_or_length_is_refused() {
        let mut h = Algorithm::Sha256.hasher();
        h.update(b"abc");
        let state = h.state();
        assert!(Hasher::resume(Algorithm::Sha512, &state).is_none());
        assert!(Hasher::resume(Algorithm::Sha256, &state[1..]).is_none());
        assert!(Hasher::resume(Algorithm::Sha256, &[]).is_none());
    }

    proptest! {
        /// Hashing split at any point, the state saved and resumed between the
        /// parts, gives the digest of the whole.
        #[test]
        fn a_resumed_hash_equals_the_hash_of_the_whole(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in any::<prop::sample::Index>(), sha512 in any::<bool>()) {
            let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let cut = cut.index(bytes.len() + 1);
            let mut first = alg.hasher();
            first.update(&bytes[..cut]);
            let mut second = Hasher::resume(alg, &first.state()).expect("its own state");
            second.update(&bytes[cut..]);
            prop_assert_eq!(second.finish(), alg.digest_of(&bytes));
        }

        /// Any digest we produce parses back to itself.
        #[test]
        fn produced_digests_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256), sha512 in any::<bool>()) {
            let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let d = alg.digest_of(&bytes);
            prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        }

        /// Parsing accepts exactly the grammar with a supported algorithm and exact-length lowercase hex.
        #[test]
        fn parse_matches_grammar(alg in "(sha256|sha512|md5|sha-256|SHA256|)", enc in "[0-9a-fA-Fg=_-]{0,130}") {
            let s = format!("{alg}:{enc}");
            let expected_ok = match alg.as_str() {
                "sha256" => enc.len() == 64 && enc.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "sha512" => enc.len() == 128 && enc.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                _ => false,
            };
            prop_assert_eq!(s.parse::<Digest>().is_ok(), expected_ok);
        }
    }
}
