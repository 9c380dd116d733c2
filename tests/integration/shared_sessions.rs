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

    let r = http
        .post(format!("{}/v2/shared/app/blobs/uploads/", servers[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // The location is a path: the same session on either server.
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/v2/shared/app/blobs/uploads/"),
        "{location}"
    );
    let mut offset = 0usize;
    for (i, c) in chunks.iter().enumerate() {
        let base = &servers[(i + 1) % 2];
        let r = http
            .patch(format!("{base}{location}"))
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{}-{}", offset, offset + c.len() - 1),
            )
            .body(c.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "chunk {i} on {base}");
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
    let r = http
        .patch(format!("{}{location}", servers[1]))
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-2")
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{}{location}{sep}digest={digest}", servers[0]))
        .header("content-type", "application/octet-stream")
        .body(last.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    for base in &servers {
        let got = http
            .get(format!("{base}/v2/shared/app/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
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
    let r = http
        .post(format!("{}/v2/shared/app/blobs/uploads/", servers[1]))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = http
        .patch(format!("{}{location}", servers[0]))
        .header("content-type", "application/octet-stream")
        .body(one.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{}{location}{sep}digest={one_digest}", servers[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = http
        .get(format!("{}/v2/shared/app/blobs/{one_digest}", servers[0]))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
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
        chunks: vec![70 * KIB, 70 * KIB, 70 * KIB, 70 * KIB, 70 * KIB, 3 * KIB],
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
        chunks: vec![70 * KIB, 70 * KIB, 70 * KIB, 70 * KIB, 70 * KIB, 3 * KIB],
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
