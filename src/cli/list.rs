//! `marina list`, `list-tags`, `list-manifests`, `list-referrers`: browse a
//! registry through the listing extension, or the standard API where it is missing.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::connect::ConnectArgs;
use crate::listing_client::{
    Connection, Filters, Listing, ListingClient, Manifest, Options, RepoTarget, Repository,
    Sorting, Source, Tag, Target,
};

/// How to reach the registry and how to print.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Sort by `name` or `pushed` (push time), optionally `:asc` or `:desc`
    /// (e.g. `pushed:desc`).
    #[arg(long, value_name = "KEY[:DIR]", default_value = "name")]
    pub sort: Sorting,
    /// Print at most this many items.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Use http even for a non-loopback registry (loopback hosts use http anyway).
    #[arg(long)]
    pub plain_http: bool,
    /// Credentials and TLS trust.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Conditions on manifests.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only manifests of this artifact type.
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// Only manifests with this annotation: KEY (present) or KEY=VALUE (repeatable; all must hold).
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub annotation: Vec<String>,
}

/// `marina list <registry>/[namespace/]`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  marina list 127.0.0.1:5000/\n  marina list 127.0.0.1:5000/org2/team-a/ --sort pushed:desc"
)]
pub struct ListArgs {
    /// `<registry>/` for every repository, `<registry>/<namespace>/` for those under it.
    pub target: Target,
    /// Output and connection options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `marina list-tags <registry>/<repo>[@<digest>]`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  marina list-tags 127.0.0.1:5000/hello-world\n  marina list-tags 127.0.0.1:5000/hello-world@sha256:… (tags pointing at that manifest)"
)]
pub struct ListTagsArgs {
    /// The repository, optionally `@<digest>` to list only the tags pointing at it.
    pub target: RepoTarget,
    /// Manifest filters.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Output and connection options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `marina list-manifests <registry>/<repo>`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  marina list-manifests 127.0.0.1:5000/org1/artifact-a --untagged"
)]
pub struct ListManifestsArgs {
    /// The repository.
    pub target: RepoTarget,
    /// Manifest filters.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Only tagged manifests.
    #[arg(long, conflicts_with = "untagged")]
    pub tagged: bool,
    /// Only untagged manifests.
    #[arg(long)]
    pub untagged: bool,
    /// Output and connection options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `marina list-referrers <registry>/<repo>@<digest>`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  marina list-referrers 127.0.0.1:5000/hello-world@sha256:… --artifact-type application/vnd.example.sbom"
)]
pub struct ListReferrersArgs {
    /// The repository and the subject's digest.
    pub target: RepoTarget,
    /// Manifest filters.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Output and connection options.
    #[command(flatten)]
    pub output: OutputArgs,
}

fn options(output: &OutputArgs, filters: Option<&FilterArgs>, tagged: Option<bool>) -> Options {
    Options {
        sort: output.sort,
        filters: Filters {
            artifact_type: filters.and_then(|f| f.artifact_type.clone()),
            annotations: filters.map(|f| f.annotation.clone()).unwrap_or_default(),
            tagged,
        },
        limit: output.limit,
    }
}

/// Runs `f` with a client for `registry` on a runtime of its own; errors are
/// printed under `marina <command>`.
fn with_client<R, F>(
    command: &str,
    registry: &str,
    output: &OutputArgs,
    f: F,
) -> Result<R, ExitCode>
where
    F: AsyncFnOnce(ListingClient) -> Result<R, crate::listing_client::ClientError>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("marina {command}: cannot start the async runtime: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    let result = rt.block_on(async {
        let conn = Connection {
            plain_http: output.plain_http,
            insecure: output.connect.insecure,
            ca_file: output.connect.ca_file.clone(),
            credentials: output
                .connect
                .credentials()
                .map_err(crate::listing_client::ClientError::Invalid)?,
        };
        let client = ListingClient::new(registry, &conn)?;
        f(client).await
    });
    result.map_err(|e| {
        eprintln!("marina {command}: {e}");
        ExitCode::FAILURE
    })
}

fn run<T, F>(
    command: &str,
    registry: &str,
    output: &OutputArgs,
    list: F,
    print: fn(&[T]),
) -> ExitCode
where
    T: Serialize,
    F: AsyncFnOnce(ListingClient) -> Result<Listing<T>, crate::listing_client::ClientError>,
{
    let result = with_client(command, registry, output, list);
    match result {
        Ok(listing) => {
            if output.json {
                print_json(&listing);
            } else {
                print(&listing.items);
                if listing.source == Source::Standard {
                    eprintln!("note: {registry} does not offer the _marina listing extension; used the standard API");
                }
                for n in &listing.not_honoured {
                    eprintln!("note: not honoured: {n}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `marina du <registry>/[namespace/]`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  marina du 127.0.0.1:5000/\n  marina du 127.0.0.1:5000/org2/team-a/ --json"
)]
pub struct DuArgs {
    /// `<registry>/` for every repository, `<registry>/<namespace>/` for those under it.
    pub target: Target,
    /// Output and connection options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `marina du`: bytes per repository, what only it holds, and the total.
pub fn du(args: DuArgs) -> ExitCode {
    let ns = args.target.namespace.clone();
    let registry = args.target.registry.clone();
    let report = match with_client("du", &registry, &args.output, async move |c| {
        c.usage(ns.as_deref()).await
    }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.output.json {
        let rows: Vec<serde_json::Value> = report
            .repositories
            .iter()
            .map(|r| serde_json::json!({"name": r.name, "bytes": r.bytes, "uniqueBytes": r.unique_bytes}))
            .collect();
        let v = serde_json::json!({
            "repositories": rows,
            "totalBytes": report.total_bytes,
            "source": if report.source == Source::Extension { "extension" } else { "standard" },
            "notes": report.notes,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let width = report
        .repositories
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(10);
    println!("{:<width$}  {:>12}  {:>12}", "REPOSITORY", "SIZE", "UNIQUE");
    for r in &report.repositories {
        let unique = r
            .unique_bytes
            .map_or_else(|| "?".to_string(), |u| u.to_string());
        println!("{:<width$}  {:>12}  {:>12}", r.name, r.bytes, unique);
    }
    match report.total_bytes {
        Some(t) => println!("{:<width$}  {:>12}", "TOTAL", t),
        None => println!("{:<width$}  {:>12}", "TOTAL", "?"),
    }
    if report.source == Source::Standard {
        eprintln!(
            "note: {registry} does not offer the _marina listing extension; used the standard API"
        );
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    ExitCode::SUCCESS
}

/// `marina list`.
pub fn list(args: ListArgs) -> ExitCode {
    let opts = options(&args.output, None, None);
    let ns = args.target.namespace.clone();
    run(
        "list",
        &args.target.registry,
        &args.output,
        async move |c| c.repositories(ns.as_deref(), &opts).await,
        print_repositories,
    )
}

/// `marina list-tags`.
pub fn list_tags(args: ListTagsArgs) -> ExitCode {
    let opts = options(&args.output, Some(&args.filters), None);
    let t = args.target.clone();
    run(
        "list-tags",
        &args.target.registry,
        &args.output,
        async move |c| {
            let digest = t.digest.map(|d| d.to_string());
            c.tags(t.repo.as_str(), digest.as_deref(), &opts).await
        },
        print_tags,
    )
}

/// `marina list-manifests`.
pub fn list_manifests(args: ListManifestsArgs) -> ExitCode {
    let tagged = match (args.tagged, args.untagged) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let opts = options(&args.output, Some(&args.filters), tagged);
    let t = args.target.clone();
    if t.digest.is_some() {
        eprintln!("marina list-manifests: give a repository without @<digest> (list-referrers lists the referrers of a digest)");
        return ExitCode::from(2);
    }
    run(
        "list-manifests",
        &args.target.registry,
        &args.output,
        async move |c| c.manifests(t.repo.as_str(), &opts).await,
        print_manifests,
    )
}

/// `marina list-referrers`.
pub fn list_referrers(args: ListReferrersArgs) -> ExitCode {
    let opts = options(&args.output, Some(&args.filters), None);
    let t = args.target.clone();
    let Some(subject) = t.digest.clone() else {
        eprintln!("marina list-referrers: give the subject as <registry>/<repository>@<digest>");
        return ExitCode::from(2);
    };
    run(
        "list-referrers",
        &args.target.registry,
        &args.output,
        async move |c| {
            c.referrers(t.repo.as_str(), &subject.to_string(), &opts)
                .await
        },
        print_manifests,
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonOut<'a, T> {
    source: Source,
    not_honoured: &'a [String],
    items: &'a [T],
}

fn print_json<T: Serialize>(l: &Listing<T>) {
    let out = JsonOut {
        source: l.source,
        not_honoured: &l.not_honoured,
        items: &l.items,
    };
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}

/// Renders rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// `sha256:0123456789ab…`: a digest short enough for a table cell.
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..12]),
        _ => digest.to_string(),
    }
}

fn print_repositories(items: &[Repository]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| vec![r.name.clone(), or_dash(r.pushed_at.as_deref())])
        .collect();
    print!("{}", table(&["REPOSITORY", "PUSHED"], &rows));
}

fn print_tags(items: &[Tag]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.digest.clone(),
                or_dash(t.pushed_at.as_deref()),
            ]
        })
        .collect();
    print!("{}", table(&["TAG", "DIGEST", "PUSHED"], &rows));
}

fn print_manifests(items: &[Manifest]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|m| {
            let annotations = m
                .annotations
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            vec![
                m.digest.clone(),
                m.media_type.clone(),
                or_dash(m.artifact_type.as_deref()),
                m.size.to_string(),
                match (m.tags.is_empty(), m.held_by.first()) {
                    // Untagged, but part of an image: not garbage.
                    (true, Some(index)) => format!("(in index {})", short(index)),
                    _ => or_dash(Some(&m.tags.join(","))),
                },
                or_dash(m.pushed_at.as_deref()),
                or_dash(Some(&annotations)),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "DIGEST",
                "MEDIA TYPE",
                "ARTIFACT TYPE",
                "SIZE",
                "TAGS",
                "PUSHED",
                "ANNOTATIONS"
            ],
            &rows
        )
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["TAG", "DIGEST"],
            &[
                vec!["latest".into(), "sha256:a".into()],
                vec!["v1".into(), "-".into()],
            ],
        );
        assert_eq!(t, "TAG     DIGEST\nlatest  sha256:a\nv1      -\n");
    }
}
