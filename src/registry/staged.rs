//! An upload's staging area together with the running hash of what it holds.

use std::io::{self, Read};

use crate::oci::{Algorithm, Digest, Hasher};
use crate::store::Staging;

/// Staging bytes plus their hash; the two are kept in step (see [`StagedBlob::checkpoint`]).
pub struct StagedBlob {
    staging: Box<dyn Staging>,
    hasher: Hasher,
}

impl StagedBlob {
    /// A new, empty upload hashed with `algorithm`.
    pub fn new(staging: Box<dyn Staging>, algorithm: Algorithm) -> Self {
        StagedBlob {
            staging,
            hasher: algorithm.hasher(),
        }
    }

    /// Bytes held.
    pub fn size(&self) -> u64 {
        self.staging.size()
    }

    /// The running hash's state (see [`Hasher::state`]).
    pub fn hash_state(&self) -> Vec<u8> {
        self.hasher.state()
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
    pub fn into_parts(self) -> (Box<dyn Staging>, Hasher) {
        (self.staging, self.hasher)
    }

    /// Joins a staging area and the hash of exactly the bytes it holds.
    pub fn from_parts(staging: Box<dyn Staging>, hasher: Hasher) -> Self {
        StagedBlob { staging, hasher }
    }

    /// Appends bytes and hashes them (a small body at hand, on a blocking
    /// thread); on failure, roll back to a [`StagedBlob::checkpoint`].
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.staging.append(bytes)?;
        self.hasher.update(bytes);
        Ok(())
    }

    /// A point to roll back to if the rest of a request fails.
    pub fn checkpoint(&self) -> (u64, Hasher) {
        (self.staging.size(), self.hasher.clone())
    }

    /// Restores a checkpoint: truncates the bytes and restores the hash state.
    pub fn rollback(&mut self, (size, hasher): (u64, Hasher)) -> io::Result<()> {
        self.staging.truncate(size)?;
        self.hasher = hasher;
        Ok(())
    }

    /// The digest of the content under `algorithm`: from the running hash when it
    /// matches, else by reading the bytes back (a client may push sha512 content
    /// without announcing `digest-algorithm`).
    pub fn digest_as(&self, algorithm: Algorithm) -> io::Result<Digest> {
        if self.hasher.algorithm() == algorithm {
            return Ok(self.hasher.clone().finish());
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
