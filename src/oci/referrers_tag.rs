//! The referrers tag schema (spec, "Referrers Tag Schema"): the tag under which
//! clients keep a fallback referrers index when a registry lacks the referrers API.

use super::Digest;

/// `<alg>-<ref>`: the algorithm truncated to 32 characters, the encoded part to 64,
/// and any character a tag cannot hold replaced by `-`.
pub fn referrers_tag(alg: &str, encoded: &str) -> String {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .take(max)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("{}-{}", clean(alg, 32), clean(encoded, 64))
}

/// The referrers tag of a digest.
pub fn referrers_tag_for(digest: &Digest) -> String {
    referrers_tag(digest.algorithm().as_str(), digest.hex())
}

/// If `tag` is the referrers tag of some sha256 or sha512 digest, that digest's
/// algorithm and the (possibly truncated) hex it keeps.
pub fn parse_referrers_tag(tag: &str) -> Option<(&str, &str)> {
    let (alg, hex) = tag.split_once('-')?;
    let ok = matches!(alg, "sha256" | "sha512")
        && hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some((alg, hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three examples the spec gives.
    #[test]
    fn spec_examples() {
        assert_eq!(
            referrers_tag(
                "sha256",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            referrers_tag(
                "sha512",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            referrers_tag(
                "test+algorithm+using+algorithm+separators",
                "alg+separators=and_equals"
            ),
            "test-algorithm-using-algorithm-s-alg-separators-and_equals"
        );
    }

    #[test]
    fn result_is_a_valid_tag() {
        let t = referrers_tag("a+b", &"x=".repeat(80));
        assert!(t.parse::<crate::oci::Tag>().is_ok());
        assert!(t.len() <= 32 + 1 + 64);
    }
}
