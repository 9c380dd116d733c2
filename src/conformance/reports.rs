//! Where a run's files end up: the suite's own reports (results.yaml,
//! junit.xml, report.html), its captured output, and the redacted record of
//! how it was configured, all copied into one directory per run.
//!
//! The suite always writes into a fresh private directory first, so a stale
//! `results.yaml` left in `--out` by an earlier run can never be mistaken for
//! this run's verdict; only then are the files copied.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// The parent of the default output directories.
pub const DEFAULT_ROOT: &str = "conformance-results";

/// The default output directory for a run that started at `now`:
/// `./conformance-results/<UTC timestamp>`.
pub fn default_dir(now: SystemTime) -> PathBuf {
    Path::new(".").join(DEFAULT_ROOT).join(utc_stamp(now))
}

/// Formats a time as `YYYYMMDDTHHMMSSZ` (UTC), safe in file names and sorting
/// in time order.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Creates the output directory. An explicit `--out` may already exist; the
/// default timestamped one gets a `-2`, `-3`... suffix if two runs start in
/// the same second.
pub fn create_out_dir(requested: Option<&Path>, now: SystemTime) -> anyhow::Result<PathBuf> {
    if let Some(dir) = requested {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        return Ok(dir.to_path_buf());
    }
    let base = default_dir(now);
    if let Some(parent) = base.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    for n in 1.. {
        let candidate = if n == 1 {
            base.clone()
        } else {
            PathBuf::from(format!("{}-{n}", base.display()))
        };
        match fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", candidate.display())),
        }
    }
    unreachable!("the loop only ends by returning")
}

/// Copies every regular file of `from` into `to` and returns their names,
/// sorted. Copied files replace files of the same name.
pub fn copy_all(from: &Path, to: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        fs::copy(entry.path(), to.join(&name))
            .with_context(|| format!("copying {} to {}", entry.path().display(), to.display()))?;
        names.push(name.to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_and_sortable() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // 2026-11-23T08:25:52Z
        let t = UNIX_EPOCH + Duration::from_secs(1_795_422_352);
        assert_eq!(utc_stamp(t), "20261123T082552Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_stamp(t), "20000229T000000Z");
    }

    #[test]
    fn copies_files_only() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        fs::write(from.path().join("b.xml"), "b").unwrap();
        fs::write(from.path().join("a.yaml"), "a").unwrap();
        fs::create_dir(from.path().join("sub")).unwrap();
        assert_eq!(
            copy_all(from.path(), to.path()).unwrap(),
            vec!["a.yaml", "b.xml"]
        );
        assert_eq!(fs::read_to_string(to.path().join("b.xml")).unwrap(), "b");
    }
}
