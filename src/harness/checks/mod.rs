//! The checks, grouped by section. Each check is a small async function with a
//! stable id; it declares the requirements it covers and returns a verdict.
//! `all()` lists them in run order: the run-wide observers (error envelopes,
//! Warning headers) come last so that they see every exchange of the run.

use std::future::Future;
use std::pin::Pin;

use super::context::{Ctx, Step};
use super::verdict::{Section, Verdict};

pub(crate) mod delete;
pub(crate) mod errors;
pub(crate) mod extensions;
pub(crate) mod manifests;
pub(crate) mod marina;
pub(crate) mod protocol;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod push_chunks;
pub(crate) mod referrers;
pub(crate) mod tags;

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Step<Verdict>> + Send + 'a>>;
/// A check's entry point.
pub type RunFn = for<'a> fn(&'a Ctx) -> CheckFuture<'a>;

/// A check: identity, coverage and entry point.
#[derive(Clone, Copy)]
pub struct CheckDef {
    /// Stable id, `section.name`.
    pub id: &'static str,
    /// Section.
    pub section: Section,
    /// One-line description.
    pub title: &'static str,
    /// Requirement ids it covers.
    pub covers: &'static [&'static str],
    /// Entry point.
    pub run: RunFn,
}

impl std::fmt::Debug for CheckDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckDef").field("id", &self.id).finish()
    }
}

/// Declares a [`CheckDef`] for an `async fn(&Ctx) -> Step<Verdict>`.
#[macro_export]
#[doc(hidden)]
macro_rules! harness_check {
    ($id:literal, $section:ident, $title:literal, [$($r:literal),* $(,)?], $f:path) => {
        $crate::harness::checks::CheckDef {
            id: $id,
            section: $crate::harness::verdict::Section::$section,
            title: $title,
            covers: &[$($r),*],
            run: {
                fn run(cx: &$crate::harness::context::Ctx) -> $crate::harness::checks::CheckFuture<'_> {
                    Box::pin($f(cx))
                }
                run
            },
        }
    };
}

/// Every check, in run order.
pub fn all() -> Vec<CheckDef> {
    let mut v = Vec::new();
    v.extend(protocol::early());
    v.extend(pull::checks());
    v.extend(push::checks());
    v.extend(push_chunks::checks());
    v.extend(manifests::checks());
    v.extend(tags::checks());
    v.extend(referrers::checks());
    v.extend(delete::checks());
    v.extend(extensions::checks());
    v.extend(marina::checks());
    v.extend(super::props::checks());
    v.extend(errors::checks());
    v.extend(protocol::late());
    v
}
