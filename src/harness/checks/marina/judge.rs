//! Pure judgements of the `_marina` checks, tested from tables and properties:
//! page sizes of a walk, sort orders, RFC 3339 times, and query strings.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters of a query value left as they are (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `path?k=v&…` with every value percent-encoded.
pub(crate) fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// The essence of a `Content-Type` (before any parameter), lowercased.
pub(crate) fn essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Judges the page sizes of a walk with `n`: every page followed by a `Link`
/// holds the same number of items, between 1 and `n` (a registry may cap `n`);
/// the last holds at most that many and is empty only if it is the only page.
pub fn judge_sizes(sizes: &[usize], n: usize) -> Result<(), String> {
    let Some((last, linked)) = sizes.split_last() else {
        return Err("at least one page".into());
    };
    let Some(&full) = linked.first() else {
        return if *last <= n {
            Ok(())
        } else {
            Err(format!("at most n={n} items on a page; got {last}"))
        };
    };
    if full == 0 || full > n {
        return Err(format!(
            "a page followed by a Link holds 1 to n={n} items; page sizes {sizes:?}"
        ));
    }
    if linked.iter().any(|s| *s != full) {
        return Err(format!(
            "every page followed by a Link is full (filters apply before paging); page sizes {sizes:?}"
        ));
    }
    if *last == 0 || *last > full {
        return Err(format!(
            "the last page holds 1 to {full} items (no Link when nothing follows); page sizes {sizes:?}"
        ));
    }
    Ok(())
}

/// What a list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Bytes of the name, tag or digest.
    Name,
    /// Push time, ties broken by name.
    Pushed,
}

impl Sort {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Pushed => "pushed",
        }
    }
}

/// Judges the order of `(key, pushed-at nanoseconds)` pairs: strictly increasing
/// (or decreasing when `desc`) by key, or by time then key.
pub fn judge_order(items: &[(String, i128)], sort: Sort, desc: bool) -> Result<(), String> {
    let ordered = |a: &(String, i128), b: &(String, i128)| {
        let less = match sort {
            Sort::Name => a.0.as_bytes() < b.0.as_bytes(),
            Sort::Pushed => (a.1, a.0.as_bytes()) < (b.1, b.0.as_bytes()),
        };
        let greater = match sort {
            Sort::Name => a.0.as_bytes() > b.0.as_bytes(),
            Sort::Pushed => (a.1, a.0.as_bytes()) > (b.1, b.0.as_bytes()),
        };
        if desc {
            greater
        } else {
            less
        }
    };
    match items.windows(2).find(|w| !ordered(&w[0], &w[1])) {
        None => Ok(()),
        Some(w) => Err(format!(
            "sort={} order={}: {:?} may not come before {:?}; listed {:?}",
            sort.as_str(),
            if desc { "desc" } else { "asc" },
            w[0].0,
            w[1].0,
            items.iter().map(|i| i.0.as_str()).collect::<Vec<_>>()
        )),
    }
}

/// Parses an RFC 3339 date-time in UTC (`Z` or `+00:00`) into nanoseconds since
/// the epoch; `None` when it is not one.
pub fn parse_utc(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let t = s.get(from..to)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    let mut nanos: i128 = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut frac: String = f[..digits].chars().take(9).collect();
        while frac.len() < 9 {
            frac.push('0');
        }
        nanos = frac.parse().ok()?;
        rest = &f[digits..];
    }
    if !matches!(rest, "Z" | "z" | "+00:00") {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// A sorted copy, for comparing lists as multisets.
pub(crate) fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn times() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_utc("2024-05-01T12:34:56.789Z"),
            Some(1_714_566_896_789_000_000)
        );
        assert_eq!(
            parse_utc("2000-02-29T00:00:00.5+00:00"),
            Some(951_782_400_500_000_000)
        );
        assert_eq!(parse_utc("1969-12-31T23:59:59.999z"), Some(-1_000_000));
        for bad in [
            "",
            "2024-05-01 12:34:56Z",
            "2024-05-01T12:34:56",
            "2024-05-01T12:34:56+02:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:34:56.Z",
            "1714566896789",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query(
                "/v2/a/_marina/list/manifests",
                &[
                    ("annotation", "k=v w"),
                    ("artifactType", "application/x+json")
                ]
            ),
            "/v2/a/_marina/list/manifests?annotation=k%3Dv%20w&artifactType=application%2Fx%2Bjson"
        );
        assert_eq!(with_query("/p", &[]), "/p");
    }

    fn keyed(v: &[(&str, i128)]) -> Vec<(String, i128)> {
        v.iter().map(|(k, t)| (k.to_string(), *t)).collect()
    }

    #[test]
    fn orders() {
        let by_name = keyed(&[("B", 3), ("a", 1), ("b", 2)]);
        assert!(judge_order(&by_name, Sort::Name, false).is_ok());
        assert!(judge_order(&by_name, Sort::Name, true).is_err());
        assert!(judge_order(&by_name, Sort::Pushed, false).is_err());
        let by_time = keyed(&[("z", 1), ("a", 2), ("b", 2)]);
        assert!(judge_order(&by_time, Sort::Pushed, false).is_ok());
        let mut rev = by_time.clone();
        rev.reverse();
        assert!(judge_order(&rev, Sort::Pushed, true).is_ok());
        // A repeat is never in order.
        assert!(judge_order(&keyed(&[("a", 1), ("a", 1)]), Sort::Name, false).is_err());
    }

    #[test]
    fn sizes() {
        assert!(judge_sizes(&[2, 2, 1], 2).is_ok());
        assert!(judge_sizes(&[0], 2).is_ok());
        assert!(judge_sizes(&[1, 1, 1], 5).is_ok(), "a registry may cap n");
        assert!(
            judge_sizes(&[2, 1, 2], 2).is_err(),
            "a short page before a Link"
        );
        assert!(
            judge_sizes(&[2, 0], 2).is_err(),
            "a Link with nothing after it"
        );
        assert!(judge_sizes(&[3], 2).is_err(), "more than n");
        assert!(judge_sizes(&[3, 1], 2).is_err(), "more than n");
        assert!(judge_sizes(&[], 2).is_err());
    }

    /// The page sizes of `total` items in pages of `size`.
    fn cut(total: usize, size: usize) -> Vec<usize> {
        if total == 0 {
            return vec![0];
        }
        (0..total)
            .collect::<Vec<_>>()
            .chunks(size)
            .map(<[usize]>::len)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Pages cut at min(n, cap) from a list of any length pass.
        #[test]
        fn cuts_at_the_capped_size_pass(total in 0usize..40, n in 1usize..10, cap in 1usize..12) {
            let sizes = cut(total, n.min(cap));
            prop_assert!(judge_sizes(&sizes, n).is_ok(), "{sizes:?}");
        }

        /// judge_sizes accepts exactly the page sizes of some list cut at some
        /// size between 1 and n: a short page before a Link (a filter applied
        /// after paging), a Link before an empty page, or a page over n fails.
        #[test]
        fn only_cuts_pass(sizes in prop::collection::vec(0usize..6, 1..6), n in 1usize..6) {
            let total = sizes.iter().sum();
            let is_cut = (1..=n).any(|s| cut(total, s) == sizes);
            prop_assert_eq!(judge_sizes(&sizes, n).is_ok(), is_cut, "{:?}", sizes);
        }

        /// Any list sorted by the rules passes in its direction, and swapping two
        /// distinct neighbours fails.
        #[test]
        fn sorted_lists_pass_and_swaps_fail(
            mut items in prop::collection::btree_set(("[a-zA-Z0-9._-]{1,6}", 0i128..5), 2..12),
            desc in any::<bool>(),
            at in any::<prop::sample::Index>(),
        ) {
            let mut v: Vec<(String, i128)> = std::mem::take(&mut items).into_iter().collect();
            v.sort_by(|a, b| (a.1, a.0.as_bytes()).cmp(&(b.1, b.0.as_bytes())));
            if desc {
                v.reverse();
            }
            prop_assert!(judge_order(&v, Sort::Pushed, desc).is_ok());
            let i = at.index(v.len() - 1);
            v.swap(i, i + 1);
            prop_assert!(judge_order(&v, Sort::Pushed, desc).is_err());
        }
    }
}
