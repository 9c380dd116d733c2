//! Runs the selected checks in order, with a progress line, per-check time limits,
//! and cleanup of everything the run created.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::catalog;
use super::checks::{self, CheckDef};
use super::context::{Created, Ctx};
use super::options::Options;
use super::report::Report;
use super::verdict::{Outcome, Verdict};
use crate::client::{Client, ClientError, Request};

/// Longest time one check may take.
const CHECK_TIME_LIMIT: Duration = Duration::from_secs(600);

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Bad URL or TLS setup.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The registry did not answer.
    #[error("cannot reach the registry: {0}\nIs it running at that address? For TLS problems use --ca-file FILE or --insecure.")]
    Connect(String),
    /// The registry wants credentials the run does not have, or refused them.
    #[error("{0}")]
    Auth(String),
    /// No check matches the selection.
    #[error("no check matches the selected sections and ids (see marina check --list)")]
    NothingSelected,
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{:08x}",
        (nanos as u64 ^ u64::from(std::process::id()).rotate_left(32)) as u32
    )
}

async fn preflight(client: &Client, options: &Options) -> Result<(), HarnessError> {
    let r = client
        .send(Request::get("/v2/"))
        .await
        .map_err(|e| HarnessError::Connect(e.to_string()))?;
    if r.status == 401 {
        let challenges: Vec<_> = r
            .header_all("www-authenticate")
            .into_iter()
            .flat_map(crate::client::headers::parse_www_authenticate)
            .collect();
        if challenges.is_empty()
            || challenges
                .iter()
                .any(|c| c.scheme == "bearer" && c.param("realm").is_none())
        {
            return Err(HarnessError::Auth(format!(
                "GET /v2/ answered 401 with a challenge no client can answer (R143: a Bearer challenge names its realm): {:?}",
                r.header_all("www-authenticate")
            )));
        }
        return Err(HarnessError::Auth(if options.credentials.is_some() {
            "the registry refused the credentials (GET /v2/ still answers 401); check --username and --password".into()
        } else {
            "the registry requires authentication (GET /v2/ answered 401); pass --username and --password".into()
        }));
    }
    Ok(())
}

/// Runs one check, turning a timeout into a skip and attaching the failed level.
async fn run_one(cx: &Ctx, def: &CheckDef) -> Outcome {
    cx.client().clear_log();
    let start = Instant::now();
    let verdict = match tokio::time::timeout(CHECK_TIME_LIMIT, (def.run)(cx)).await {
        Ok(Ok(v) | Err(v)) => v,
        Err(_) => Verdict::skipped(format!(
            "did not finish within {} s",
            CHECK_TIME_LIMIT.as_secs()
        )),
    };
    let level = match &verdict {
        Verdict::Fail(f) => catalog::find(&f.requirement).map(|r| r.level.clone()),
        _ => None,
    };
    Outcome {
        id: def.id.to_string(),
        section: def.section,
        title: def.title.to_string(),
        covers: def.covers.iter().map(|s| s.to_string()).collect(),
        verdict,
        level,
        millis: start.elapsed().as_millis() as u64,
    }
}

/// Deletes what the run created, manifests first; returns a summary naming
/// (up to a few of) the deletes that failed and why.
async fn cleanup(cx: &Ctx) -> String {
    if !cx.options().delete {
        return "cleanup skipped: deleting is turned off".into();
    }
    let mut created = cx.take_created();
    created.sort_by_key(|c| matches!(c, Created::Blob(..)));
    created.dedup();
    let mut ok = 0;
    let mut failed = Vec::new();
    for c in &created {
        let path = match c {
            Created::Manifest(repo, d) => format!("/v2/{repo}/manifests/{d}"),
            Created::Blob(repo, d) => format!("/v2/{repo}/blobs/{d}"),
        };
        match cx.client().send(Request::delete(path.clone())).await {
            Ok(r) if matches!(r.status, 202 | 404) => ok += 1,
            Ok(r) => failed.push(format!("DELETE {path}: {}", super::context::refusal(&r))),
            Err(e) => failed.push(format!("DELETE {path}: {e}")),
        }
    }
    let mut out = format!(
        "cleanup: {ok} of {} created manifests and blobs deleted or already gone, {} not deleted",
        created.len(),
        failed.len()
    );
    const SHOWN: usize = 5;
    for f in failed.iter().take(SHOWN) {
        out.push_str("\n  ");
        out.push_str(f);
    }
    if failed.len() > SHOWN {
        out.push_str(&format!("\n  … and {} more", failed.len() - SHOWN));
    }
    out
}

/// Runs the harness against `url`.
pub async fn run(url: &str, options: Options) -> Result<Report, HarnessError> {
    let selected: Vec<CheckDef> = checks::all()
        .into_iter()
        .filter(|c| options.selects(c.id, c.section))
        .collect();
    if selected.is_empty() {
        return Err(HarnessError::NothingSelected);
    }
    let client = Client::new(url, &options.client_options())?;
    preflight(&client, &options).await?;
    let progress = options.progress && std::io::stderr().is_terminal();
    let (seed, cases) = (options.seed, options.cases);
    let cx = Ctx::new(client, options, run_id());
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for (i, def) in selected.iter().enumerate() {
        if progress {
            eprint!("\r\x1b[2K[{}/{}] {}", i + 1, selected.len(), def.id);
        }
        outcomes.push(run_one(&cx, def).await);
    }
    if progress {
        eprint!("\r\x1b[2K[cleanup]");
    }
    let cleanup = cleanup(&cx).await;
    if progress {
        eprint!("\r\x1b[2K");
    }
    Ok(Report {
        target: url.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        seed,
        cases,
        millis: start.elapsed().as_millis() as u64,
        outcomes,
        cleanup,
    })
}
