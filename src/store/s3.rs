//! [`BlobStore`] on S3-compatible object storage (`--blob-url s3://BUCKET/PREFIX?…`),
//! through the `object_store` crate (Apache Arrow's, made for exactly this:
//! multipart uploads, ranged reads, path-style addressing for self-hosted
//! servers such as Garage or MinIO, pure-Rust signing).
//!
//! Blobs are objects `PREFIX/blobs/<algorithm>/<2 hex>/<hex>`. An upload stages
//! the bytes of the request in progress in a local file (under the data
//! directory) while the registry hashes them. When the registry records a
//! chunk ([`Staging::seal`]), the chunk becomes an object
//! `PREFIX/uploads/<session>/<offset>-<nonce>`, listed in the session's record,
//! so any server sharing the bucket and the database continues the session.
//! Only after the digest is verified does [`Staging::publish`] make the blob:
//! a single sealed chunk is copied inside the bucket; otherwise the sealed
//! chunks (read back in ranged `GET`s) and the local tail are streamed into a
//! multipart upload in parts of [`PART_BYTES`]. A blob is never visible in the
//! bucket before it is known to be right, and never held whole in memory. A
//! chunk sealed by a server whose record lost the race (another server
//! recorded that offset first) is deleted by the next server to take the
//! session; cancelling, expiring or finishing a session deletes its prefix.
//!
//! The interface is blocking; each call runs as a task on a small runtime of
//! the store's own, and the caller waits for it.

use std::future::Future;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::MultipartStore;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::fs::FsBlobStore;
use super::{BlobReader, BlobStore, ResumedStaging, Staging};
use crate::oci::{Algorithm, Digest};

/// Size of each uploaded part but the last (S3 wants at least 5 MiB).
pub const PART_BYTES: usize = 8 << 20;
/// Parts of one blob in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Where and how to reach the bucket, parsed from an `s3://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (no leading or trailing `/`), possibly empty.
    pub prefix: String,
    /// `endpoint=` (self-hosted servers); AWS when absent.
    pub endpoint: Option<String>,
    /// `region=`; `us-east-1` when absent.
    pub region: String,
}

impl std::fmt::Debug for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION]`.
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("blob_url {url:?} is not an s3:// URL"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(format!("blob_url {url:?} names no bucket"));
        }
        let mut loc = S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: None,
            region: "us-east-1".into(),
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "endpoint" => loc.endpoint = Some(v.into_owned()),
                "region" => loc.region = v.into_owned(),
                other => {
                    return Err(format!(
                        "blob_url {url:?}: unknown key {other:?} (endpoint and region are taken)"
                    ))
                }
            }
        }
        Ok(loc)
    }
}

/// Blobs in a bucket, staging files on the local disk.
pub struct S3BlobStore {
    bucket: Arc<AmazonS3>,
    location: S3Location,
    staging: FsBlobStore,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3BlobStore({:?})", self.location)
    }
}

impl Drop for S3BlobStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// How long one attempt of a request may take, bytes included (a part is
/// [`PART_BYTES`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After how long from a request's first attempt no new attempt starts (so
/// a call gives up within about this plus [`REQUEST_TIMEOUT`]).
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts after the first.
const MAX_RETRIES: usize = 3;
/// How long the readiness check ([`BlobStore::ping`]) waits for the bucket.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

fn io_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        other => match unreachable_kind(&other) {
            Some(kind) => io::Error::new(kind, other.to_string()),
            None => io::Error::other(other.to_string()),
        },
    }
}

/// The kind of I/O error to report when `e` says the endpoint could not be
/// reached or did not answer in time (which the registry tells apart from
/// other failures): the socket's own error when there is one, else
/// `TimedOut` or `NotConnected`.
fn unreachable_kind(e: &object_store::Error) -> Option<io::ErrorKind> {
    use io::ErrorKind as K;
    let mut found = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if crate::store::is_unavailable(io) {
                return Some(io.kind());
            }
        }
        if let Some(r) = s.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                found = Some(K::TimedOut);
            } else if r.is_connect() || r.is_request() {
                found = found.or(Some(K::NotConnected));
            }
        }
        source = s.source();
    }
    found
}

impl S3BlobStore {
    /// Connects to `location` (credentials from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, or `credentials` when given), staging uploads
    /// under `staging_dir`, and checks that the bucket answers.
    pub fn open(
        location: S3Location,
        credentials: Option<(String, String)>,
        staging_dir: &std::path::Path,
    ) -> io::Result<S3BlobStore> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_region(&location.region)
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some((id, secret)) = credentials {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        // A server that stops answering fails a call within about
        // RETRY_TIMEOUT + REQUEST_TIMEOUT, not after the client's default
        // budget of ten retries over three minutes.
        // (Set key by key: a whole `ClientOptions` would replace the others,
        // such as `allow_http`.)
        let client = |key| object_store::aws::AmazonS3ConfigKey::Client(key);
        let secs = |d: Duration| format!("{}s", d.as_secs());
        builder = builder
            .with_config(
                client(object_store::ClientConfigKey::ConnectTimeout),
                secs(CONNECT_TIMEOUT),
            )
            .with_config(
                client(object_store::ClientConfigKey::Timeout),
                secs(REQUEST_TIMEOUT),
            )
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            });
        let bucket = builder.build().map_err(io_error)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("marina-s3")
            .enable_all()
            .build()?;
        let store = S3BlobStore {
            bucket: Arc::new(bucket),
            location,
            staging: FsBlobStore::open(staging_dir)?,
            runtime: Some(runtime),
        };
        // Refuses a missing bucket or wrong credentials now, with one line.
        futures_executor::block_on(store.ping())?;
        Ok(store)
    }

    /// Runs `fut` on the store's runtime, where the bucket's connections live,
    /// and awaits it from any runtime (or none) without holding a thread.
    async fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = io::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        self.runtime
            .as_ref()
            .expect("runtime lives until drop")
            .spawn(fut)
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("the S3 request failed: {e}"))))
    }
}

/// Runs `fut` as a task of `runtime` and waits for it with a plain blocking
/// receive: this works from any thread, also inside another store's
/// `block_on` (the metadata store asks whether bytes are present from inside
/// its transaction), where a second executor could not start.
fn run_on<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    fut: impl Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .unwrap_or_else(|_| Err(io::Error::other("the S3 request ended without an answer")))
}

/// The kind [`io_error`] gives `e`.
fn io_error_kind(e: &object_store::Error) -> io::ErrorKind {
    match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        other => unreachable_kind(other).unwrap_or(io::ErrorKind::Other),
    }
}

/// An S3 error in a few words: the server's `<Code>` and `<Message>` when it
/// sent them, else the client's description.
fn s3_reason(e: &object_store::Error) -> String {
    let text = e.to_string();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find("</")? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => text,
    }
}

/// The object key of `name` under the location's key prefix.
fn key_in(location: &S3Location, name: &str) -> Key {
    if location.prefix.is_empty() {
        Key::from(name)
    } else {
        Key::from(format!("{}/{name}", location.prefix))
    }
}

/// The object key of a blob.
fn key_of(location: &S3Location, digest: &Digest) -> Key {
    let hex = digest.hex();
    key_in(
        location,
        &format!(
            "blobs/{}/{}/{}",
            digest.algorithm().as_str(),
            &hex[..2],
            hex
        ),
    )
}

/// The objects of an upload session: `PREFIX/uploads/<id>/`.
fn session_prefix(location: &S3Location, id: &str) -> Key {
    key_in(location, &format!("uploads/{id}"))
}

/// A small chunk of an upload kept as an object of its own (under the
/// session's prefix) until enough of them make a part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Piece {
    key: String,
    len: u64,
}

/// A part of the session's multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Part {
    etag: String,
    len: u64,
}

/// What of an upload is in the bucket (the descriptor a session's record
/// holds): parts of a multipart upload to `PREFIX/uploads/<session>/data`,
/// then the pieces too small to be a part yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Sealed {
    #[serde(default)]
    upload: Option<String>,
    #[serde(default)]
    parts: Vec<Part>,
    #[serde(default)]
    pieces: Vec<Piece>,
}

impl Sealed {
    fn parts_len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    fn pieces_len(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }

    fn len(&self) -> u64 {
        self.parts_len() + self.pieces_len()
    }
}

/// Smallest part S3 takes, but for the last.
const MIN_PART_BYTES: u64 = 5 << 20;

/// An upload's staging area: what is sealed in the bucket (parts of a
/// multipart upload, small pieces), then the bytes since the last seal in a
/// local file.
struct S3Staging {
    inner: Box<dyn Staging>,
    id: String,
    store: Arc<S3Handle>,
    /// Behind a lock only so that [`Staging::read_back`] can complete the
    /// multipart upload (its parts cannot be read before).
    sealed: std::sync::Mutex<Sealed>,
}

/// What a staging area needs of its store after the store call returned.
struct S3Handle {
    bucket: Arc<AmazonS3>,
    location: S3Location,
    staging: FsBlobStore,
    runtime: tokio::runtime::Handle,
}

impl S3Handle {
    /// Deletes objects, ignoring those already gone; the first other error.
    fn delete(&self, keys: Vec<Key>) -> io::Result<()> {
        let bucket = self.bucket.clone();
        run_on(&self.runtime, async move {
            for key in keys {
                match bucket.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(io_error(e)),
                }
            }
            Ok(())
        })
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = io::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        run_on(&self.runtime, fut)
    }

    /// Deletes everything under the session's prefix, whichever server put
    /// it there (sealed chunks, the multipart upload's object, chunks whose
    /// record lost a race), and the local staging file.
    fn discard(&self, id: &str) -> io::Result<()> {
        self.staging.discard_staging(id);
        let (bucket, prefix) = (self.bucket.clone(), session_prefix(&self.location, id));
        self.run(async move {
            let keys: Vec<Key> = bucket
                .list(Some(&prefix))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(io_error)?;
            for key in keys {
                match bucket.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(io_error(e)),
                }
            }
            Ok(())
        })
    }

    /// The key of a session's multipart upload.
    fn data_key(&self, id: &str) -> Key {
        Key::from(format!("{}/data", session_prefix(&self.location, id)))
    }

    /// Appends `source` (`len` bytes) to the multipart upload as parts of
    /// [`PART_BYTES`], a few in flight. With `last`, the final part may be
    /// short; else a short remainder joins the part before it, so every part
    /// is at least [`MIN_PART_BYTES`].
    fn put_parts(
        &self,
        id: &str,
        sealed: &mut Sealed,
        mut source: Box<dyn Read + Send>,
        len: u64,
        last: bool,
    ) -> io::Result<()> {
        let key = self.data_key(id);
        let upload = match &sealed.upload {
            Some(u) => u.clone(),
            None => {
                let (bucket, k) = (self.bucket.clone(), key.clone());
                let u =
                    self.run(async move { bucket.create_multipart(&k).await.map_err(io_error) })?;
                sealed.upload = Some(u.clone());
                u
            }
        };
        let mut in_flight = std::collections::VecDeque::new();
        let mut left = len;
        let wait = |h: tokio::task::JoinHandle<io::Result<Part>>, sealed: &mut Sealed| {
            let part = self.run(async move {
                h.await
                    .map_err(|e| io::Error::other(format!("an upload part failed: {e}")))?
            })?;
            sealed.parts.push(part);
            io::Result::Ok(())
        };
        let mut idx = sealed.parts.len();
        while left > 0 {
            let mut take = left.min(PART_BYTES as u64);
            if !last && left - take < MIN_PART_BYTES {
                take = left;
            }
            let mut part = Vec::with_capacity(take as usize);
            (&mut source).take(take).read_to_end(&mut part)?;
            if part.len() as u64 != take {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "an upload's staged bytes ended early",
                ));
            }
            left -= take;
            let (bucket, k, u) = (self.bucket.clone(), key.clone(), upload.clone());
            in_flight.push_back(self.runtime.spawn(async move {
                let id = bucket
                    .put_part(&k, &u, idx, part.into())
                    .await
                    .map_err(io_error)?;
                Ok(Part {
                    etag: id.content_id,
                    len: take,
                })
            }));
            idx += 1;
            if in_flight.len() >= PARTS_IN_FLIGHT {
                wait(in_flight.pop_front().expect("a part in flight"), sealed)?;
            }
        }
        while let Some(h) = in_flight.pop_front() {
            wait(h, sealed)?;
        }
        Ok(())
    }

    /// Completes the multipart upload into the session's data object.
    fn complete(&self, id: &str, sealed: &Sealed) -> io::Result<()> {
        let Some(upload) = sealed.upload.clone() else {
            return Ok(());
        };
        let parts: Vec<object_store::multipart::PartId> = sealed
            .parts
            .iter()
            .map(|p| object_store::multipart::PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        let (bucket, key) = (self.bucket.clone(), self.data_key(id));
        self.run(async move {
            bucket
                .complete_multipart(&key, &upload, parts)
                .await
                .map(|_| ())
                .map_err(io_error)
        })
    }

    /// Reads objects back in order, a part at a time (ranged `GET`s).
    fn reader(self: &Arc<Self>, objects: Vec<Piece>) -> SealedReader {
        SealedReader {
            store: self.clone(),
            chunks: objects.into(),
            offset: 0,
            buffer: io::Cursor::new(bytes::Bytes::new()),
        }
    }
}

impl S3Staging {
    fn sealed(&self) -> std::sync::MutexGuard<'_, Sealed> {
        self.sealed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes everything sealed readable: completes the multipart upload into
    /// the data object, which becomes the first piece.
    fn assemble(&self) -> io::Result<()> {
        let mut sealed = self.sealed();
        if sealed.upload.is_none() {
            return Ok(());
        }
        self.store.complete(&self.id, &sealed)?;
        let data = Piece {
            key: self.store.data_key(&self.id).to_string(),
            len: sealed.parts_len(),
        };
        sealed.upload = None;
        sealed.parts.clear();
        sealed.pieces.insert(0, data);
        Ok(())
    }
}

impl Staging for S3Staging {
    fn size(&self) -> u64 {
        self.sealed().len() + self.inner.size()
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.append(bytes)
    }

    fn truncate(&mut self, size: u64) -> io::Result<()> {
        let Some(local) = size.checked_sub(self.sealed().len()) else {
            return Err(io::Error::other(
                "sealed chunks of an upload cannot be taken back",
            ));
        };
        self.inner.truncate(local)
    }

    fn lock(&mut self) -> io::Result<()> {
        self.inner.lock()
    }

    fn unlock(&self) {
        self.inner.unlock()
    }

    fn seal(&mut self) -> io::Result<Vec<u8>> {
        let pending = self.inner.size();
        let h = self.store.clone();
        let mut sealed = self.sealed().clone();
        if pending > 0 {
            let waiting = sealed.pieces_len();
            if waiting + pending < MIN_PART_BYTES {
                // Too small for a part: a piece of its own until more come.
                let key = format!(
                    "{}/piece-{:020}-{}",
                    session_prefix(&h.location, &self.id),
                    sealed.len(),
                    uuid::Uuid::new_v4().simple()
                );
                upload(
                    h.bucket.clone(),
                    Key::from(key.as_str()),
                    self.inner.read_back()?,
                    &h.runtime,
                )?;
                sealed.pieces.push(Piece { key, len: pending });
            } else {
                // The waiting pieces and this chunk become parts.
                let pieces = std::mem::take(&mut sealed.pieces);
                let source = h.reader(pieces.clone()).chain(self.inner.read_back()?);
                h.put_parts(
                    &self.id,
                    &mut sealed,
                    Box::new(source),
                    waiting + pending,
                    false,
                )?;
                let _ = h.delete(pieces.iter().map(|p| Key::from(p.key.as_str())).collect());
            }
            self.inner.truncate(0)?;
            *self.sealed() = sealed.clone();
        }
        serde_json::to_vec(&sealed).map_err(io::Error::other)
    }

    fn adopt(&mut self, size: u64, descriptor: &[u8]) -> io::Result<bool> {
        let recorded: Sealed = if descriptor.is_empty() {
            Sealed::default()
        } else {
            serde_json::from_slice(descriptor).map_err(io::Error::other)?
        };
        // What this handle sealed that was never recorded (another server
        // recorded first): nobody will read it.
        let mine = self.sealed().clone();
        let orphans: Vec<Key> = mine
            .pieces
            .iter()
            .filter(|p| !recorded.pieces.contains(p))
            .map(|p| Key::from(p.key.as_str()))
            .collect();
        if !orphans.is_empty() {
            let _ = self.store.delete(orphans);
        }
        let recorded_len = recorded.len();
        *self.sealed() = recorded;
        // What the record holds beyond the sealed bytes is local (a session
        // staged before chunks were sealed).
        let Some(local) = size.checked_sub(recorded_len) else {
            return Ok(false);
        };
        if self.inner.size() < local {
            return Ok(false);
        }
        if self.inner.size() > local {
            self.inner.truncate(local)?;
        }
        Ok(true)
    }

    fn read_back(&self) -> io::Result<Box<dyn Read + Send>> {
        self.assemble()?;
        let pieces = self.sealed().pieces.clone();
        Ok(Box::new(
            self.store.reader(pieces).chain(self.inner.read_back()?),
        ))
    }

    fn publish(self: Box<Self>, digest: &Digest) -> io::Result<()> {
        let h = self.store.clone();
        let key = key_of(&h.location, digest);
        let bucket = h.bucket.clone();
        let probe = key.clone();
        let exists = run_on(
            &h.runtime,
            async move { Ok(bucket.head(&probe).await.is_ok()) },
        )?;
        let mut sealed = self.sealed().clone();
        // Nothing recorded was ever sealed: then no server sealed a chunk of
        // this session (a chunk that lost its offset's race means another
        // server's chunk won it and was sealed), and there is nothing in the
        // bucket to delete.
        let in_bucket = sealed.upload.is_some() || !sealed.pieces.is_empty();
        // Content-addressed: an object already there holds these very bytes.
        if !exists {
            let pending = self.inner.size();
            if sealed.upload.is_some() {
                // The pieces and the last bytes become the last parts; the
                // completed upload is copied inside the bucket.
                let pieces = std::mem::take(&mut sealed.pieces);
                let rest = pieces.iter().map(|p| p.len).sum::<u64>() + pending;
                let source = h.reader(pieces.clone()).chain(self.inner.read_back()?);
                h.put_parts(&self.id, &mut sealed, Box::new(source), rest, true)?;
                h.complete(&self.id, &sealed)?;
                sealed.upload = None;
                sealed.pieces = pieces;
                let (bucket, from, to) = (h.bucket.clone(), h.data_key(&self.id), key.clone());
                h.run(async move { bucket.copy(&from, &to).await.map_err(io_error) })?;
            } else {
                match (sealed.pieces.as_slice(), pending) {
                    // One piece and nothing since: copied inside the bucket.
                    ([only], 0) => {
                        let (bucket, from) = (h.bucket.clone(), Key::from(only.key.as_str()));
                        let to = key.clone();
                        h.run(async move { bucket.copy(&from, &to).await.map_err(io_error) })?;
                    }
                    _ => upload(h.bucket.clone(), key, self.read_back()?, &h.runtime)?,
                }
            }
        } else if let Some(u) = sealed.upload.clone() {
            let (bucket, k) = (h.bucket.clone(), h.data_key(&self.id));
            let _ = h.run(async move { bucket.abort_multipart(&k, &u).await.map_err(io_error) });
        }
        if !in_bucket {
            h.staging.discard_staging(&self.id);
        } else if let Err(e) = h.discard(&self.id) {
            tracing::warn!(session = %self.id, error = %e, "cannot remove a finished upload's chunks");
        }
        Ok(())
    }

    fn abandon(self: Box<Self>) {
        let sealed = self.sealed().clone();
        if let Some(u) = sealed.upload {
            let (bucket, k) = (self.store.bucket.clone(), self.store.data_key(&self.id));
            let _ = self
                .store
                .run(async move { bucket.abort_multipart(&k, &u).await.map_err(io_error) });
        }
    }
}

/// Reads sealed pieces back in order, a part at a time (ranged `GET`s).
struct SealedReader {
    store: Arc<S3Handle>,
    chunks: std::collections::VecDeque<Piece>,
    /// Where the next ranged read of the first piece starts.
    offset: u64,
    buffer: io::Cursor<bytes::Bytes>,
}

impl Read for SealedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.buffer.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            let Some(chunk) = self.chunks.front().cloned() else {
                return Ok(0);
            };
            if self.offset >= chunk.len {
                self.chunks.pop_front();
                self.offset = 0;
                continue;
            }
            let end = (self.offset + PART_BYTES as u64).min(chunk.len);
            let (bucket, key, range) = (
                self.store.bucket.clone(),
                Key::from(chunk.key.as_str()),
                self.offset..end,
            );
            let bytes = run_on(&self.store.runtime, async move {
                bucket.get_range(&key, range).await.map_err(io_error)
            })?;
            if bytes.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("chunk {} of an upload ended early", chunk.key),
                ));
            }
            self.offset += bytes.len() as u64;
            self.buffer = io::Cursor::new(bytes);
        }
    }
}

/// Streams `bytes` into the object `key` as a multipart upload, in parts of
/// [`PART_BYTES`], a few in flight. The bytes are read on the calling thread
/// (never inside the store's runtime: reading sealed chunks back is itself a
/// request on that runtime).
fn upload(
    bucket: Arc<AmazonS3>,
    key: Key,
    mut bytes: Box<dyn Read + Send>,
    runtime: &tokio::runtime::Handle,
) -> io::Result<()> {
    let mut read_part = || -> io::Result<Vec<u8>> {
        let mut part = Vec::with_capacity(PART_BYTES);
        (&mut bytes)
            .take(PART_BYTES as u64)
            .read_to_end(&mut part)?;
        Ok(part)
    };
    let first = read_part()?;
    // Up to one part: a single PUT (an empty multipart part is refused).
    if first.len() < PART_BYTES {
        return run_on(runtime, async move {
            bucket.put(&key, first.into()).await.map_err(io_error)?;
            Ok(())
        });
    }
    let (b, k) = (bucket.clone(), key.clone());
    let mut multipart = run_on(runtime, async move {
        b.put_multipart(&k).await.map_err(io_error)
    })?;
    let mut in_flight = std::collections::VecDeque::new();
    let wait = |h: tokio::task::JoinHandle<object_store::Result<()>>| {
        run_on(runtime, async move {
            h.await
                .map_err(|e| io::Error::other(format!("an upload part failed: {e}")))?
                .map_err(io_error)
        })
    };
    let parts = (|| -> io::Result<()> {
        let mut part = first;
        loop {
            in_flight.push_back(runtime.spawn(multipart.put_part(part.into())));
            if in_flight.len() >= PARTS_IN_FLIGHT {
                wait(in_flight.pop_front().expect("a part in flight"))?;
            }
            part = read_part()?;
            if part.is_empty() {
                break;
            }
        }
        while let Some(h) = in_flight.pop_front() {
            wait(h)?;
        }
        Ok(())
    })();
    run_on(runtime, async move {
        match parts {
            Ok(()) => multipart.complete().await.map(|_| ()).map_err(io_error),
            Err(e) => {
                let _ = multipart.abort().await;
                Err(e)
            }
        }
    })
}

impl S3BlobStore {
    fn handle(&self) -> Arc<S3Handle> {
        Arc::new(S3Handle {
            bucket: self.bucket.clone(),
            location: self.location.clone(),
            staging: self.staging.clone(),
            runtime: self
                .runtime
                .as_ref()
                .expect("runtime lives until drop")
                .handle()
                .clone(),
        })
    }

    fn wrap(&self, id: &str, inner: Box<dyn Staging>) -> Box<dyn Staging> {
        Box::new(S3Staging {
            inner,
            id: id.to_string(),
            store: self.handle(),
            sealed: std::sync::Mutex::new(Sealed::default()),
        })
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    fn create_staging(&self, id: &str, note: &[u8]) -> io::Result<Box<dyn Staging>> {
        let inner = self.staging.create_staging(id, note)?;
        Ok(self.wrap(id, inner))
    }

    fn reopen_staging(&self, id: &str) -> io::Result<Option<ResumedStaging>> {
        Ok(self
            .staging
            .reopen_staging(id)?
            .map(|(inner, note)| (self.wrap(id, inner), note)))
    }

    fn discard_staging(&self, id: &str) {
        // The session's sealed chunks, whichever server sealed them.
        if let Err(e) = self.handle().discard(id) {
            tracing::warn!(session = id, error = %e, "cannot remove an upload's sealed chunks");
        }
    }

    fn stale_staging(&self, before: SystemTime) -> Vec<String> {
        self.staging.stale_staging(before)
    }

    fn blobs_written_before(&self, prefix: u8, before: SystemTime) -> Vec<(Digest, u64)> {
        let (bucket, location) = (self.bucket.clone(), self.location.clone());
        let before_secs = before
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let listed = self.handle().run(async move {
            let mut found = Vec::new();
            for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
                let name = algorithm.as_str();
                let dir = key_in(&location, &format!("blobs/{name}/{prefix:02x}/"));
                let objects: Vec<object_store::ObjectMeta> = bucket
                    .list(Some(&dir))
                    .try_collect()
                    .await
                    .map_err(io_error)?;
                for object in objects {
                    let Some(hex) = object.location.filename() else {
                        continue;
                    };
                    let Ok(digest) = format!("{name}:{hex}").parse::<Digest>() else {
                        continue;
                    };
                    if object.last_modified.timestamp() < before_secs {
                        found.push((digest, object.size));
                    }
                }
            }
            Ok(found)
        });
        listed.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list blob objects for the garbage collector");
            Vec::new()
        })
    }

    async fn size_of(&self, digest: &Digest) -> io::Result<Option<u64>> {
        let key = key_of(&self.location, digest);
        let bucket = self.bucket.clone();
        self.spawn(async move {
            match bucket.head(&key).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(io_error(e)),
            }
        })
        .await
    }

    async fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobReader> {
        let key = key_of(&self.location, digest);
        let bucket = self.bucket.clone();
        let stream = self
            .spawn(async move {
                let options = GetOptions {
                    range: (len > 0).then_some(GetRange::Bounded(offset..offset + len)),
                    ..GetOptions::default()
                };
                let result = bucket.get_opts(&key, options).await.map_err(io_error)?;
                Ok::<_, io::Error>(result.into_stream())
            })
            .await?;
        let reader = tokio_util::io::StreamReader::new(stream.map_err(io_error));
        if len == 0 {
            return Ok(Box::new(tokio::io::empty()));
        }
        Ok(Box::new(reader))
    }

    async fn remove(&self, digest: &Digest) -> io::Result<()> {
        let key = key_of(&self.location, digest);
        let bucket = self.bucket.clone();
        self.spawn(async move {
            match bucket.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(io_error(e)),
            }
        })
        .await
    }

    async fn presigned_get(
        &self,
        digest: &Digest,
        ttl: std::time::Duration,
    ) -> io::Result<Option<String>> {
        use object_store::signer::Signer;
        let key = key_of(&self.location, digest);
        let bucket = self.bucket.clone();
        let url = self
            .spawn(async move {
                bucket
                    .signed_url(reqwest::Method::GET, &key, ttl)
                    .await
                    .map_err(io_error)
            })
            .await?;
        Ok(Some(url.to_string()))
    }

    async fn ping(&self) -> io::Result<()> {
        // A listing fails on a missing bucket or refused credentials, where a
        // HEAD of one key would only say "not found".
        let prefix =
            (!self.location.prefix.is_empty()).then(|| Key::from(self.location.prefix.as_str()));
        let (bucket, name) = (self.bucket.clone(), self.location.bucket.clone());
        self.spawn(async move {
            let listed =
                tokio::time::timeout(PING_TIMEOUT, bucket.list_with_delimiter(prefix.as_ref()))
                    .await;
            match listed {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(io::Error::new(
                    io_error_kind(&e),
                    format!("s3://{name}: {}", s3_reason(&e)),
                )),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "s3://{name}: no answer within {} s",
                        PING_TIMEOUT.as_secs_f32()
                    ),
                )),
            }
        })
        .await
    }
}
