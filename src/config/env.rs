//! Every `MARINA_*` environment variable Marina reads, in one place, and the
//! check that warns about the ones it does not know (a typo such as
//! `MARINA_LISTN` would otherwise be ignored without a word).

/// `--config`: the TOML configuration file of `marina serve`.
pub const CONFIG: &str = "MARINA_CONFIG";
/// `--listen`.
pub const LISTEN: &str = "MARINA_LISTEN";
/// `--data-dir`.
pub const DATA_DIR: &str = "MARINA_DATA_DIR";
/// `--delete-manifests`.
pub const DELETE_MANIFESTS: &str = "MARINA_DELETE_MANIFESTS";
/// `--delete-tags`.
pub const DELETE_TAGS: &str = "MARINA_DELETE_TAGS";
/// `--delete-blobs`.
pub const DELETE_BLOBS: &str = "MARINA_DELETE_BLOBS";
/// `--referrers`.
pub const REFERRERS: &str = "MARINA_REFERRERS";
/// `--sparse-manifests`.
pub const SPARSE_MANIFESTS: &str = "MARINA_SPARSE_MANIFESTS";
/// `--max-manifest-bytes`.
pub const MAX_MANIFEST_BYTES: &str = "MARINA_MAX_MANIFEST_BYTES";
/// `--referrers-page-size`.
pub const REFERRERS_PAGE_SIZE: &str = "MARINA_REFERRERS_PAGE_SIZE";
/// `--max-list-page`.
pub const MAX_LIST_PAGE: &str = "MARINA_MAX_LIST_PAGE";
/// `--upload-expiry-secs`.
pub const UPLOAD_EXPIRY_SECS: &str = "MARINA_UPLOAD_EXPIRY_SECS";
/// `--min-free-mib`.
pub const MIN_FREE_MIB: &str = "MARINA_MIN_FREE_MIB";
/// `--preallocate-log`.
pub const PREALLOCATE_LOG: &str = "MARINA_PREALLOCATE_LOG";
/// `--gc-interval-secs`.
pub const GC_INTERVAL_SECS: &str = "MARINA_GC_INTERVAL_SECS";
/// `--gc-grace-secs`.
pub const GC_GRACE_SECS: &str = "MARINA_GC_GRACE_SECS";
/// `--log-format`.
pub const LOG_FORMAT: &str = "MARINA_LOG_FORMAT";
/// `--shutdown-timeout-secs`.
pub const SHUTDOWN_TIMEOUT_SECS: &str = "MARINA_SHUTDOWN_TIMEOUT_SECS";
/// `--idle-timeout-secs`.
pub const IDLE_TIMEOUT_SECS: &str = "MARINA_IDLE_TIMEOUT_SECS";
/// `--metrics-listen`.
pub const METRICS_LISTEN: &str = "MARINA_METRICS_LISTEN";
/// `--tls-cert`.
pub const TLS_CERT: &str = "MARINA_TLS_CERT";
/// `--tls-key`.
pub const TLS_KEY: &str = "MARINA_TLS_KEY";
/// `--htpasswd`.
pub const HTPASSWD: &str = "MARINA_HTPASSWD";
/// `--blob-url`.
pub const BLOB_URL: &str = "MARINA_BLOB_URL";
/// `--blob-redirect`.
pub const BLOB_REDIRECT: &str = "MARINA_BLOB_REDIRECT";
/// `--metadata-url`.
pub const METADATA_URL: &str = "MARINA_METADATA_URL";
/// `--auth-config`.
pub const AUTH_CONFIG: &str = "MARINA_AUTH_CONFIG";
/// `--auth-scheme`.
pub const AUTH_SCHEME: &str = "MARINA_AUTH_SCHEME";
/// `marina conformance --password`, kept out of the process list.
pub const CONFORMANCE_PASSWORD: &str = "MARINA_CONFORMANCE_PASSWORD";
/// Tests only: a real current-suite binary for the end-to-end conformance test.
pub const CONFORMANCE_BIN: &str = "MARINA_CONFORMANCE_BIN";
/// Tests only: a real v1.1.x ginkgo binary for the end-to-end conformance test.
pub const CONFORMANCE_V111_BIN: &str = "MARINA_CONFORMANCE_V111_BIN";
/// Tests only: rewrite `spec/requirements.toml`'s derived parts.
pub const BLESS_REQUIREMENTS: &str = "MARINA_BLESS_REQUIREMENTS";
/// Tests only: rewrite `spec/openapi.json` from the generated document.
pub const UPDATE_OPENAPI: &str = "MARINA_UPDATE_OPENAPI";
/// Tests only: a bucket (`s3://BUCKET?endpoint=…&region=…`) the S3 tests use,
/// each under a prefix of its own; credentials from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`.
pub const TEST_S3_URL: &str = "MARINA_TEST_S3_URL";
/// Tests only: a PostgreSQL server (`postgres://…`) the PostgreSQL tests use,
/// each in a schema of its own.
pub const TEST_POSTGRES_URL: &str = "MARINA_TEST_POSTGRES_URL";

/// Every name above.
pub const KNOWN: &[&str] = &[
    CONFIG,
    LISTEN,
    DATA_DIR,
    METADATA_URL,
    BLOB_URL,
    BLOB_REDIRECT,
    DELETE_MANIFESTS,
    DELETE_TAGS,
    DELETE_BLOBS,
    REFERRERS,
    SPARSE_MANIFESTS,
    MAX_MANIFEST_BYTES,
    REFERRERS_PAGE_SIZE,
    MAX_LIST_PAGE,
    UPLOAD_EXPIRY_SECS,
    MIN_FREE_MIB,
    PREALLOCATE_LOG,
    GC_INTERVAL_SECS,
    GC_GRACE_SECS,
    LOG_FORMAT,
    SHUTDOWN_TIMEOUT_SECS,
    IDLE_TIMEOUT_SECS,
    METRICS_LISTEN,
    TLS_CERT,
    TLS_KEY,
    HTPASSWD,
    AUTH_CONFIG,
    AUTH_SCHEME,
    CONFORMANCE_PASSWORD,
    CONFORMANCE_BIN,
    CONFORMANCE_V111_BIN,
    BLESS_REQUIREMENTS,
    UPDATE_OPENAPI,
    TEST_POSTGRES_URL,
    TEST_S3_URL,
];

/// One warning line per `MARINA_*` name among `names` that Marina does not
/// read, naming the closest known one when it looks like a typo.
pub fn unknown<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| n.starts_with("MARINA_") && !KNOWN.contains(n))
        .map(|n| {
            let closest = KNOWN
                .iter()
                .map(|k| (distance(n, k), *k))
                .min()
                .filter(|(d, _)| *d <= 3);
            match closest {
                Some((_, k)) => format!("unknown variable {n} is ignored; did you mean {k}?"),
                None => format!("unknown variable {n} is ignored"),
            }
        })
        .collect()
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_named_with_the_closest_known_variable() {
        let warnings = unknown(["MARINA_LISTN", "MARINA_LISTEN", "PATH", "MARINA_FROBNICATE"]);
        assert_eq!(
            warnings,
            vec![
                "unknown variable MARINA_LISTN is ignored; did you mean MARINA_LISTEN?".to_string(),
                "unknown variable MARINA_FROBNICATE is ignored".to_string(),
            ]
        );
    }

    /// Every `MARINA_*` literal in Marina's sources is declared here.
    #[test]
    fn every_variable_in_the_sources_is_known() {
        fn scan(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    scan(&p, found);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for piece in text.split('"').skip(1).step_by(2) {
                        let name: String = piece
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect();
                        if name.starts_with("MARINA_")
                            && name.len() == piece.len()
                            && name.len() > 7
                        {
                            found.push((name, p.display().to_string()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        scan(&root.join("src"), &mut found);
        // The typos of the test above are not variables.
        let examples = ["MARINA_LISTN", "MARINA_FROBNICATE"];
        let missing: Vec<_> = found
            .iter()
            .filter(|(n, _)| !KNOWN.contains(&n.as_str()) && !examples.contains(&n.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "undeclared MARINA_* variables: {missing:?}"
        );
        // The scan sees this file's declarations, so it can see the others.
        for k in KNOWN {
            assert!(
                found.iter().any(|(n, _)| n == k),
                "{k} not found by the scan"
            );
        }
    }
}
