//! Content the benchmark pushes: deterministic pseudo-random blobs generated in
//! chunks (never held whole), and small valid OCI manifests.
//!
//! A blob is named by `(seed, size)`. Its bytes come from a 64 KiB pseudo-random
//! pool drawn from the seed, repeated, with the first 8 bytes of every 4 KiB block
//! stamped with the seed and the block number, so no two blocks of any blobs are
//! alike and generating costs about a `memcpy`. Any range can be produced on its
//! own: the digest is computed in one pass over the generator, the upload streams a
//! second pass, and a ranged read can be checked against the same bytes.

use std::io;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::oci::media_types;

/// Size of the pieces a blob is generated and streamed in.
pub const CHUNK: usize = 256 * 1024;

/// A generated blob: `size` bytes determined by `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobSpec {
    /// Selects the content; two seeds give unrelated bytes.
    pub seed: u64,
    /// Length in bytes.
    pub size: u64,
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
const POOL: usize = 64 * 1024;
const BLOCK: u64 = 4096;

/// SplitMix64: word `index` of the stream selected by `seed`.
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit value for `i` (to spread offsets and seeds).
pub fn mix(i: u64) -> u64 {
    word(0x5eed, i)
}

/// Produces the bytes of one blob; holds its 64 KiB pool.
pub struct Generator {
    seed: u64,
    pool: Vec<u8>,
}

impl Generator {
    /// Hands bytes `offset .. offset + len` of the blob to `put`, in order, as
    /// slices of the pool and of the block stamps.
    fn pieces(&self, offset: u64, len: usize, mut put: impl FnMut(&[u8])) {
        let end = offset + len as u64;
        let mut pos = offset;
        while pos < end {
            let in_block = pos % BLOCK;
            let n = (BLOCK - in_block).min(end - pos) as usize;
            let p = (pos % POOL as u64) as usize;
            let mut piece = &self.pool[p..p + n];
            if in_block < 8 {
                let stamp = self.stamp(pos / BLOCK);
                let k = (8 - in_block as usize).min(n);
                put(&stamp[in_block as usize..in_block as usize + k]);
                piece = &piece[k..];
            }
            put(piece);
            pos += n as u64;
        }
    }

    /// The first 8 bytes of block number `block`.
    fn stamp(&self, block: u64) -> [u8; 8] {
        (self.seed ^ word(self.seed, block)).to_le_bytes()
    }

    /// Writes bytes `offset .. offset + out.len()` of the blob into `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let mut at = 0;
        self.pieces(offset, out.len(), |piece| {
            out[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        });
    }

    /// Appends bytes `offset .. offset + len` of the blob to `out` (no buffer to
    /// zero first: the load generator shares the machine with the server).
    pub fn extend(&self, offset: u64, len: usize, out: &mut Vec<u8>) {
        out.reserve(len);
        self.pieces(offset, len, |piece| out.extend_from_slice(piece));
    }
}

impl BlobSpec {
    /// The blob's generator.
    pub fn generator(&self) -> Generator {
        let mut pool = vec![0u8; POOL];
        let salt = mix(self.seed);
        for (j, w) in pool.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&word(salt, j as u64).to_le_bytes());
        }
        Generator {
            seed: self.seed,
            pool,
        }
    }

    /// Writes bytes `offset .. offset + out.len()` of the blob into `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        self.generator().fill(offset, out);
    }

    /// Bytes `offset .. offset + len` as one buffer (for small ranges and tests).
    pub fn range(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(offset, &mut v);
        v
    }

    /// `sha256:<hex>` of the whole blob, generated chunk by chunk.
    pub fn digest(&self) -> String {
        let g = self.generator();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0;
        while pos < self.size {
            let n = (self.size - pos).min(CHUNK as u64) as usize;
            g.fill(pos, &mut buf[..n]);
            h.update(&buf[..n]);
            pos += n as u64;
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// Bytes `offset .. offset + len` as a stream of [`CHUNK`]-sized pieces
    /// (see [`BlobSource::stream`]).
    pub fn stream(
        self,
        offset: u64,
        len: u64,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        self.source().stream(offset, len)
    }

    /// A source of this blob's bytes, for several streams of its ranges (the
    /// chunks of a chunked push) that share its spare buffers.
    pub fn source(&self) -> BlobSource {
        BlobSource {
            generator: std::sync::Arc::new(self.generator()),
            spare: Spare::default(),
        }
    }
}

/// Streams ranges of one blob; clones share its generator and spare buffers.
#[derive(Clone)]
pub struct BlobSource {
    generator: std::sync::Arc<Generator>,
    spare: Spare,
}

impl BlobSource {
    /// Bytes `offset .. offset + len` as a stream of [`CHUNK`]-sized pieces.
    ///
    /// A piece that starts on a pool boundary and fills a whole [`CHUNK`] has
    /// the same pool bytes as any other such piece of the blob: only its block
    /// stamps differ. Such pieces are made in buffers handed back when the HTTP
    /// client drops them, and a buffer used again gets new stamps only (64
    /// writes of 8 bytes instead of a copy of 256 KiB), so the load generator
    /// leaves the CPU to the server it measures. Other pieces are copied out.
    pub fn stream(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let end = offset + len;
        let source = self.clone();
        futures_util::stream::unfold(offset, move |pos| {
            let source = source.clone();
            async move {
                if pos >= end {
                    return None;
                }
                let n = (end - pos).min(CHUNK as u64) as usize;
                let g = &source.generator;
                let piece = if n == CHUNK && pos % POOL as u64 == 0 {
                    source.spare.piece(g, pos)
                } else {
                    let mut buf = Vec::with_capacity(n);
                    g.extend(pos, n, &mut buf);
                    Bytes::from(buf)
                };
                Some((Ok(piece), pos + n as u64))
            }
        })
    }
}

/// Whole-[`CHUNK`] buffers of one blob's streams that the HTTP client is done
/// with: each holds the pool's bytes, and the stamps of the piece it held last.
#[derive(Clone, Default)]
struct Spare(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// Buffers kept for reuse by one blob's source (more are freed when dropped).
const SPARE_KEPT: usize = 8;

impl Spare {
    /// Bytes `pos .. pos + CHUNK` of `g`'s blob (`pos` on a pool boundary), in a
    /// spare buffer restamped, or a new one filled.
    fn piece(&self, g: &Generator, pos: u64) -> Bytes {
        let reused = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let buf = match reused {
            Some(mut buf) => {
                for (b, block) in buf.chunks_exact_mut(BLOCK as usize).enumerate() {
                    block[..8].copy_from_slice(&g.stamp(pos / BLOCK + b as u64));
                }
                buf
            }
            None => {
                let mut buf = Vec::with_capacity(CHUNK);
                g.extend(pos, CHUNK, &mut buf);
                buf
            }
        };
        Bytes::from_owner(Lent {
            buf,
            spare: self.clone(),
        })
    }
}

/// A spare buffer lent to the HTTP client; dropping it hands it back.
struct Lent {
    buf: Vec<u8>,
    spare: Spare,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let mut kept = self.spare.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < SPARE_KEPT {
            kept.push(std::mem::take(&mut self.buf));
        }
    }
}

/// `sha256:<hex>` of a byte string.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The OCI empty JSON blob `{}`, used as config and layer of small manifests.
pub const EMPTY_BLOB: &[u8] = b"{}";

/// A descriptor of [`EMPTY_BLOB`].
fn empty_descriptor() -> serde_json::Value {
    json!({
        "mediaType": media_types::OCI_EMPTY,
        "digest": sha256(EMPTY_BLOB),
        "size": EMPTY_BLOB.len(),
    })
}

/// A valid OCI image manifest: config and one layer, both [`EMPTY_BLOB`], with an
/// annotation that makes its digest unique to `label`.
pub fn image_manifest(label: &str) -> Vec<u8> {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": empty_descriptor(),
        "layers": [empty_descriptor()],
        "annotations": { "org.opencontainers.image.title": label },
    });
    serde_json::to_vec(&m).expect("a JSON value serialises")
}

/// A valid OCI artifact manifest of type `artifact_type` whose `subject` is the
/// manifest `subject_digest` of `subject_size` bytes; `label` makes it unique.
pub fn referrer_manifest(
    artifact_type: &str,
    subject_digest: &str,
    subject_size: usize,
    label: &str,
) -> Vec<u8> {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_descriptor(),
        "layers": [empty_descriptor()],
        "subject": {
            "mediaType": media_types::OCI_MANIFEST,
            "digest": subject_digest,
            "size": subject_size,
        },
        "annotations": { "org.opencontainers.image.title": label },
    });
    serde_json::to_vec(&m).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn ranges_agree_with_the_whole_blob() {
        let b = BlobSpec {
            seed: 7,
            size: 1000,
        };
        let whole = b.range(0, 1000);
        for (off, len) in [
            (0, 1),
            (3, 5),
            (5, 16),
            (7, 993),
            (992, 8),
            (999, 1),
            (13, 0),
        ] {
            assert_eq!(b.range(off, len), whole[off as usize..off as usize + len]);
        }
    }

    #[test]
    fn no_two_blocks_alike() {
        let a = BlobSpec {
            seed: 9,
            size: 3 * POOL as u64,
        };
        let bytes = a.range(0, a.size as usize);
        let mut blocks: Vec<&[u8]> = bytes.chunks(BLOCK as usize).collect();
        let n = blocks.len();
        blocks.sort();
        blocks.dedup();
        assert_eq!(blocks.len(), n);
        let b = BlobSpec {
            seed: 10,
            size: a.size,
        };
        assert_ne!(b.range(0, 4096), bytes[..4096]);
    }

    #[test]
    fn seeds_give_different_bytes() {
        let a = BlobSpec { seed: 1, size: 64 };
        let b = BlobSpec { seed: 2, size: 64 };
        assert_ne!(a.range(0, 64), b.range(0, 64));
        assert_ne!(a.digest(), b.digest());
    }

    #[tokio::test]
    async fn digest_matches_streamed_bytes() {
        let b = BlobSpec {
            seed: 42,
            size: CHUNK as u64 * 2 + 13,
        };
        let mut streamed = Vec::new();
        let mut s = std::pin::pin!(b.stream(0, b.size));
        while let Some(c) = s.next().await {
            streamed.extend_from_slice(&c.expect("generated"));
        }
        assert_eq!(streamed.len() as u64, b.size);
        assert_eq!(sha256(&streamed), b.digest());
        let mut middle = Vec::new();
        let mut s = std::pin::pin!(b.stream(5, 1000));
        while let Some(c) = s.next().await {
            middle.extend_from_slice(&c.expect("generated"));
        }
        assert_eq!(middle, streamed[5..1005]);
    }

    /// Collects a stream, dropping each piece before asking for the next (so
    /// its buffer is lent again) or holding them all.
    async fn collect(b: BlobSpec, offset: u64, len: u64, hold: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut held = Vec::new();
        let mut s = std::pin::pin!(b.stream(offset, len));
        while let Some(c) = s.next().await {
            let c = c.expect("generated");
            out.extend_from_slice(&c);
            if hold {
                held.push(c);
            }
        }
        out
    }

    #[tokio::test]
    async fn reused_buffers_carry_the_stamps_of_their_new_range() {
        let b = BlobSpec {
            seed: 5,
            size: CHUNK as u64 * 6 + 7,
        };
        for (offset, len) in [
            (0, b.size),
            (POOL as u64, CHUNK as u64 * 4),
            (POOL as u64 / 2, CHUNK as u64 * 3),
        ] {
            let want = b.range(offset, len as usize);
            assert!(
                collect(b, offset, len, false).await == want,
                "dropped, at {offset}"
            );
            assert!(
                collect(b, offset, len, true).await == want,
                "held, at {offset}"
            );
        }
    }

    #[test]
    fn manifests_are_valid_oci() {
        let m = image_manifest("x");
        crate::oci::manifest::ManifestView::parse(&m, Some(media_types::OCI_MANIFEST))
            .expect("valid");
        let d = sha256(&m);
        let r = referrer_manifest("application/vnd.example", &d, m.len(), "r");
        let parsed = crate::oci::manifest::ManifestView::parse(&r, Some(media_types::OCI_MANIFEST))
            .expect("valid");
        assert_eq!(parsed.subject.map(|s| s.digest.to_string()), Some(d));
    }
}
