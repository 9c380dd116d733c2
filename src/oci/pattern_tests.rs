//! The grammar constants (schema patterns in the OpenAPI document) say what the
//! parsers accept.

use proptest::prelude::*;
use regex::Regex;

use super::digest::DIGEST_PATTERN;
use super::name::{NAME_PATTERN, TAG_PATTERN};
use super::reference::REFERENCE_PATTERN;
use super::{Digest, RepoName, Tag};

/// Strings near the grammars: their characters, mostly short.
fn near_grammar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._/-]{0,24}",
        "[a-zA-Z0-9._:+=/-]{0,24}",
        "(sha256|sha512|md5|Sha256):[0-9a-fA-F=_-]{0,64}",
        "sha256:[0-9a-f]{63,65}",
        "sha512:[0-9a-fA-F]{127,129}",
        "[a-z0-9]{1,4}(([._]|__|-{1,3})[a-z0-9]{1,4}){0,3}(/[a-z0-9]{1,4}([._-][a-z0-9]{1,3}){0,2}){0,3}",
    ]
}

proptest! {
    #[test]
    fn name_pattern_matches_exactly_the_names_the_parser_accepts(s in near_grammar()) {
        let re = Regex::new(NAME_PATTERN).unwrap();
        prop_assert_eq!(re.is_match(&s), s.parse::<RepoName>().is_ok(), "{:?}", s);
    }

    #[test]
    fn tag_pattern_matches_exactly_the_tags_the_parser_accepts(s in near_grammar()) {
        let re = Regex::new(TAG_PATTERN).unwrap();
        prop_assert_eq!(re.is_match(&s), s.parse::<Tag>().is_ok(), "{:?}", s);
    }

    #[test]
    fn digest_pattern_matches_exactly_the_digests_the_parser_accepts(s in near_grammar()) {
        let digest = Regex::new(DIGEST_PATTERN).unwrap();
        let reference = Regex::new(REFERENCE_PATTERN).unwrap();
        prop_assert_eq!(digest.is_match(&s), s.parse::<Digest>().is_ok(), "{:?}", s);
        let is_reference = s.parse::<Tag>().is_ok() || s.parse::<Digest>().is_ok();
        prop_assert_eq!(reference.is_match(&s), is_reference, "{:?}", s);
    }
}

#[test]
fn the_patterns_know_the_edges() {
    let name = Regex::new(NAME_PATTERN).unwrap();
    for ok in ["a", "a/b", "a__b", "a---b", "a.b/c_d"] {
        assert!(name.is_match(ok), "{ok}");
    }
    for bad in ["", "A", "a/", "/a", "a___b", "a..b", "a/-b"] {
        assert!(!name.is_match(bad), "{bad}");
    }
    let d = format!("sha256:{}", "a".repeat(64));
    assert!(Regex::new(DIGEST_PATTERN).unwrap().is_match(&d));
    assert!(Regex::new(REFERENCE_PATTERN).unwrap().is_match(&d));
    assert!(!Regex::new(TAG_PATTERN).unwrap().is_match(&"t".repeat(129)));
}
