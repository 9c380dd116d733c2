//! Resource use of a process from `/proc` (Linux): CPU seconds from
//! `/proc/<pid>/stat`, resident memory from `/proc/<pid>/status`, and a sampler that
//! records the highest `VmRSS` seen during a phase (`VmHWM` is the peak over the
//! process's whole life, so it cannot tell one phase from another).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point-in-time reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// User + system CPU time, all threads, in seconds.
    pub cpu_s: f64,
    /// Current resident set (`VmRSS`), bytes.
    pub rss: u64,
    /// Peak resident set over the process's life (`VmHWM`), bytes.
    pub hwm: u64,
}

/// Resource use of a process over one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU seconds (user + system) spent during the phase.
    pub cpu_s: f64,
    /// Highest `VmRSS` sampled during the phase, MiB.
    pub rss_max_mib: f64,
    /// `VmHWM` at the end of the phase (lifetime peak), MiB.
    pub hwm_mib: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds from the text of `/proc/<pid>/stat`: fields 14 (utime) and 15
/// (stime), counted after the parenthesised command name, which may hold spaces.
pub fn parse_stat_cpu(stat: &str, ticks: f64) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so utime (14) is index 11 and stime index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks)
}

/// The value in bytes of a `kB` line such as `VmRSS:   1234 kB` in `/proc/<pid>/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// Reads the process now; `None` when it is gone or `/proc` is unreadable.
pub fn snapshot(pid: u32) -> Option<Snapshot> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Snapshot {
        cpu_s: parse_stat_cpu(&stat, ticks_per_second())?,
        rss: parse_status_kb(&status, "VmRSS").unwrap_or(0),
        hwm: parse_status_kb(&status, "VmHWM").unwrap_or(0),
    })
}

const MIB: f64 = 1024.0 * 1024.0;

/// Watches one process during a phase: CPU at start and end, `VmRSS` every 50 ms.
pub struct Monitor {
    pid: u32,
    start: Snapshot,
    max_rss: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Starts watching `pid`; `None` when it cannot be read.
    pub fn start(pid: u32) -> Option<Monitor> {
        let start = snapshot(pid)?;
        let max_rss = Arc::new(AtomicU64::new(start.rss));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max_rss.clone(), stop.clone());
        let sampler = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(now) = snapshot(pid) {
                    m.fetch_max(now.rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Some(Monitor {
            pid,
            start,
            max_rss,
            stop,
            sampler,
        })
    }

    /// Stops sampling and returns what the phase used (`None` if the process died).
    pub async fn finish(self) -> Option<Usage> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.await;
        let end = snapshot(self.pid)?;
        let rss = self.max_rss.load(Ordering::Relaxed).max(end.rss);
        Some(Usage {
            // Rounded to the millisecond: tick arithmetic leaves float noise.
            cpu_s: ((end.cpu_s - self.start.cpu_s).max(0.0) * 1000.0).round() / 1000.0,
            rss_max_mib: rss as f64 / MIB,
            hwm_mib: end.hwm as f64 / MIB,
        })
    }
}

/// CPU seconds used by this process so far (the benchmark client itself).
pub fn own_cpu_seconds() -> f64 {
    snapshot(std::process::id()).map_or(0.0, |s| s.cpu_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "4242 (marina serve) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 100 2000000 900 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat, 100.0), Some(3.25));
    }

    #[test]
    fn stat_that_is_cut_short() {
        assert_eq!(parse_stat_cpu("1 (x) S 1 2", 100.0), None);
        assert_eq!(parse_stat_cpu("garbage", 100.0), None);
    }

    #[test]
    fn status_lines() {
        let status = "Name:\tmarina\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(10 * 1024 * 1024));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(20 * 1024 * 1024));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[tokio::test]
    async fn monitors_this_process() {
        let m = Monitor::start(std::process::id()).expect("own /proc entry");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let u = m.finish().await.expect("still alive");
        assert!(
            u.rss_max_mib > 0.0 && u.hwm_mib >= u.rss_max_mib * 0.5,
            "{u:?}"
        );
        assert!(u.cpu_s >= 0.0);
    }
}
