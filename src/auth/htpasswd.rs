//! htpasswd files of bcrypt entries, as `htpasswd -B` and `marina passwd` write
//! them: `user:$2y$<cost>$<salt+hash>` per line; `#` comments and blank lines are
//! allowed. Other hash kinds (MD5, SHA-1, crypt) are refused: they are weak.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest as _, Sha256};

/// A bcrypt hash; its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct BcryptHash(String);

impl BcryptHash {
    /// The `$2y$…` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cost factor (`$2y$10$…` → 10).
    pub fn cost(&self) -> Option<u32> {
        self.0.get(4..6)?.parse().ok()
    }
}

impl fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BcryptHash(<redacted>)")
    }
}

/// The users of an htpasswd file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Htpasswd {
    entries: HashMap<String, BcryptHash>,
    /// Each entry's tag (see [`Htpasswd::tag`]), made once per read of the file.
    tags: HashMap<String, String>,
}

const BCRYPT_PREFIXES: [&str; 4] = ["$2y$", "$2b$", "$2a$", "$2x$"];

impl Htpasswd {
    /// Parses a file's text; errors name the line (never the hash).
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut entries = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let n = i + 1;
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {n}: expected USER:HASH"))?;
            if user.is_empty() || user.chars().any(char::is_whitespace) {
                return Err(format!("line {n}: invalid user name"));
            }
            let valid = BCRYPT_PREFIXES.iter().any(|p| hash.starts_with(p))
                && hash.len() == 60
                && BcryptHash(hash.to_string()).cost().is_some();
            if !valid {
                return Err(format!(
                    "line {n} (user {user:?}): not a bcrypt entry; create it with `htpasswd -B` or `marina passwd`"
                ));
            }
            if entries
                .insert(user.to_string(), BcryptHash(hash.to_string()))
                .is_some()
            {
                return Err(format!("line {n}: user {user:?} appears twice"));
            }
        }
        let tags = entries
            .iter()
            .map(|(user, hash)| {
                let digest = Sha256::digest(hash.as_str().as_bytes());
                (user.clone(), hex::encode(&digest[..8]))
            })
            .collect();
        Ok(Htpasswd { entries, tags })
    }

    /// A short tag of `user`'s entry: 64 bits of a SHA-256 of its bcrypt hash,
    /// which tells nothing about the password but changes with it (tokens
    /// carry it, see `Users::entry_tag`).
    pub fn tag(&self, user: &str) -> Option<&str> {
        self.tags.get(user).map(String::as_str)
    }

    /// The hash of `user`, if present.
    pub fn get(&self, user: &str) -> Option<&BcryptHash> {
        self.entries.get(user)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The highest cost among the entries (the dummy check for unknown users uses
    /// it, so they take as long as known ones).
    pub fn max_cost(&self) -> Option<u32> {
        self.entries.values().filter_map(BcryptHash::cost).max()
    }
}

/// The file's text with `user`'s entry set to `hash` (replaced in place, or
/// appended), every other line kept as it was.
pub fn upsert(text: &str, user: &str, hash: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in text.lines() {
        if line.split_once(':').is_some_and(|(u, _)| u == user) {
            if !done {
                out.push_str(&format!("{user}:{hash}\n"));
                done = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !done {
        out.push_str(&format!("{user}:{hash}\n"));
    }
    out
}

/// The file's text without `user`, and whether it was there.
pub fn remove(text: &str, user: &str) -> (String, bool) {
    let mut found = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.split_once(':').is_some_and(|(u, _)| u == user) {
            found = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `htpasswd -nbB -C 4 alice secret` output.
    const ALICE: &str = "alice:$2y$04$zbLKCX5MoOXWswQ/rgQlG.mKaD.3847yW8XaThhDkgE4P24ChrfSm";

    #[test]
    fn parses_bcrypt_entries_comments_and_blank_lines() {
        let h = Htpasswd::parse(&format!(
            "# users\n\n{ALICE}\r\nbob:$2b$05${}\n",
            "a".repeat(53)
        ))
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.get("alice").unwrap().cost(), Some(4));
        assert_eq!(h.max_cost(), Some(5));
        assert!(h.get("carol").is_none());
        assert!(bcrypt::verify("secret", h.get("alice").unwrap().as_str()).unwrap());
    }

    #[test]
    fn refuses_weak_or_malformed_entries_naming_the_line_not_the_hash() {
        let table = [
            ("carol:$apr1$abc$def", "line 1"),
            (
                "carol:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=",
                "not a bcrypt entry",
            ),
            ("no-colon-here", "expected USER:HASH"),
            (
                ":$2y$04$YZ3OXMuYbWrNIv3r.Bw8auHUXmB2zgyljZT.kHGq4ByBC1y6ozDHS",
                "invalid user",
            ),
            (&format!("{ALICE}\n{ALICE}"), "twice"),
        ];
        for (text, needle) in table {
            let e = Htpasswd::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(
                !e.contains("$apr1$") && !e.contains("qUqP5"),
                "hash leaked: {e}"
            );
        }
    }

    #[test]
    fn upsert_replaces_in_place_and_remove_drops() {
        let text = "# c\nalice:old\nbob:x\n";
        assert_eq!(upsert(text, "alice", "new"), "# c\nalice:new\nbob:x\n");
        assert_eq!(
            upsert(text, "carol", "h"),
            "# c\nalice:old\nbob:x\ncarol:h\n"
        );
        assert_eq!(upsert("", "a", "h"), "a:h\n");
        assert_eq!(remove(text, "bob"), ("# c\nalice:old\n".to_string(), true));
        assert!(!remove(text, "zed").1);
    }

    #[test]
    fn debug_hides_the_hash() {
        let h = Htpasswd::parse(ALICE).unwrap();
        assert!(!format!("{h:?}").contains("$2y$"));
    }
}
