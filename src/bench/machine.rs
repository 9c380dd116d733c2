//! Facts about the machine and the moment, for the report header.

use std::time::{SystemTime, UNIX_EPOCH};

use super::report::Machine;

/// CPU count, CPU model and kernel release of this machine.
pub fn describe() -> Machine {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .map(|m| memory(&m))
        .unwrap_or_default();
    Machine {
        cpus,
        cpu_model,
        kernel,
        load,
        memory,
    }
}

/// "`<free>` GiB free, `<cached>` GiB cached of `<total>` GiB" from the text of
/// `/proc/meminfo`; empty when a field is missing.
fn memory(meminfo: &str) -> String {
    let field = |name: &str| -> Option<f64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / (1024.0 * 1024.0))
    };
    match (field("MemFree:"), field("Cached:"), field("MemTotal:")) {
        (Some(free), Some(cached), Some(total)) => {
            format!("{free:.1} GiB free, {cached:.1} GiB cached of {total:.1} GiB")
        }
        _ => String::new(),
    }
}

/// What [`settle`] found unwritten, and how long writing it out took.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// MiB of file data in the page cache not yet on disk, before the sync.
    pub unwritten_mib: f64,
    /// Seconds the sync took.
    pub seconds: f64,
}

impl Settled {
    /// A note for the phase that left at least 16 MiB unwritten.
    pub fn note(&self) -> Option<String> {
        (self.unwritten_mib >= 16.0).then(|| {
            format!(
                "left {:.0} MiB of writes unwritten in the page cache (written out in {:.2} s before the next phase)",
                self.unwritten_mib, self.seconds
            )
        })
    }
}

/// Writes every dirty page of the machine to disk (`sync(2)`) before a timed
/// phase. A server that leaves its writes in the page cache (olareg does not
/// `fsync`) would otherwise have them written out during the next phase,
/// which may be another server's, slowing it instead.
pub async fn settle() -> Settled {
    let unwritten = || {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| unwritten_mib(&m))
            .unwrap_or(0.0)
    };
    let unwritten_mib = unwritten();
    let started = std::time::Instant::now();
    #[cfg(unix)]
    // SAFETY: sync(2) takes no arguments and cannot fail.
    let _ = tokio::task::spawn_blocking(|| unsafe { libc::sync() }).await;
    Settled {
        unwritten_mib,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// `Dirty` plus `Writeback` of the text of `/proc/meminfo`, in MiB.
fn unwritten_mib(meminfo: &str) -> Option<f64> {
    let kib = |name: &str| -> Option<f64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((kib("Dirty:")? + kib("Writeback:")?) / 1024.0)
}

/// Now as RFC 3339 UTC, to the second.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn memory_reads_free_cached_and_total() {
        let meminfo = "MemTotal:       24683520 kB\nMemFree:         2156544 kB\n\
                       MemAvailable:   23402496 kB\nBuffers:           12288 kB\n\
                       Cached:         21180416 kB\nSwapCached:            0 kB\n";
        assert_eq!(memory(meminfo), "2.1 GiB free, 20.2 GiB cached of 23.5 GiB");
        assert_eq!(memory("MemTotal: 1 kB\n"), "");
    }

    #[test]
    fn unwritten_is_dirty_plus_writeback() {
        let meminfo = "MemTotal:       24683520 kB\nDirty:             65536 kB\n\
                       Writeback:         32768 kB\nWritebackTmp:          0 kB\n";
        assert_eq!(unwritten_mib(meminfo), Some(96.0));
        assert_eq!(unwritten_mib("Dirty: 1 kB\n"), None);
        let left = Settled {
            unwritten_mib: 96.0,
            seconds: 0.25,
        };
        assert!(left.note().expect("noted").contains("96 MiB"));
        let clean = Settled {
            unwritten_mib: 3.0,
            seconds: 0.0,
        };
        assert_eq!(clean.note(), None);
    }

    /// Pages of `f` dirty or under writeback, from `cachestat(2)` (Linux 6.5).
    #[cfg(target_os = "linux")]
    fn unwritten_pages(f: &std::fs::File) -> u64 {
        use std::os::fd::AsRawFd;
        #[repr(C)]
        struct Range {
            off: u64,
            len: u64,
        }
        #[repr(C)]
        #[derive(Default)]
        struct Stat {
            cache: u64,
            dirty: u64,
            writeback: u64,
            evicted: u64,
            recently_evicted: u64,
        }
        let range = Range { off: 0, len: 0 };
        let mut stat = Stat::default();
        // SAFETY: both structs are laid out as the kernel's; it reads `range`
        // and writes `stat` only.
        let r = unsafe {
            libc::syscall(
                451, // cachestat
                f.as_raw_fd(),
                &range as *const Range,
                &mut stat as *mut Stat,
                0,
            )
        };
        assert_eq!(r, 0, "cachestat: {}", std::io::Error::last_os_error());
        stat.dirty + stat.writeback
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn settling_writes_out_a_file_left_dirty() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut f = std::fs::File::create(dir.path().join("dirty")).expect("created");
        f.write_all(&vec![7u8; 8 << 20]).expect("written");
        assert!(unwritten_pages(&f) > 0, "the file's pages start dirty");
        let s = settle().await;
        assert!(s.unwritten_mib >= 0.0 && s.seconds >= 0.0);
        assert_eq!(
            unwritten_pages(&f),
            0,
            "pages left unwritten after settling"
        );
    }

    #[test]
    fn this_machine() {
        let m = describe();
        assert!(m.cpus >= 1);
        assert!(!m.cpu_model.is_empty() && !m.kernel.is_empty());
    }
}
