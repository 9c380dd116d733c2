//! What a run measures and how hard: the workloads, sizes, counts, concurrency and
//! limits, with defaults that finish in about a minute per registry on 2 cores.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// A group of phases that `--workloads` selects by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Monolithic and chunked blob pushes of each size.
    BlobPush,
    /// Whole blob pulls of each size, and ranged reads.
    BlobPull,
    /// Manifest GET and HEAD, by tag and by digest.
    Manifests,
    /// Many small blob pushes at once.
    SmallBlobs,
    /// One manifest tagged many times, one PUT per tag.
    TagPush,
    /// Pages of a long tag list.
    TagList,
    /// Pages of the referrers of one subject, filtered and not.
    Referrers,
    /// Pages of the repository catalog.
    Catalog,
}

impl Workload {
    /// Every workload, in the order they run.
    pub const ALL: [Workload; 8] = [
        Workload::BlobPush,
        Workload::BlobPull,
        Workload::Manifests,
        Workload::SmallBlobs,
        Workload::TagPush,
        Workload::TagList,
        Workload::Referrers,
        Workload::Catalog,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::BlobPush => "blob-push",
            Workload::BlobPull => "blob-pull",
            Workload::Manifests => "manifests",
            Workload::SmallBlobs => "small-blobs",
            Workload::TagPush => "tag-push",
            Workload::TagList => "tag-list",
            Workload::Referrers => "referrers",
            Workload::Catalog => "catalog",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!("unknown workload {s:?}; choose from {}", names.join(", "))
            })
    }
}

/// Everything a run is told.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Workloads to run (in [`Workload::ALL`] order whatever the order given).
    pub workloads: Vec<Workload>,
    /// Blob sizes for push and pull, bytes.
    pub sizes: Vec<u64>,
    /// Chunk size of chunked pushes, bytes.
    pub chunk_size: u64,
    /// Bytes pushed per size and push kind: a size is repeated `budget / size`
    /// times (at least once, at most 50).
    pub push_budget: u64,
    /// Length of each ranged read, bytes.
    pub range_size: u64,
    /// Connections for manifest GET/HEAD.
    pub connections: usize,
    /// Concurrency of small blob pushes, tag pushes, ranged reads and seeding.
    pub concurrency: usize,
    /// How long each request-rate phase runs.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Most requests per request-rate phase.
    pub max_requests: u64,
    /// Small blobs pushed.
    pub small_blobs: u64,
    /// Size of each small blob, bytes.
    pub small_blob_size: u64,
    /// Tags pushed one PUT each in `tag-push`.
    pub tag_pushes: u64,
    /// Tags seeded for `tag-list`.
    pub tags: u64,
    /// Page size (`n`) of tag list and catalog requests.
    pub page: u64,
    /// Referrers seeded for `referrers`.
    pub referrers: u64,
    /// Repositories seeded for `catalog`.
    pub repos: u64,
    /// Time limit of any one phase (seeding and cleanup included).
    #[serde(serialize_with = "secs")]
    pub phase_timeout: Duration,
    /// Delete what was pushed at the end (where the registry allows it).
    pub cleanup: bool,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

const MIB: u64 = 1024 * 1024;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workloads: Workload::ALL.to_vec(),
            sizes: vec![MIB, 10 * MIB, 100 * MIB, 256 * MIB],
            chunk_size: 8 * MIB,
            push_budget: 256 * MIB,
            range_size: MIB,
            connections: 64,
            concurrency: 16,
            duration: Duration::from_secs(2),
            max_requests: 1_000_000,
            small_blobs: 2_000,
            small_blob_size: 4096,
            tag_pushes: 2_000,
            tags: 100_000,
            page: 100,
            referrers: 1_000,
            repos: 10_000,
            phase_timeout: Duration::from_secs(60),
            cleanup: true,
        }
    }
}

impl Settings {
    /// Whether `w` was selected.
    pub fn runs(&self, w: Workload) -> bool {
        self.workloads.contains(&w)
    }

    /// How many times a blob of `size` bytes is pushed (and pulled).
    pub fn repeats(&self, size: u64) -> u64 {
        (self.push_budget / size.max(1)).clamp(1, 50)
    }
}

/// Parses a byte size: a number with an optional unit `B`, `KiB`, `MiB`, `GiB`
/// (or `K`, `M`, `G`, all powers of 1024), e.g. `4KiB`, `256MiB`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 4KiB, 10MiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => MIB,
        "g" | "gib" | "gb" => 1024 * MIB,
        _ => {
            return Err(format!(
                "invalid size unit in {s:?}: use B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("size {s:?} must be above zero and fit in 64 bits"))
}

/// Formats a byte size the way [`parse_size`] reads it, e.g. `256MiB`, `4KiB`, `100B`.
pub fn size_label(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

/// Parses a duration: a number with `ms`, `s` or `m` (`s` when absent), e.g. `500ms`, `2s`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 2s, 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s or m")),
    };
    if !(secs > 0.0 && secs < 86_400.0) {
        return Err(format!("duration {s:?} must be above zero and under a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("256MiB"), Ok(256 * MIB));
        assert_eq!(parse_size("1G"), Ok(1024 * MIB));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999G").is_err());
        for v in [1, 100, 4096, 5000, MIB, 256 * MIB] {
            assert_eq!(parse_size(&size_label(v)), Ok(v));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("2h").is_err());
    }

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        assert!("nope".parse::<Workload>().is_err());
    }

    #[test]
    fn repeats_are_bounded() {
        let s = Settings::default();
        assert_eq!(s.repeats(MIB), 50);
        assert_eq!(s.repeats(10 * MIB), 25);
        assert_eq!(s.repeats(100 * MIB), 2);
        assert_eq!(s.repeats(256 * MIB), 1);
        assert_eq!(s.repeats(1024 * MIB), 1);
    }
}
