//! Upload sessions any server can continue: two servers over the same stores
//! (one data directory with SQLite or PostgreSQL metadata, or PostgreSQL and
//! S3 with a data directory each) take turns with the chunks of one upload,
//! over HTTP.

use marina::config::SecretUrl;
use marina::oci::Algorithm;
use marina::server::ServerHandle;
use reqwest::StatusCode;

use crate::support::{postgres_metadata_url, s3_url};

/// Where the two servers keep things: metadata and blob URLs, and whether
/// they share one data directory.
struct Stores {
    metadata: Option<SecretUrl>,
    blobs: Option<String>,
    one_data_dir: bool,
    /// The chunks' sizes; the last goes with the closing `PUT`.
    chunks: Vec<usize>,
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Chunks of an upload on the filesystem (whose staging file any server on
/// the data directory reads). A record of a chunk of a few MiB usually holds
/// a hash still behind its bytes, which the other server then catches up
/// from the staging file.
const FILE_CHUNKS: [usize; 6] = [4 * MIB, 70 * KIB, 4 * MIB + 5, 3 * MIB, 70 * KIB, 3 * KIB];

/// A server over `dir` and `stores`.
async fn server(dir: &std::path::Path, stores: &Stores) -> ServerHandle {
    let mut builder = marina::Registry::builder().data_dir(dir).gc_interval(None);
    if let Some(url) = &stores.metadata {
        builder = builder.metadata_url(url.expose());
    }
    if let Some(url) = &stores.blobs {
        builder = builder.blob_url(url);
    }
    let registry = builder.build().expect("the stores open");
    marina::server::serve(&registry, "127.0.0.1:0")
        .await
        .expect("a loopback port")
}

/// A blob's bytes as `base` serves them.
async fn blob(http: &reqwest::Client, base: &str, digest: &marina::oci::Digest) -> bytes::Bytes {
    http.get(format!("{base}/v2/shared/app/blobs/{digest}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
}

/// Opens an upload session on `base`; its location.
async fn start_upload(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .post(format!("{base}/v2/shared/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Sends a chunk (`PATCH`), with a `Content-Range` when `range` is given.
async fn patch(
    http: &reqwest::Client,
    url: String,
    range: Option<(usize, usize)>,
    body: Vec<u8>,
) -> StatusCode {
    let mut req = http
        .patch(url)
        .header("content-type", "application/octet-stream");
    if let Some((start, end)) = range {
        req = req.header("content-range", format!("{start}-{end}"));
    }
    req.body(body).send().await.unwrap().status()
}

/// Closes a session (`PUT ?digest=`) with a last body.
async fn close(
    http: &reqwest::Client,
    base: &str,
    location: &str,
    digest: &marina::oci::Digest,
    body: Vec<u8>,
) -> StatusCode {
    let sep = if location.contains('?') { '&' } else { '?' };
    http.put(format!("{base}{location}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// POST on one server, chunks alternating, status on each, PUT on the other,
/// and the blob read back from the first.
async fn chunks_alternate_between_servers(stores: Stores) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = server(dir_a.path(), &stores).await;
    let b_dir = if stores.one_data_dir { &dir_a } else { &dir_b };
    let b = server(b_dir.path(), &stores).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let servers = [a.url(), b.url()];
    let chunks: Vec<Vec<u8>> = stores
        .chunks
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            (0..n)
                .map(|j| (j as u8) ^ (i as u8) ^ (j >> 12) as u8)
                .collect()
        })
        .collect();
    let (last, chunks) = chunks.split_last().expect("at least one chunk");
    let whole = [chunks.concat(), last.clone()].concat();
    let digest = Algorithm::Sha256.digest_of(&whole);

    let location = start_upload(&http, &servers[0]).await;
    // The location is a path: the same session on either server.
    assert!(
        location.starts_with("/v2/shared/app/blobs/uploads/"),
        "{location}"
    );
    let mut offset = 0usize;
    for (i, c) in chunks.iter().enumerate() {
        let base = &servers[(i + 1) % 2];
        let range = Some((offset, offset + c.len() - 1));
        let status = patch(&http, format!("{base}{location}"), range, c.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "chunk {i} on {base}");
        offset += c.len();
        for base in &servers {
            let r = http.get(format!("{base}{location}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            assert_eq!(
                r.headers()["range"].to_str().unwrap(),
                format!("0-{}", offset - 1),
                "status on {base} after chunk {i}"
            );
        }
    }
    // A chunk the other server already took is out of order here.
    let url = format!("{}{location}", servers[1]);
    assert_eq!(
        patch(&http, url, Some((0, 2)), b"abc".to_vec()).await,
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    assert_eq!(
        close(&http, &servers[0], &location, &digest, last.clone()).await,
        StatusCode::CREATED
    );
    for base in &servers {
        let got = blob(&http, base, &digest).await;
        assert!(got == whole, "the blob from {base} is the upload");
        let r = http.get(format!("{base}{location}")).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "the session is over on {base}"
        );
    }
    // One chunk on one server, closed on the other (on S3: the sealed chunk
    // is copied inside the bucket).
    let one = b"a single sealed chunk".to_vec();
    let one_digest = Algorithm::Sha256.digest_of(&one);
    let location = start_upload(&http, &servers[1]).await;
    let url = format!("{}{location}", servers[0]);
    assert_eq!(
        patch(&http, url, None, one.clone()).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        close(&http, &servers[1], &location, &one_digest, Vec::new()).await,
        StatusCode::CREATED
    );
    let got = blob(&http, &servers[0], &one_digest).await;
    assert_eq!(got.as_ref(), one.as_slice());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_data_directory_share_upload_sessions() {
    chunks_alternate_between_servers(Stores {
        metadata: None,
        blobs: None,
        one_data_dir: true,
        chunks: FILE_CHUNKS.to_vec(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_share_upload_sessions() {
    let Some(url) = postgres_metadata_url() else {
        return;
    };
    chunks_alternate_between_servers(Stores {
        metadata: Some(url),
        blobs: None,
        one_data_dir: true,
        chunks: FILE_CHUNKS.to_vec(),
    })
    .await;
}

/// Nothing shared but the database and the bucket: each chunk is sealed into
/// the bucket before it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_and_s3_with_a_disk_each_share_upload_sessions() {
    let (Some(metadata), Some(blobs)) = (postgres_metadata_url(), s3_url()) else {
        return;
    };
    chunks_alternate_between_servers(Stores {
        metadata: Some(metadata),
        blobs: Some(blobs),
        one_data_dir: false,
        // Small pieces that add up to a part, a chunk that is a part on its
        // own with a short remainder kept in it, more pieces, and a last body.
        chunks: vec![3 * MIB, 3 * MIB, 9 * MIB, MIB, 2 * MIB, MIB + 7],
    })
    .await;
}

/// A client of the bucket `url` names, and the key prefix it gives.
fn bucket_of(url: &str) -> (object_store::aws::AmazonS3, String) {
    let loc = marina::store::S3Location::parse(url).unwrap();
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&loc.bucket)
        .with_region(&loc.region)
        .with_virtual_hosted_style_request(false);
    if let Some(endpoint) = &loc.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    (builder.build().unwrap(), loc.prefix)
}

/// The objects under `under` (below the key prefix) in the bucket `url` names.
async fn objects_under(url: &str, under: &str) -> Vec<String> {
    use futures_util::TryStreamExt;
    use object_store::ObjectStore;
    let (bucket, prefix) = bucket_of(url);
    let prefix = object_store::path::Path::from(format!("{prefix}/{under}"));
    bucket
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// A chunk sealed into the session's prefix whose record lost the race for
/// its offset (here put there by hand, as the losing server would) is
/// deleted with the rest of the session when another server finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_a_session_on_s3_deletes_a_chunk_that_lost_its_race() {
    let (Some(metadata), Some(blobs)) = (postgres_metadata_url(), s3_url()) else {
        return;
    };
    let stores = Stores {
        metadata: Some(metadata),
        blobs: Some(blobs.clone()),
        one_data_dir: false,
        chunks: Vec::new(),
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = server(dir_a.path(), &stores).await;
    let b = server(dir_b.path(), &stores).await;
    let http = reqwest::Client::new();
    let (first, last) = (vec![7u8; 200_000], b"the end".to_vec());
    let digest = Algorithm::Sha256.digest_of(&[first.clone(), last.clone()].concat());
    let location = start_upload(&http, &a.url()).await;
    let url = format!("{}{location}", a.url());
    assert_eq!(
        patch(&http, url, Some((0, first.len() - 1)), first.clone()).await,
        StatusCode::ACCEPTED
    );
    let sealed = objects_under(&blobs, "uploads").await;
    assert_eq!(
        sealed.len(),
        1,
        "the chunk is sealed into the bucket: {sealed:?}"
    );
    let session = sealed[0].rsplit_once('/').unwrap().0.to_string();
    // The losing server's chunk for the same offset.
    let stray = object_store::path::Path::from(format!(
        "{session}/piece-{:020}-{}",
        0,
        uuid::Uuid::new_v4().simple()
    ));
    object_store::ObjectStore::put(&bucket_of(&blobs).0, &stray, first.clone().into())
        .await
        .unwrap();
    assert_eq!(objects_under(&blobs, "uploads").await.len(), 2);
    assert_eq!(
        close(&http, &b.url(), &location, &digest, last).await,
        StatusCode::CREATED
    );
    let left = objects_under(&blobs, "uploads").await;
    assert!(left.is_empty(), "left in the bucket: {left:?}");
    a.stop().await;
    b.stop().await;
}

/// Two `marina serve` processes over one data directory: what one of them
/// answers from its kept reads (a tag, a blob's link) follows every write of
/// the other at once, including a miss that was kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_data_directory_never_serve_each_other_stale_reads() {
    use crate::support::{image_manifest, spawn_serve, OCI_MANIFEST};
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&std::ffi::OsStr> = vec!["--data-dir".as_ref(), dir.path().as_os_str()];
    let (mut a_child, a) = spawn_serve(&args, std::process::Stdio::null());
    let (mut b_child, b) = spawn_serve(&args, std::process::Stdio::null());
    let http = reqwest::Client::new();
    let push_blob = |base: String, bytes: &'static [u8]| {
        let http = http.clone();
        async move {
            let d = Algorithm::Sha256.digest_of(bytes);
            let r = http
                .post(format!("{base}/v2/shared/app/blobs/uploads/?digest={d}"))
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            d
        }
    };
    let tag_digest = |base: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("{base}/v2/shared/app/manifests/t"))
                .header("Accept", OCI_MANIFEST)
                .send()
                .await
                .unwrap();
            (r.status() == StatusCode::OK).then(|| {
                r.headers()["docker-content-digest"]
                    .to_str()
                    .unwrap()
                    .to_string()
            })
        }
    };
    let blob_status = |base: String, d: marina::oci::Digest| {
        let http = http.clone();
        async move {
            http.head(format!("{base}/v2/shared/app/blobs/{d}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // A miss on A, twice: a kept miss must not hide B's push.
    let config: &'static [u8] = b"{\"seed\":\"two processes\"}";
    let config_digest = Algorithm::Sha256.digest_of(config);
    for _ in 0..2 {
        assert_eq!(
            blob_status(a.clone(), config_digest.clone()).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(tag_digest(a.clone()).await, None);
    }
    push_blob(b.clone(), config).await;
    assert_eq!(
        blob_status(a.clone(), config_digest.clone()).await,
        StatusCode::OK
    );
    let mut last = None;
    for (round, writer) in [&b, &a, &b, &b].into_iter().enumerate() {
        let layer: &'static [u8] =
            Box::leak(format!("layer {round}").into_bytes().into_boxed_slice());
        let l = push_blob(writer.clone(), layer).await;
        let m = image_manifest(
            &config_digest,
            config.len(),
            &[(&l, layer.len())],
            None,
            None,
        );
        let d = Algorithm::Sha256.digest_of(&m).to_string();
        let r = http
            .put(format!("{writer}/v2/shared/app/manifests/t"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        // Both read the new digest right after the 201, twice (kept the second time).
        for reader in [&a, &b, &a, &b] {
            assert_eq!(
                tag_digest(reader.clone()).await.as_deref(),
                Some(d.as_str()),
                "round {round}"
            );
        }
        last = Some(d);
    }
    let r = http
        .delete(format!("{b}/v2/shared/app/manifests/{}", last.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(tag_digest(a.clone()).await, None, "deleted on B, gone on A");
    for child in [&mut a_child, &mut b_child] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A blob object a crash left without its record (put, then killed before
/// the record's commit) is collected once past the grace; a recorded one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_blob_objects_no_record_names() {
    let Some(blobs) = s3_url() else {
        return;
    };
    let (reg, _dir) = crate::gc::registry_with(std::time::Duration::ZERO, None, Some(&blobs)).await;
    let http = crate::gc::Http::new(&reg);
    let lost = vec![6u8; 50_000];
    let lost_digest = Algorithm::Sha256.digest_of(&lost);
    let hex = lost_digest.hex();
    let (bucket, prefix) = bucket_of(&blobs);
    let under = format!("blobs/sha256/{}/", &hex[..2]);
    let key = object_store::path::Path::from(format!("{prefix}/{under}{hex}"));
    object_store::ObjectStore::put(&bucket, &key, lost.into())
        .await
        .unwrap();
    let kept = vec![7u8; 50_000];
    let (kept_digest, status) = http.push_blob("team/app", &kept).await;
    assert_eq!(status, 201);
    let m = crate::gc::manifest((&kept_digest, kept.len()), &[]);
    let put = http
        .put_manifest("team/app", "v1", crate::support::OCI_MANIFEST, &m)
        .await;
    assert_eq!(put.0, 201);
    // Object times are in whole seconds: let the grace of 0 s pass them.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let collected = reg.registry().collect_unrecorded_bytes().await.unwrap();
    assert_eq!(collected, (1, 50_000));
    let left = objects_under(&blobs, &under).await;
    assert!(!left.iter().any(|k| k.ends_with(hex)), "{left:?}");
    assert_eq!(http.blob("team/app", &kept_digest).await, Some(kept));
}
