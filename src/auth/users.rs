//! The users: an htpasswd file, re-read when it changes, and password checks.
//!
//! Checks take the same time whether or not the user exists: an unknown user is
//! checked against a dummy bcrypt hash of the file's highest cost, and bcrypt
//! compares in constant time. bcrypt is slow on purpose, and clients using Basic
//! auth send credentials with every request, so a successful check is remembered
//! for a minute under a keyed hash of user and password (never the password
//! itself); any change to the file forgets them all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

use super::credentials::Secret;
use super::htpasswd::Htpasswd;

const RECHECK: Duration = Duration::from_secs(2);
const REMEMBER: Duration = Duration::from_secs(60);
const REMEMBER_MAX: usize = 4096;
const DEFAULT_COST: u32 = 10;

struct Loaded {
    file: Arc<Htpasswd>,
    dummy: Arc<String>,
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// The users of the htpasswd file (none when no file is configured).
pub struct Users {
    path: Option<PathBuf>,
    loaded: RwLock<Loaded>,
    key: [u8; 32],
    remembered: Mutex<HashMap<[u8; 32], Instant>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read(path: &Path) -> Result<(Htpasswd, Option<(SystemTime, u64)>), String> {
    let before = stamp(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read htpasswd file {}: {e}", path.display()))?;
    let file =
        Htpasswd::parse(&text).map_err(|e| format!("htpasswd file {}: {e}", path.display()))?;
    Ok((file, before))
}

fn dummy_hash(cost: u32) -> String {
    let pw: [u8; 16] = rand::random();
    bcrypt::hash(pw, cost).unwrap_or_default()
}

impl Users {
    /// Reads the file (blocking: call at startup or off the runtime).
    pub fn load(path: Option<&Path>) -> Result<Users, String> {
        let (file, stamp) = match path {
            Some(p) => read(p)?,
            None => (Htpasswd::default(), None),
        };
        let dummy = dummy_hash(file.max_cost().unwrap_or(DEFAULT_COST));
        Ok(Users {
            path: path.map(Path::to_path_buf),
            loaded: RwLock::new(Loaded {
                file: Arc::new(file),
                dummy: Arc::new(dummy),
                stamp,
                checked: Instant::now(),
            }),
            key: rand::random(),
            remembered: Mutex::new(HashMap::new()),
        })
    }

    /// Re-reads the file when its modification time or size changed (at most every
    /// two seconds). A file that no longer parses is logged and the old users kept.
    async fn refresh(&self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        {
            let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if l.checked.elapsed() < RECHECK {
                return;
            }
        }
        let previous = {
            let mut l = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            l.checked = Instant::now();
            l.stamp
        };
        let p = path.clone();
        let now = tokio::task::spawn_blocking(move || stamp(&p))
            .await
            .ok()
            .flatten();
        if now == previous {
            return;
        }
        let p = path.clone();
        let result = tokio::task::spawn_blocking(move || {
            read(&p).map(|(file, stamp)| {
                let dummy = dummy_hash(file.max_cost().unwrap_or(DEFAULT_COST));
                (file, stamp, dummy)
            })
        })
        .await;
        match result {
            Ok(Ok((file, stamp, dummy))) => {
                tracing::info!(path = %path.display(), users = file.len(), "htpasswd file reloaded");
                let mut l = self.loaded.write().unwrap_or_else(|e| e.into_inner());
                l.file = Arc::new(file);
                l.dummy = Arc::new(dummy);
                l.stamp = stamp;
                self.remembered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "htpasswd file changed but cannot be used; keeping the previous users");
                self.loaded.write().unwrap_or_else(|e| e.into_inner()).stamp = now;
            }
            Err(_) => {}
        }
    }

    fn fingerprint(&self, user: &str, password: &Secret) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password.expose().as_bytes());
        h.finalize().into()
    }

    /// The tag of `user`'s entry in the file as it is now (re-read if it
    /// changed; see [`Htpasswd::tag`]), `None` when the user is not there.
    /// Tokens carry it, so that a changed password or a removed user ends them.
    pub async fn entry_tag(&self, user: &str) -> Option<String> {
        self.refresh().await;
        let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        l.file.tag(user).map(str::to_string)
    }

    /// Whether `password` is `user`'s. Takes bcrypt time for unknown users too.
    pub async fn verify(&self, user: &str, password: &Secret) -> bool {
        self.refresh().await;
        let fp = self.fingerprint(user, password);
        {
            let mut r = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            match r.get(&fp) {
                Some(until) if *until > Instant::now() => return true,
                Some(_) => {
                    r.remove(&fp);
                }
                None => {}
            }
        }
        let (hash, known) = {
            let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            match l.file.get(user) {
                Some(h) => (h.as_str().to_string(), true),
                None => (l.dummy.as_str().to_string(), false),
            }
        };
        let pw = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            bcrypt::verify(pw.expose(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
            && known;
        if ok {
            let mut r = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if r.len() >= REMEMBER_MAX {
                r.clear();
            }
            r.insert(fp, Instant::now() + REMEMBER);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, pw: &str) -> String {
        format!("{user}:{}\n", bcrypt::hash(pw, 4).unwrap())
    }

    #[tokio::test]
    async fn verifies_known_users_and_rejects_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        std::fs::write(&p, entry("alice", "right")).unwrap();
        let users = Users::load(Some(&p)).unwrap();
        assert!(users.verify("alice", &Secret::new("right")).await);
        assert!(
            users.verify("alice", &Secret::new("right")).await,
            "remembered"
        );
        assert!(!users.verify("alice", &Secret::new("wrong")).await);
        assert!(!users.verify("bob", &Secret::new("right")).await);
    }

    #[tokio::test]
    async fn a_changed_file_is_reloaded_and_forgets_remembered_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        std::fs::write(&p, entry("alice", "one")).unwrap();
        let users = Users::load(Some(&p)).unwrap();
        assert!(users.verify("alice", &Secret::new("one")).await);
        std::fs::write(
            &p,
            format!("{}{}", entry("alice", "two"), entry("bob", "b")),
        )
        .unwrap();
        users.loaded.write().unwrap().checked = Instant::now() - RECHECK * 2;
        assert!(
            !users.verify("alice", &Secret::new("one")).await,
            "old password still accepted"
        );
        assert!(users.verify("alice", &Secret::new("two")).await);
        assert!(users.verify("bob", &Secret::new("b")).await);
    }

    #[test]
    fn unknown_users_cost_as_much_as_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        std::fs::write(&p, entry("alice", "x")).unwrap();
        let users = Users::load(Some(&p)).unwrap();
        let dummy = users.loaded.read().unwrap().dummy.clone();
        assert!(
            dummy.starts_with("$2b$04$"),
            "dummy uses the file's cost: {dummy}"
        );
    }
}
