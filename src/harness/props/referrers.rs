//! Referrers against a model: random sets of referrers (images and indexes, with
//! and without artifactType) and a random filter.

use proptest::prelude::*;

use super::run_property;
use crate::harness::checks::referrers::{
    artifact_config, judge, list_referrers, push_referrer, push_subject, Pushed,
};
use crate::harness::checks::CheckDef;
use crate::harness::context::{Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;

/// The referrers property checks.
pub fn checks() -> Vec<CheckDef> {
    vec![harness_check!(
        "properties.referrers-model",
        Properties,
        "for random referrers and a random artifactType filter, the list equals the model (filtered only when announced)",
        ["R104", "R106", "R107", "R108", "R114"],
        referrers_model
    )]
}

const TYPES: [&str; 3] = [
    "application/vnd.marina.a",
    "application/vnd.marina.b",
    "application/vnd.marina.c",
];

#[derive(Debug, Clone)]
struct Case {
    /// (artifactType index, is an index) per referrer.
    referrers: Vec<(Option<usize>, bool)>,
    filter: Option<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec((proptest::option::of(0usize..3), any::<bool>()), 0..6),
        proptest::option::of(0usize..3),
    )
        .prop_map(|(referrers, filter)| Case { referrers, filter })
}

async fn referrers_model(cx: &Ctx) -> Step<Verdict> {
    cx.referrers_available().await?;
    let repo = cx.repo("prop-referrers");
    run_property(cx, "referrers-model", case, move |cx, c: Case| {
        let repo = repo.clone();
        async move {
            let subject = push_subject(&cx, &repo).await?;
            let config = artifact_config(&cx, &repo).await?;
            let mut pushed: Vec<Pushed> = Vec::new();
            for (t, index) in &c.referrers {
                pushed.push(
                    push_referrer(&cx, &repo, &subject, &config, t.map(|i| TYPES[i]), *index)
                        .await?,
                );
            }
            let filter = c.filter.map(|i| TYPES[i]);
            let (listed, applied, _) = list_referrers(&cx, &repo, &subject.digest, filter).await?;
            let want: Vec<Pushed> = match (filter, &applied) {
                (Some(f), Some(_)) => pushed
                    .into_iter()
                    .filter(|p| p.artifact_type.as_deref() == Some(f))
                    .collect(),
                _ => pushed,
            };
            judge(&listed, &want).map_err(|(req, why)| {
                let req = if filter.is_some() && applied.is_none() && req == "R104" {
                    "R114"
                } else {
                    req
                };
                cx.fail(
                    req,
                    format!("filter {filter:?}, OCI-Filters-Applied {applied:?}: {why}"),
                )
            })
        }
    })
    .await
}
