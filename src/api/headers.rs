//! Parsing of the request headers the OCI API gives meaning to, and building of
//! `Link` headers. Pure functions, tested from tables.

use crate::registry::ChunkRange;

/// A byte range requested with `Range` on a blob GET, resolved against the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable single range: serve the whole blob (200).
    Whole,
    /// Serve bytes `start..=end` (206).
    Part {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// Cannot be satisfied (416).
    Unsatisfiable,
}

/// Resolves a `Range` header against a blob of `size` bytes (RFC 9110 §14).
/// Only single `bytes=` ranges are honoured; anything else is ignored (a full 200),
/// as RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            None => ByteRange::Whole,
        },
        (start, "") => match num(start) {
            Some(s) if s < size => ByteRange::Part {
                start: s,
                end: size - 1,
            },
            Some(_) => ByteRange::Unsatisfiable,
            None => ByteRange::Whole,
        },
        (start, end) => match (num(start), num(end)) {
            (Some(s), Some(e)) if s > e => ByteRange::Unsatisfiable,
            (Some(s), Some(_)) if s >= size => ByteRange::Unsatisfiable,
            (Some(s), Some(e)) => ByteRange::Part {
                start: s,
                end: e.min(size - 1),
            },
            _ => ByteRange::Whole,
        },
    }
}

/// What [`parse_content_range`] reads, for schemas: blank (no range), or
/// `<start>-<end>`, optionally after `bytes=` or `bytes ` and before `/<total>`.
pub const CONTENT_RANGE_PATTERN: &str =
    r"^\s*((bytes=\s*)?(bytes \s*)?[0-9]+-[0-9]+(/(\*|[0-9]+))?)?\s*$";

/// Parses a chunk's `Content-Range`. The spec's form is `<start>-<end>`; the
/// RFC-style `bytes <start>-<end>/<total>` that some clients send is accepted too.
/// `Err` means the header is present but unreadable.
pub fn parse_content_range(header: Option<&str>) -> Result<Option<ChunkRange>, String> {
    let Some(raw) = header.filter(|h| !h.trim().is_empty()) else {
        return Ok(None);
    };
    let mut v = raw.trim();
    for prefix in ["bytes=", "bytes "] {
        if let Some(rest) = v.strip_prefix(prefix) {
            v = rest.trim();
        }
    }
    let bad = || format!("invalid Content-Range {raw:?}: expected <start>-<end>");
    if let Some((range, total)) = v.split_once('/') {
        // RFC 9110's complete length: digits, or `*` for unknown.
        if total != "*" && (total.is_empty() || !total.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad());
        }
        v = range;
    }
    let (s, e) = v.split_once('-').ok_or_else(bad)?;
    let parse = |x: &str| -> Result<u64, String> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        x.parse().map_err(|_| bad())
    };
    Ok(Some(ChunkRange {
        start: parse(s)?,
        end: parse(e)?,
    }))
}

/// Characters left as they are in a query value of a `Link` URL.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Percent-encodes a query value.
pub fn encode_query(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// `<path?query>; rel="next"` (RFC 8288).
pub fn next_link(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_query(v)))
        .collect();
    format!("<{path}?{}>; rel=\"next\"", query.join("&"))
}

/// `Marina-Cache` and `Warning` for an answer of the pull-through cache: where
/// it came from (`hit`, `miss`, `revalidated`, `stale`, `merged`), and for a
/// stale one, a warning that the upstream did not answer. Both `None` for a
/// name that is not proxied.
pub fn cache_headers(
    status: Option<crate::registry::CacheStatus>,
) -> (Option<String>, Option<String>) {
    match status {
        None => (None, None),
        Some(s) => (
            Some(s.as_str().to_string()),
            s.warning().map(|w| format!("299 - \"{w}\"")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ByteRange::*;

    #[test]
    fn range_table() {
        let size = 2048;
        let table = [
            (
                Some("bytes=500-1499"),
                Part {
                    start: 500,
                    end: 1499,
                },
            ),
            (
                Some("bytes=500-"),
                Part {
                    start: 500,
                    end: 2047,
                },
            ),
            (
                Some("bytes=-500"),
                Part {
                    start: 1548,
                    end: 2047,
                },
            ),
            (
                Some("bytes=2000-5000"),
                Part {
                    start: 2000,
                    end: 2047,
                },
            ),
            (Some("bytes=500-0"), Unsatisfiable),
            (Some("bytes=5000-10000"), Unsatisfiable),
            (Some("bytes=2048-"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (
                Some("bytes=-5000"),
                Part {
                    start: 0,
                    end: 2047,
                },
            ),
            (Some("bytes=0-1,5-6"), Whole),
            (Some("items=0-1"), Whole),
            (Some("bytes=x-1"), Whole),
            (None, Whole),
        ];
        for (h, want) in table {
            assert_eq!(parse_range(h, size), want, "{h:?}");
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn content_range_table() {
        assert_eq!(
            parse_content_range(Some("0-99")).unwrap(),
            Some(ChunkRange { start: 0, end: 99 })
        );
        assert_eq!(
            parse_content_range(Some("bytes 5-9/10")).unwrap(),
            Some(ChunkRange { start: 5, end: 9 })
        );
        assert_eq!(parse_content_range(None).unwrap(), None);
        assert_eq!(parse_content_range(Some(" ")).unwrap(), None);
        assert_eq!(
            parse_content_range(Some("bytes 0-3/*")).unwrap(),
            Some(ChunkRange { start: 0, end: 3 })
        );
        // Regression: anything after a `/` was taken for a length.
        for bad in [
            "5", "a-b", "-5", "5-", "1-2-3", "0-3/]gBh", "0-3/", "0-3/1/2",
        ] {
            assert!(parse_content_range(Some(bad)).is_err(), "{bad:?}");
        }
    }

    /// The schema's pattern takes what the parser takes (schemathesis found
    /// them apart).
    #[test]
    fn the_pattern_agrees_with_the_parser() {
        let pattern = regex::Regex::new(CONTENT_RANGE_PATTERN).unwrap();
        for h in [
            "0-99",
            "bytes 5-9/10",
            "bytes 0-3/*",
            "bytes=0-3",
            " 1-2 ",
            "",
            "5",
            "a-b",
            "-5",
            "5-",
            "1-2-3",
            "0-3/]gBh",
            "0-3/",
            "0-3/1/2",
        ] {
            assert_eq!(
                pattern.is_match(h),
                parse_content_range(Some(h)).is_ok(),
                "{h:?}"
            );
        }
    }

    #[test]
    fn link_encodes_values() {
        assert_eq!(
            next_link(
                "/v2/a/referrers/sha256:x",
                &[("artifactType", "application/vnd.x+json")]
            ),
            "</v2/a/referrers/sha256:x?artifactType=application%2Fvnd.x%2Bjson>; rel=\"next\""
        );
    }

    proptest! {
        /// A satisfiable answer always lies inside the blob and is non-empty.
        #[test]
        fn ranges_stay_inside_the_blob(a in 0u64..5000, b in 0u64..5000, size in 0u64..3000, form in 0u8..3) {
            let h = match form { 0 => format!("bytes={a}-{b}"), 1 => format!("bytes={a}-"), _ => format!("bytes=-{b}") };
            if let Part { start, end } = parse_range(Some(&h), size) {
                prop_assert!(start <= end && end < size);
            }
        }

        /// Every well-formed chunk range parses back to its numbers.
        #[test]
        fn content_ranges_round_trip(s in 0u64..u64::MAX / 2, len in 0u64..1_000_000) {
            let r = parse_content_range(Some(&format!("{s}-{}", s + len))).unwrap().unwrap();
            prop_assert_eq!((r.start, r.end), (s, s + len));
        }
    }
}
