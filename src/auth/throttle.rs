//! Failed-login throttling per client address: after `max_failures` failures within
//! `window`, the address is refused (429 `TOOMANYREQUESTS`, `Retry-After`) for
//! `lockout`, whatever it sends, so guessing cannot go on behind the refusals.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::ThrottleConfig;

/// Most addresses tracked at once; beyond, entries with nothing pending are dropped.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// Failure counts per address.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    lockout: Duration,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Throttle {
    /// A throttle with the configured limits.
    pub fn new(c: &ThrottleConfig) -> Throttle {
        Throttle {
            max_failures: c.max_failures.max(1),
            window: Duration::from_secs(c.window_secs.max(1)),
            lockout: Duration::from_secs(c.lockout_secs),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&ip).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err((until - now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    /// Records a failed login; returns `Err(seconds)` when it starts a lockout.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_TRACKED {
            let window = self.window;
            entries.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || now.duration_since(e.since) < window
            });
        }
        let e = entries.entry(ip).or_insert(Entry {
            failures: 0,
            since: now,
            locked_until: None,
        });
        if now.duration_since(e.since) >= self.window || e.locked_until.is_some_and(|u| u <= now) {
            *e = Entry {
                failures: 0,
                since: now,
                locked_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= self.max_failures && !self.lockout.is_zero() {
            e.locked_until = Some(now + self.lockout);
            return Err(self.lockout.as_secs().max(1));
        }
        Ok(())
    }

    /// Forgets `ip`'s failures after a successful login.
    pub fn succeed(&self, ip: IpAddr) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.get(&ip).is_some_and(|e| e.locked_until.is_none()) {
            entries.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(&ThrottleConfig {
            max_failures: 3,
            window_secs: 60,
            lockout_secs: 30,
        })
    }

    #[test]
    fn locks_out_after_the_limit_and_releases_after_the_lockout() {
        let t = throttle();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "::1".parse().unwrap();
        let t0 = Instant::now();
        assert!(t.fail(ip, t0).is_ok());
        assert!(t.fail(ip, t0).is_ok());
        assert_eq!(t.fail(ip, t0), Err(30));
        assert_eq!(t.check(ip, t0 + Duration::from_secs(10)), Err(20));
        assert!(
            t.check(other, t0).is_ok(),
            "other addresses are not affected"
        );
        t.succeed(ip);
        assert!(
            t.check(ip, t0 + Duration::from_secs(10)).is_err(),
            "success does not lift a lockout"
        );
        assert!(t.check(ip, t0 + Duration::from_secs(31)).is_ok());
        assert!(
            t.fail(ip, t0 + Duration::from_secs(31)).is_ok(),
            "count restarts"
        );
    }

    #[test]
    fn failures_outside_the_window_and_after_success_do_not_add_up() {
        let t = throttle();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        t.fail(ip, t0).unwrap();
        t.fail(ip, t0).unwrap();
        assert!(t.fail(ip, t0 + Duration::from_secs(61)).is_ok());
        t.succeed(ip);
        t.fail(ip, t0 + Duration::from_secs(62)).unwrap();
        assert!(t.fail(ip, t0 + Duration::from_secs(62)).is_ok());
    }
}
