//! Blob phases: monolithic and chunked pushes of large generated blobs (digests
//! computed before the clock starts), whole and ranged pulls of them, and many
//! small pushes at once.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use indicatif::ProgressBar;

use super::{finish, not_run, note, Ctx};
use crate::bench::content::{sha256, BlobSpec};
use crate::bench::driver;
use crate::bench::lean::Pool;
use crate::bench::plan::Phase;
use crate::bench::report::{Outcome, PhaseResult, Unit};
use crate::bench::target::{owe, Kind, PushedBlob, Target};

/// A seed for blob number `i` of a kind of phase, distinct across kinds and sizes.
fn seed(ctx: &Ctx, kind: u64, size: u64, i: u64) -> u64 {
    ctx.seed ^ (kind << 56) ^ (size << 12) ^ i
}

/// Digests of `specs`, hashed on blocking threads in parallel, before timing.
async fn prehash(specs: &[BlobSpec]) -> anyhow::Result<Vec<String>> {
    let tasks: Vec<_> = specs
        .iter()
        .map(|&s| tokio::task::spawn_blocking(move || s.digest()))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

/// Pushes `repeats(size)` distinct blobs one after another, monolithic or chunked.
pub async fn push(
    ctx: &Ctx,
    t: &mut Target,
    bar: &ProgressBar,
    chunked: bool,
    size: u64,
    phase: Phase,
) -> PhaseResult {
    let n = ctx.settings.repeats(size);
    // Not `blobs`: olareg refuses a repository path with a component named
    // like its layout's directories (`blobs`, `index.json`, `oci-layout`).
    let repo = ctx.repo("blob-io");
    let specs: Vec<BlobSpec> = (0..n)
        .map(|i| BlobSpec {
            seed: seed(ctx, 1 + chunked as u64, size, i),
            size,
        })
        .collect();
    let digests = match prehash(&specs).await {
        Ok(d) => d,
        Err(e) => return not_run(ctx, phase, Outcome::Failed, format!("hashing failed: {e}")),
    };
    bar.set_length(n);
    let items: Arc<Vec<(BlobSpec, String)>> = Arc::new(specs.into_iter().zip(digests).collect());
    let done: Arc<Mutex<Vec<PushedBlob>>> = Arc::default();
    let bounds = ctx.count_bounds(1, n);
    let (reg, ledger, chunk) = (
        t.registry.clone(),
        t.ledger.clone(),
        ctx.settings.chunk_size,
    );
    let (items2, done2, repo2) = (items.clone(), done.clone(), repo.clone());
    let tally = driver::run(bounds, bar, move |i| {
        let (reg, ledger, items, done, repo) = (
            reg.clone(),
            ledger.clone(),
            items2.clone(),
            done2.clone(),
            repo2.clone(),
        );
        async move {
            let (spec, digest) = &items[i as usize];
            if chunked {
                reg.push_chunked(&repo, *spec, digest, chunk).await?;
            } else {
                reg.push_monolithic(&repo, *spec, digest).await?;
            }
            owe(&ledger, Kind::Blob, &repo, digest);
            done.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(PushedBlob {
                    repo: repo.clone(),
                    spec: *spec,
                    digest: digest.clone(),
                });
            Ok(spec.size)
        }
    })
    .await;
    t.pushed
        .extend(done.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
    finish(ctx, phase, Unit::Bytes, bounds, tally, false)
}

/// A blob of `size` bytes to read: one pushed earlier, or one pushed now (untimed).
async fn blob_of_size(ctx: &Ctx, t: &mut Target, size: u64) -> anyhow::Result<Vec<PushedBlob>> {
    let have: Vec<PushedBlob> = t
        .pushed
        .iter()
        .filter(|b| b.spec.size == size)
        .cloned()
        .collect();
    if !have.is_empty() {
        return Ok(have);
    }
    let spec = BlobSpec {
        seed: seed(ctx, 3, size, 0),
        size,
    };
    let digest = tokio::task::spawn_blocking(move || spec.digest()).await?;
    let repo = ctx.repo("blob-io");
    t.registry.push_monolithic(&repo, spec, &digest).await?;
    t.owe(Kind::Blob, &repo, &digest);
    let b = PushedBlob { repo, spec, digest };
    t.pushed.push(b.clone());
    Ok(vec![b])
}

/// Pulls blobs of `size` bytes whole, one after another, `repeats(size)` times.
pub async fn pull(
    ctx: &Ctx,
    t: &mut Target,
    bar: &ProgressBar,
    size: u64,
    phase: Phase,
) -> PhaseResult {
    let blobs = match blob_of_size(ctx, t, size).await {
        Ok(b) => Arc::new(b),
        Err(e) => {
            return not_run(
                ctx,
                phase,
                Outcome::Failed,
                format!("could not push a blob to pull: {e:#}"),
            )
        }
    };
    let n = ctx.settings.repeats(size);
    bar.set_length(n);
    let bounds = ctx.count_bounds(1, n);
    let reg = t.registry.clone();
    let tally = driver::run(bounds, bar, move |i| {
        let (reg, blobs) = (reg.clone(), blobs.clone());
        async move {
            let b = &blobs[i as usize % blobs.len()];
            reg.pull_blob(&b.repo, &b.digest, b.spec.size).await
        }
    })
    .await;
    finish(ctx, phase, Unit::Bytes, bounds, tally, false)
}

/// Reads `range_size` ranges at pseudo-random aligned offsets of the largest blob,
/// `concurrency` at a time, for the phase duration; every 64th range is checked
/// byte for byte against the generator.
pub async fn pull_range(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let size = t
        .pushed
        .iter()
        .map(|b| b.spec.size)
        .max()
        .or_else(|| ctx.settings.sizes.iter().copied().max())
        .unwrap_or(ctx.settings.range_size);
    let blob = match blob_of_size(ctx, t, size).await {
        Ok(b) => Arc::new(b[0].clone()),
        Err(e) => {
            return not_run(
                ctx,
                phase,
                Outcome::Failed,
                format!("could not push a blob to read: {e:#}"),
            )
        }
    };
    let len = ctx.settings.range_size.min(size);
    let slots = (size / len).max(1);
    let bounds = ctx.rate_bounds(ctx.settings.concurrency);
    let reg = t.registry.clone();
    // The lean pool sends no credentials: signed runs use the general client.
    let lean = (!t.registry.signed())
        .then(|| Pool::new(t.registry.base()))
        .flatten()
        .map(Arc::new);
    let path = format!("/v2/{}/blobs/{}", blob.repo, blob.digest);
    let tally = driver::run(bounds, bar, move |i| {
        let (reg, blob, lean, path) = (reg.clone(), blob.clone(), lean.clone(), path.clone());
        async move {
            let offset = (crate::bench::content::mix(i) % slots) * len;
            let check = i % 64 == 0;
            let got = match lean {
                Some(pool) => {
                    let range = format!("bytes={}-{}", offset, offset + len - 1);
                    let request = pool.request("GET", &path, &[("range", &range)]);
                    let r = pool.send(&request, false, check).await?;
                    if r.status != 206 || r.len != len {
                        anyhow::bail!(
                            "ranged GET blob: {} with {} bytes instead of 206 with {len}",
                            r.status,
                            r.len
                        );
                    }
                    r.body.map(Bytes::from)
                }
                None => Some(
                    reg.pull_range(&blob.repo, &blob.digest, offset, len)
                        .await?,
                ),
            };
            if check && got.as_deref() != Some(&blob.spec.range(offset, len as usize)[..]) {
                anyhow::bail!(
                    "bytes {offset}..{} differ from what was pushed",
                    offset + len
                );
            }
            Ok(len)
        }
    })
    .await;
    let mut r = finish(ctx, phase, Unit::Ops, bounds, tally, true);
    let mib_s = r.bytes as f64 / 1048576.0 / r.elapsed_s.max(1e-9);
    note(&mut r, format!("{mib_s:.1} MiB/s"));
    r
}

/// Pushes `small_blobs` distinct small blobs (`POST` + `PUT` each), `concurrency` at once.
pub async fn small(ctx: &Ctx, t: &mut Target, bar: &ProgressBar, phase: Phase) -> PhaseResult {
    let n = ctx.settings.small_blobs;
    let size = ctx.settings.small_blob_size;
    bar.set_length(n);
    let bounds = ctx.count_bounds(ctx.settings.concurrency, n);
    let (reg, ledger, repo) = (t.registry.clone(), t.ledger.clone(), ctx.repo("small"));
    let base = seed(ctx, 4, size, 0);
    let tally = driver::run(bounds, bar, move |i| {
        let (reg, ledger, repo) = (reg.clone(), ledger.clone(), repo.clone());
        async move {
            let spec = BlobSpec {
                seed: base ^ i,
                size,
            };
            let bytes = Bytes::from(spec.range(0, size as usize));
            let digest = sha256(&bytes);
            reg.push_bytes(&repo, bytes, &digest).await?;
            owe(&ledger, Kind::Blob, &repo, &digest);
            Ok(size)
        }
    })
    .await;
    finish(ctx, phase, Unit::Ops, bounds, tally, false)
}
