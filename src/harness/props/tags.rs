//! Tag pagination against a model: random tag sets × random `n` and `last`.

use proptest::prelude::*;

use super::run_property;
use crate::harness::checks::tags::{get_page, judge_page, push_tags};
use crate::harness::checks::CheckDef;
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;

/// The tag property checks.
pub fn checks() -> Vec<CheckDef> {
    vec![harness_check!(
        "properties.tags-model",
        Properties,
        "for random tag sets and random n/last, the page equals the sorted tags after last, at most n (fewer only with Link)",
        ["R095", "R097", "R098", "R100"],
        tags_model
    )]
}

/// A tag set (no two equal ignoring case, so each allowed order is total) and a query.
/// `last` holds the tag itself, so a shrunk case shows the value the request
/// sent, not an index into `tags`.
#[derive(Debug, Clone)]
struct Case {
    tags: Vec<String>,
    n: Option<usize>,
    last: Option<String>,
}

fn case() -> impl Strategy<Value = Case> {
    let tag = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,6}";
    (
        proptest::collection::vec(tag, 1..10),
        proptest::option::of(0usize..12),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(raw, n, last)| {
            let mut tags: Vec<String> = Vec::new();
            for t in raw {
                if !tags.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
                    tags.push(t);
                }
            }
            let last = last.map(|i| tags[i.index(tags.len())].clone());
            Case { tags, n, last }
        })
}

async fn tags_model(cx: &Ctx) -> Step<Verdict> {
    cx.need_push()?;
    run_property(cx, "tags-model", case, |cx, c: Case| async move {
        let repo = cx.repo(&format!("prop-tags-{}", cx.next()));
        let refs: Vec<&str> = c.tags.iter().map(String::as_str).collect();
        push_tags(&cx, &repo, &refs).await?;
        let last = c.last.clone();
        let mut q = Vec::new();
        if let Some(n) = c.n {
            q.push(format!("n={n}"));
        }
        if let Some(l) = &last {
            q.push(format!("last={l}"));
        }
        let (r, list) = get_page(&cx, format!("/v2/{repo}/tags/list?{}", q.join("&"))).await?;
        let got = list.tags.unwrap_or_default();
        judge_page(
            &c.tags,
            c.n,
            last.as_deref(),
            &got,
            r.header("link").is_some(),
        )
        .map_err(|(req, why)| cx.fail(req, why))
    })
    .await
}

#[cfg(test)]
mod tests {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    /// A case prints `last` as the tag sent (issue 18 item 12: a shrunk case
    /// showed `last: Some(0)` while the failure said `last=Some("A")`).
    #[test]
    fn a_case_shows_last_as_the_tag_it_sends() {
        let mut runner = TestRunner::deterministic();
        let mut seen = 0;
        for _ in 0..64 {
            let c = super::case().new_tree(&mut runner).unwrap().current();
            if let Some(last) = &c.last {
                assert!(c.tags.contains(last));
                let shown = format!("{c:?}");
                assert!(shown.contains(&format!("last: Some({last:?})")), "{shown}");
                seen += 1;
            }
        }
        assert!(seen > 0, "no case had a last");
    }
}
