//! Repository names and tags, validated against the spec's grammar before they
//! reach any storage layer (so `..`, leading separators and uppercase never touch
//! the filesystem or SQL).

use std::fmt;
use std::str::FromStr;

/// Longest repository name accepted. The spec notes that clients limit
/// `host[:port]/name` to 255 characters; a name alone can never be longer.
pub const MAX_NAME_LEN: usize = 255;

/// Longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// The repository-name grammar as a regular expression, for schemas (the
/// OpenAPI document's parameter patterns); [`RepoName`]'s parser is the check.
pub const NAME_PATTERN: &str =
    r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$";

/// The tag grammar as a regular expression (see [`NAME_PATTERN`]).
pub const TAG_PATTERN: &str = r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$";

/// Why a name or tag is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repository name breaks the grammar or the length limit.
    #[error(
        "invalid repository name {0:?}: path components of lowercase letters and digits, \
         joined by '.', '_', '__' or dashes, separated by '/', at most 255 characters"
    )]
    InvalidName(String),
    /// The tag breaks `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
}

/// `s` as an error message quotes it: whole up to a little past the longest
/// valid name, cut short beyond (an error stays small whatever was sent).
fn shown(s: &str) -> String {
    const KEPT: usize = 300;
    if s.len() <= KEPT {
        return s.to_string();
    }
    let mut end = KEPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A repository name (`<name>` in the spec).
///
/// Grammar: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        // a run of alphanumerics
        let start = i;
        while i < b.len() && is_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // a separator
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

impl FromStr for RepoName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(is_path_component) {
            return Err(NameError::InvalidName(shown(s)));
        }
        Ok(RepoName(s.to_string()))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_TAG_LEN
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b[1..]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-');
        if ok {
            Ok(Tag(s.to_string()))
        } else {
            Err(NameError::InvalidTag(shown(s)))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compiles a glob over repository names, the one way every setting reads them
/// (access policy, warning rules): `*` stays within one path segment, `**`
/// crosses segments, `\\` escapes.
pub fn repository_glob(pattern: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("repository pattern {pattern:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_table() {
        let valid = [
            "a",
            "library/ubuntu",
            "a.b_c__d---e/f0",
            "conformance/repo1",
            "0",
        ];
        let invalid = [
            "", "A", "a/", "/a", "a//b", "../a", "a/../b", "a/.", ".a", "a.", "a___b", "a_-b",
            "a..b", "a b", "a%2fb", "-a",
        ];
        for v in valid {
            assert!(v.parse::<RepoName>().is_ok(), "{v} should be valid");
        }
        for v in invalid {
            assert!(v.parse::<RepoName>().is_err(), "{v:?} should be invalid");
        }
        assert!("a".repeat(MAX_NAME_LEN).parse::<RepoName>().is_ok());
        assert!("a".repeat(MAX_NAME_LEN + 1).parse::<RepoName>().is_err());
    }

    /// Regression: a 5 KB name was quoted whole in its `NAME_INVALID` message.
    #[test]
    fn errors_quote_a_long_input_cut_short() {
        let long = "a".repeat(5000);
        let e = long.parse::<RepoName>().unwrap_err().to_string();
        assert!(e.len() < 600 && e.contains("(5000 bytes)"), "{e}");
        let e = format!("{}é", "t".repeat(299))
            .parse::<Tag>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("(301 bytes)"), "{e}");
        let e = "Bad".parse::<RepoName>().unwrap_err().to_string();
        assert!(e.contains("\"Bad\""), "{e}");
    }

    #[test]
    fn tags_table() {
        for v in ["latest", "v1.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(v.parse::<Tag>().is_ok(), "{v}");
        }
        for v in ["", ".x", "-x", "a/b", "a:b", "a+b", &"t".repeat(129)] {
            assert!(v.parse::<Tag>().is_err(), "{v:?}");
        }
    }

    /// The spec's name grammar with repetitions bounded so that generated names stay under the length limit.
    const NAME_RE_BOUNDED: &str =
        "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,3}(/[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,3}){0,5}";

    proptest! {
        /// Every string generated from the spec's name grammar is accepted.
        #[test]
        fn grammar_names_are_accepted(s in NAME_RE_BOUNDED) {
            prop_assert!(s.parse::<RepoName>().is_ok());
        }

        /// Arbitrary strings are accepted exactly when an independent tokenising
        /// reading of the grammar accepts them.
        #[test]
        fn acceptance_matches_grammar(s in "[a-z0-9._/A-Z-]{0,12}") {
            let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            let reference = !s.is_empty() && s.split('/').all(|component| {
                let mut rest = component;
                loop {
                    let n = rest.bytes().take_while(|&b| alnum(b)).count();
                    if n == 0 { return false; }
                    rest = &rest[n..];
                    if rest.is_empty() { return true; }
                    let m = rest.bytes().take_while(|&b| !alnum(b)).count();
                    let sep = &rest[..m];
                    if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
                        return false;
                    }
                    rest = &rest[m..];
                }
            });
            prop_assert_eq!(s.parse::<RepoName>().is_ok(), reference);
        }

        /// Tags generated from the spec's tag grammar are accepted.
        #[test]
        fn grammar_tags_are_accepted(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
            prop_assert!(s.parse::<Tag>().is_ok());
        }
    }
}
