//! An upload's staging area together with the running hash of what it holds.

use std::io::{self, Read};

use super::hash_lane::HashLane;
use crate::oci::{Algorithm, Digest, Hasher};
use crate::store::Staging;

/// Staging bytes plus their hash; the two are kept in step (see [`StagedBlob::checkpoint`]).
pub struct StagedBlob {
    staging: Box<dyn Staging>,
    /// The hash of every byte held, possibly still running; `None` after a
    /// rollback that could not restore it (it is resumed from the session's
    /// record when the session is next claimed).
    lane: Option<HashLane>,
}

/// A point to roll back to (see [`StagedBlob::checkpoint`]).
pub struct Checkpoint {
    size: u64,
    /// The hasher then, when it was at hand.
    hasher: Option<Hasher>,
}

fn hash_lost() -> io::Error {
    io::Error::other("the upload's hash was rolled back")
}

impl StagedBlob {
    /// A new, empty upload hashed with `algorithm`.
    pub fn new(staging: Box<dyn Staging>, algorithm: Algorithm) -> Self {
        StagedBlob {
            staging,
            lane: Some(HashLane::new(algorithm.hasher(), 0)),
        }
    }

    /// Bytes held.
    pub fn size(&self) -> u64 {
        self.staging.size()
    }

    /// The hash state to record with the size, from blocking code. When the
    /// store reads a staging area back cheaply, it is the state the hash has
    /// reached, without waiting (see [`hash_record`]); else the hash is waited
    /// for, so that resuming never reads the bytes back.
    pub fn record_hash(&mut self) -> io::Result<Vec<u8>> {
        let size = self.size();
        let lane = self.lane.as_mut().ok_or_else(hash_lost)?;
        if self.staging.in_place() {
            let (hashed, hasher) = lane.reached();
            return Ok(hash_record(&hasher, hashed, size));
        }
        Ok(lane.settle_blocking()?.state())
    }

    /// Makes the bytes readable by every server sharing the store; the
    /// descriptor to record (see [`Staging::seal`]).
    pub fn seal(&mut self) -> io::Result<Vec<u8>> {
        self.staging.seal()
    }

    /// The staging area, for [`Staging::unlock`].
    pub fn staging(&self) -> &dyn Staging {
        &*self.staging
    }

    /// Splits the staging area from the hash, so that hashing and writing can run on
    /// different threads; [`StagedBlob::from_parts`] joins them again.
    pub(super) fn into_parts(self) -> (Box<dyn Staging>, Option<HashLane>) {
        (self.staging, self.lane)
    }

    /// Joins a staging area and the hash of exactly the bytes it holds.
    pub(super) fn from_parts(staging: Box<dyn Staging>, lane: Option<HashLane>) -> Self {
        StagedBlob { staging, lane }
    }

    /// Appends bytes and hashes them (a small body at hand, on a blocking
    /// thread); on failure, roll back to a [`StagedBlob::checkpoint`].
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let lane = self.lane.as_mut().ok_or_else(hash_lost)?;
        self.staging.append(bytes)?;
        lane.update_blocking(bytes)
    }

    /// Waits, from blocking code, until every byte held is hashed, so that a
    /// [`StagedBlob::checkpoint`] restores the hash too.
    pub fn settle(&mut self) -> io::Result<()> {
        self.lane
            .as_mut()
            .ok_or_else(hash_lost)?
            .settle_blocking()?;
        Ok(())
    }

    /// A point to roll back to if the rest of a request fails. It restores
    /// the hash when the hasher is at hand now (as after [`StagedBlob::append`]);
    /// else a rollback leaves it to be resumed from the record.
    pub fn checkpoint(&self) -> Checkpoint {
        let size = self.size();
        let hasher = self
            .lane
            .as_ref()
            .filter(|lane| lane.fed() == size)
            .and_then(|lane| lane.here().cloned());
        Checkpoint { size, hasher }
    }

    /// Restores a checkpoint: truncates the bytes and restores the hash state.
    pub fn rollback(&mut self, checkpoint: Checkpoint) -> io::Result<()> {
        // Should the truncation fail, the hash is resumed from the record.
        self.lane = None;
        self.staging.truncate(checkpoint.size)?;
        self.lane = checkpoint
            .hasher
            .map(|hasher| HashLane::new(hasher, checkpoint.size));
        Ok(())
    }

    /// The digest of the content under `algorithm`, from blocking code: from
    /// the running hash when it matches, else by reading the bytes back (a
    /// client may push sha512 content without announcing `digest-algorithm`).
    pub fn digest_as(&mut self, algorithm: Algorithm) -> io::Result<Digest> {
        let hasher = self
            .lane
            .as_mut()
            .ok_or_else(hash_lost)?
            .settle_blocking()?;
        if hasher.algorithm() == algorithm {
            return Ok(hasher.clone().finish());
        }
        Ok(hash_all(&*self.staging, algorithm)?.finish())
    }

    /// Lets go of the staging area before it is discarded (see
    /// [`Staging::abandon`]).
    pub fn abandon(self) {
        self.staging.abandon()
    }

    /// Publishes the bytes as blob `digest` (verified by the caller).
    pub fn publish(self, digest: &Digest) -> io::Result<()> {
        self.staging.publish(digest)
    }
}

/// The hash state an upload's record holds: the hasher's state, followed by
/// `hashed` (8 bytes, little-endian) when the hasher has hashed fewer than the
/// `size` bytes recorded. (A state of a version before this one never has the
/// suffix: it always covers every byte. That version refuses a state with one
/// rather than resume it wrongly.)
pub fn hash_record(hasher: &Hasher, hashed: u64, size: u64) -> Vec<u8> {
    let mut state = hasher.state();
    if hashed < size {
        state.extend_from_slice(&hashed.to_le_bytes());
    }
    state
}

/// The hasher a record's hash state resumes (see [`hash_record`]) and how many
/// of the `size` bytes recorded it has hashed; `None` when it is not a state of
/// `algorithm`.
pub fn resume_recorded(algorithm: Algorithm, state: &[u8], size: u64) -> Option<(Hasher, u64)> {
    if let Some(hasher) = Hasher::resume(algorithm, state) {
        return Some((hasher, size));
    }
    let (state, hashed) = state.split_at(state.len().checked_sub(8)?);
    let hashed = u64::from_le_bytes(hashed.try_into().ok()?);
    if hashed >= size {
        return None;
    }
    Some((Hasher::resume(algorithm, state)?, hashed))
}

/// Hashes the staging area's bytes from `hashed` to `size` into `hasher`: a
/// record's hash brought up to its size.
pub fn catch_up(
    staging: &dyn Staging,
    mut hasher: Hasher,
    hashed: u64,
    size: u64,
) -> io::Result<Hasher> {
    let mut reader = staging.read_from(hashed)?.take(size - hashed);
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    if read != size - hashed {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the staging area holds fewer bytes than recorded",
        ));
    }
    Ok(hasher)
}

pub(super) fn hash_all(staging: &dyn Staging, algorithm: Algorithm) -> io::Result<Hasher> {
    let mut h = algorithm.hasher();
    let mut reader = staging.read_back()?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(h);
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(bytes: &[u8]) -> Hasher {
        let mut h = Algorithm::Sha256.hasher();
        h.update(bytes);
        h
    }

    #[test]
    fn a_recorded_hash_says_how_far_it_got_only_when_it_lags() {
        let bytes = b"abcdefghij";
        // Caught up: the bare state, as versions before this one wrote it.
        let full = hash_record(&hashed(bytes), 10, 10);
        assert_eq!(full, hashed(bytes).state());
        let (h, at) = resume_recorded(Algorithm::Sha256, &full, 10).unwrap();
        assert_eq!((h.finish(), at), (hashed(bytes).finish(), 10));
        // Behind: the state of the first 4 bytes, and 4.
        let behind = hash_record(&hashed(&bytes[..4]), 4, 10);
        assert_eq!(behind.len(), full.len() + 8);
        let (h, at) = resume_recorded(Algorithm::Sha256, &behind, 10).unwrap();
        assert_eq!((h.finish(), at), (hashed(&bytes[..4]).finish(), 4));
    }

    #[test]
    fn a_recorded_hash_that_cannot_be_resumed_is_refused() {
        let behind = hash_record(&hashed(b"abcd"), 4, 10);
        // Claims as many bytes as recorded or more, yet has the suffix.
        assert!(resume_recorded(Algorithm::Sha256, &behind, 4).is_none());
        assert!(resume_recorded(Algorithm::Sha256, &behind, 3).is_none());
        // Another algorithm's, cut short, empty.
        assert!(resume_recorded(Algorithm::Sha512, &behind, 10).is_none());
        assert!(resume_recorded(Algorithm::Sha256, &behind[1..], 10).is_none());
        assert!(resume_recorded(Algorithm::Sha256, &[], 10).is_none());
    }
}
