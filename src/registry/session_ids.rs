//! Upload session ids that stand for a session until its first chunk, so that
//! opening one (`POST`) writes nothing.
//!
//! An id is 64 hex digits: when the session was opened (milliseconds since the
//! epoch, 12 digits), its hash algorithm (1), a random nonce (19), and a tag
//! (32): HMAC-SHA-256 of the first 32 digits and the repository, under the
//! store's key (`store::UploadStore::upload_key`), cut to 128 bits. Any server
//! over the same store can tell an id it issued from one it did not, and which
//! repository and algorithm it belongs to, without reading anything; the store
//! then records the session at its first chunk and keeps the ids of closed
//! sessions. Ids of 32 digits are sessions recorded by an earlier version.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::oci::Algorithm;

/// Hex digits of a signed id.
pub(crate) const SIGNED_LEN: usize = 64;

/// Hex digits before the tag.
const BODY_LEN: usize = 32;

/// Separates the purpose, the id's body and the repository in what is signed.
const PURPOSE: &[u8] = b"marina upload session\0";

/// What a signed id says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signed {
    /// The algorithm the session hashes with.
    pub algorithm: Algorithm,
    /// When it was opened (milliseconds since the epoch).
    pub opened_at: i64,
}

/// Issues and reads signed session ids with one key.
pub(crate) struct SessionIds {
    mac: Hmac<Sha256>,
}

impl SessionIds {
    /// Ids signed with `key`.
    pub(crate) fn new(key: &[u8]) -> Self {
        SessionIds {
            mac: Hmac::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    /// A new id for a session of `repo` hashing with `algorithm`, opened at
    /// `now` (milliseconds since the epoch).
    pub(crate) fn issue(&self, repo: &str, algorithm: Algorithm, now: i64) -> String {
        let nonce: u128 = rand::random();
        let code = match algorithm {
            Algorithm::Sha256 => 0,
            Algorithm::Sha512 => 1,
        };
        let body = format!(
            "{:012x}{code:x}{:019x}",
            now.clamp(0, 0xffff_ffff_ffff),
            nonce >> (128 - 76)
        );
        let tag = self.tag(&body, repo);
        body + &hex::encode(tag)
    }

    /// What `id` says, when this key signed it for `repo`; `None` for any
    /// other string.
    pub(crate) fn read(&self, id: &str, repo: &str) -> Option<Signed> {
        if id.len() != SIGNED_LEN || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let (body, tag) = id.split_at(BODY_LEN);
        let tag = hex::decode(tag).ok()?;
        // Compared in constant time.
        self.mac_of(body, repo).verify_truncated_left(&tag).ok()?;
        let algorithm = match &body[12..13] {
            "0" => Algorithm::Sha256,
            "1" => Algorithm::Sha512,
            _ => return None,
        };
        let opened_at = i64::from_str_radix(&body[..12], 16).ok()?;
        Some(Signed {
            algorithm,
            opened_at,
        })
    }

    /// The MAC over `body` for `repo`, not finished yet.
    fn mac_of(&self, body: &str, repo: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(PURPOSE);
        mac.update(body.as_bytes());
        mac.update(b"\0");
        mac.update(repo.as_bytes());
        mac
    }

    /// The first 128 bits of the MAC of `body` for `repo`.
    fn tag(&self, body: &str, repo: &str) -> [u8; 16] {
        let full = self.mac_of(body, repo).finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_for_its_repository_only() {
        let ids = SessionIds::new(b"key one");
        let id = ids.issue("team/app", Algorithm::Sha512, 1_700_000_000_123);
        assert_eq!(id.len(), SIGNED_LEN);
        assert!(id.starts_with("018bcfe5687b1"), "{id}");
        assert_eq!(
            ids.read(&id, "team/app"),
            Some(Signed {
                algorithm: Algorithm::Sha512,
                opened_at: 1_700_000_000_123
            })
        );
        assert_eq!(ids.read(&id, "team/ap"), None, "another repository");
        assert_eq!(ids.read(&id, "team/app2"), None, "another repository");
        assert_eq!(
            SessionIds::new(b"key two").read(&id, "team/app"),
            None,
            "another key"
        );
    }

    #[test]
    fn a_changed_digit_or_length_is_refused() {
        let ids = SessionIds::new(b"k");
        let id = ids.issue("a", Algorithm::Sha256, 5);
        assert!(ids.read(&id, "a").is_some());
        for i in 0..id.len() {
            let mut b = id.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(b).unwrap();
            assert_eq!(ids.read(&changed, "a"), None, "digit {i} changed");
        }
        assert_eq!(ids.read(&id[..63], "a"), None);
        assert_eq!(ids.read(&format!("{id}0"), "a"), None);
        assert_eq!(ids.read(&id.to_uppercase(), "a"), None);
    }

    #[test]
    fn ids_differ_every_time() {
        let ids = SessionIds::new(b"k");
        let a = ids.issue("a", Algorithm::Sha256, 5);
        let b = ids.issue("a", Algorithm::Sha256, 5);
        assert_ne!(a, b);
        assert_eq!(a[..13], b[..13], "same time and algorithm");
    }
}
