//! Extension discovery (`extensions/_oci.md`): the registry-level and
//! repository-level `_oci/ext/discover` answers, judged against the spec's rules
//! for extensions (`extensions/README.md`). A registry without discovery is
//! Unsupported: the spec lets a registry offer no extension at all.

use super::CheckDef;
use crate::client::Request;
use crate::harness::context::{Ctx, Step};
use crate::harness::discover::{self, Answer, Level};
use crate::harness::verdict::Verdict;
use crate::harness_check;

/// The discovery checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("extensions.discover", Extensions, "GET /v2/_oci/ext/discover lists extensions in the _oci format: names well-formed, unique, not reserved; endpoints under /v2/<_name>/<component>/<module>", ["X002", "X004", "X005", "X012", "X013", "X014", "X015"], registry),
        harness_check!("extensions.discover-repository", Extensions, "GET /v2/<name>/_oci/ext/discover does the same for a repository, its endpoints registry-level or under that repository", ["X002", "X004", "X005", "X012", "X013", "X014", "X015"], repository),
    ]
}

async fn judge(cx: &Ctx, level: Level<'_>) -> Step<Verdict> {
    let r = cx.send(Request::get(level.path())).await?;
    match discover::classify(r.status, r.header("content-type"), &r.body, level) {
        Answer::Listed(list) => {
            for e in &list {
                cx.ensure(r.resolve(&e.url).is_some(), "X014", || {
                    format!(
                        "the url of {} is a URL or a reference resolvable against {}; got {:?}",
                        e.name, r.url, e.url
                    )
                })?;
            }
            Ok(Verdict::Pass)
        }
        Answer::Absent(why) => Ok(Verdict::unsupported(format!(
            "no extension discovery: {why}"
        ))),
        Answer::Malformed((req, why)) => Err(cx.fail(req, why)),
    }
}

async fn registry(cx: &Ctx) -> Step<Verdict> {
    judge(cx, Level::Registry).await
}

async fn repository(cx: &Ctx) -> Step<Verdict> {
    let image = cx.image().await?;
    judge(cx, Level::Repository(&image.repo)).await
}
