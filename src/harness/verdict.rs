//! What a check concludes: the verdict model shared by checks, runner and reports.

use serde::Serialize;

/// The harness groups its checks by the part of the spec they exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// `/v2/`, authentication, HTTP hygiene, Warning headers, proxying.
    Protocol,
    /// Manifest and blob GET/HEAD, ranges.
    Pull,
    /// Blob uploads: monolithic, single POST, chunked, cancel, mount, digests.
    Push,
    /// Manifest PUT: byte round trip, tag parameters, Content-Type, size limit.
    Manifests,
    /// Tag listing and pagination.
    Tags,
    /// The referrers API.
    Referrers,
    /// Deleting tags, manifests and blobs, and what a delete makes visible.
    Delete,
    /// Registry extensions: `_oci/ext/discover`, and the extensions it advertises
    /// (checked only when advertised).
    Extensions,
    /// Error envelopes and codes on every 4xx seen.
    Errors,
    /// Property-based checks: random inputs against a model, shrunk on failure.
    Properties,
}

impl Section {
    /// Every section, in report order.
    pub const ALL: [Section; 10] = [
        Section::Protocol,
        Section::Pull,
        Section::Push,
        Section::Manifests,
        Section::Tags,
        Section::Referrers,
        Section::Delete,
        Section::Extensions,
        Section::Errors,
        Section::Properties,
    ];

    /// The section's name, as used by `--section` and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Protocol => "protocol",
            Section::Pull => "pull",
            Section::Push => "push",
            Section::Manifests => "manifests",
            Section::Tags => "tags",
            Section::Referrers => "referrers",
            Section::Delete => "delete",
            Section::Extensions => "extensions",
            Section::Errors => "errors",
            Section::Properties => "properties",
        }
    }

    /// Parses a `--section` value.
    pub fn parse(s: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a check failed: the requirement broken, what the spec expected, and the
/// HTTP exchanges that showed it (credentials already redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The requirement id (`R053`).
    pub requirement: String,
    /// What the spec expected and what was seen instead, in one or two sentences.
    pub expected: String,
    /// The exchanges of the check up to the failure, rendered as text.
    pub transcript: String,
}

/// The conclusion of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    /// Every assertion held.
    Pass,
    /// A requirement was broken.
    Fail(Failure),
    /// The registry gave an answer the spec allows for an optional feature it lacks.
    Unsupported {
        /// What was observed.
        reason: String,
    },
    /// Not run: a prerequisite failed or the feature was turned off.
    Skipped {
        /// Why.
        reason: String,
    },
    /// The registry refused the run's credentials (401 or 403) for an action the
    /// check needed: a permission the run lacks, not a broken requirement.
    #[serde(rename = "not-permitted")]
    NotPermitted {
        /// The refused request and the registry's answer.
        reason: String,
    },
}

impl Verdict {
    /// Builds an `Unsupported` verdict.
    pub fn unsupported(reason: impl Into<String>) -> Verdict {
        Verdict::Unsupported {
            reason: reason.into(),
        }
    }

    /// Builds a `Skipped` verdict.
    pub fn skipped(reason: impl Into<String>) -> Verdict {
        Verdict::Skipped {
            reason: reason.into(),
        }
    }

    /// The verdict's kind as a short word (`pass`, `fail`, `unsupported`, `skipped`,
    /// `not-permitted`).
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Unsupported { .. } => "unsupported",
            Verdict::Skipped { .. } => "skipped",
            Verdict::NotPermitted { .. } => "not-permitted",
        }
    }
}

/// A check's verdict together with the check's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Stable check id, such as `push.chunk-out-of-order`.
    pub id: String,
    /// The section it belongs to.
    pub section: Section,
    /// One-line description.
    pub title: String,
    /// Requirements the check covers.
    pub covers: Vec<String>,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Level of the failed requirement (`MUST`, `SHOULD`, …), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Wall-clock time spent, in milliseconds.
    pub millis: u64,
}

impl Outcome {
    /// True when this outcome is a failure of a MUST or MUST NOT requirement.
    pub fn is_must_failure(&self) -> bool {
        matches!(self.verdict, Verdict::Fail(_))
            && self.level.as_deref().is_some_and(|l| l.starts_with("MUST"))
    }
}
