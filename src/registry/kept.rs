//! Pages of what a caller may see: items read from the registry's own keyset pages
//! and kept by a predicate (access control decides it), so that a page holds up to
//! `n` kept items and its cursor names only a kept item.
//!
//! The predicate lives outside the registry (it never sees identities); this module
//! only walks pages. A request examines at most [`SCAN_LIMIT`] items: a caller who
//! may see almost nothing of a huge registry gets a shortened listing, never a
//! cursor that names an item it may not see.

use std::future::Future;

use crate::store::Page;

/// Most items examined for one request.
pub const SCAN_LIMIT: usize = 100_000;

/// A page of kept items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptPage<T, C> {
    /// The kept items, in the source's order.
    pub items: Vec<T>,
    /// Where the next page starts (the cursor of the last item), when more kept
    /// items follow.
    pub next: Option<C>,
    /// True when [`SCAN_LIMIT`] ended the walk before the source did.
    pub truncated: bool,
}

/// Collects up to `want` items that `keep` admits, reading the source's pages
/// through `fetch(after)` from `start` on. `cursor_of` gives the position of an
/// item, from which the source continues.
pub async fn kept_page<T, C, E, Fetch, Fut>(
    want: usize,
    start: Option<C>,
    mut fetch: Fetch,
    cursor_of: impl Fn(&T) -> C,
    keep: impl Fn(&T) -> bool,
) -> Result<KeptPage<T, C>, E>
where
    Fetch: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<Page<T>, E>>,
{
    let mut items: Vec<T> = Vec::new();
    if want == 0 {
        return Ok(KeptPage {
            items,
            next: None,
            truncated: false,
        });
    }
    let mut after = start;
    let mut scanned = 0usize;
    loop {
        let page = fetch(after.take()).await?;
        scanned += page.items.len().max(1);
        after = page.items.last().map(&cursor_of);
        for item in page.items {
            if keep(&item) {
                if items.len() == want {
                    let next = items.last().map(&cursor_of);
                    return Ok(KeptPage {
                        items,
                        next,
                        truncated: false,
                    });
                }
                items.push(item);
            }
        }
        if !page.more || after.is_none() {
            return Ok(KeptPage {
                items,
                next: None,
                truncated: false,
            });
        }
        if scanned >= SCAN_LIMIT {
            return Ok(KeptPage {
                items,
                next: None,
                truncated: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The source: `0..len`, served `page` at a time after a cursor.
    fn source(
        len: u32,
        page: usize,
    ) -> impl FnMut(Option<u32>) -> std::future::Ready<Result<Page<u32>, ()>> {
        move |after| {
            let from = after.map_or(0, |a| a + 1);
            let items: Vec<u32> = (from..len).take(page).collect();
            let more = items.last().is_some_and(|l| l + 1 < len);
            std::future::ready(Ok(Page { items, more }))
        }
    }

    fn walk(len: u32, page: usize, want: usize, keep: impl Fn(&u32) -> bool + Copy) -> Vec<u32> {
        let mut all = Vec::new();
        let mut start = None;
        for _ in 0..=len {
            let p = futures_util::FutureExt::now_or_never(kept_page(
                want,
                start,
                source(len, page),
                |x: &u32| *x,
                keep,
            ))
            .expect("ready")
            .expect("ok");
            assert!(p.items.len() <= want);
            if p.next.is_some() {
                assert_eq!(p.items.len(), want, "every page but the last is full");
                assert_eq!(
                    p.next,
                    p.items.last().copied(),
                    "the cursor names a kept item"
                );
            }
            all.extend(p.items);
            match p.next {
                Some(n) => start = Some(n),
                None => return all,
            }
        }
        panic!("the walk did not end");
    }

    proptest! {
        #[test]
        fn pages_of_kept_items_reach_exactly_the_kept_items(
            len in 0u32..300,
            page in 1usize..40,
            want in 1usize..50,
            modulus in 1u32..7,
        ) {
            let keep = move |x: &u32| x.is_multiple_of(modulus);
            let expected: Vec<u32> = (0..len).filter(keep).collect();
            prop_assert_eq!(walk(len, page, want, keep), expected);
        }
    }

    #[test]
    fn nothing_is_asked_for_nothing() {
        let p = futures_util::FutureExt::now_or_never(kept_page(
            0,
            None,
            source(10, 3),
            |x: &u32| *x,
            |_| true,
        ))
        .unwrap()
        .unwrap();
        assert!(p.items.is_empty() && p.next.is_none());
    }

    #[test]
    fn the_scan_limit_shortens_instead_of_leaking_a_cursor() {
        let len = (SCAN_LIMIT + 5_000) as u32;
        let p = futures_util::FutureExt::now_or_never(kept_page(
            10,
            None,
            source(len, 1000),
            |x: &u32| *x,
            |x| *x == len - 1,
        ))
        .unwrap()
        .unwrap();
        assert!(p.truncated);
        assert!(p.items.is_empty());
        assert_eq!(p.next, None);
    }
}
