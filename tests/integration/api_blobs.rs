//! Blob GET/HEAD (digest header, length, ranges) and DELETE.

use crate::assert_transcript;
use crate::support::TestServer;

#[tokio::test]
async fn get_and_head_carry_digest_and_length() {
    let s = TestServer::start().await;
    let d = s.push_blob("org/app", b"some blob bytes").await;
    let r = s.get(&format!("/v2/org/app/blobs/{d}")).await;
    r.expect(200, None);
    assert_eq!(r.body, b"some blob bytes");
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(r.header("content-length"), Some("15"));
    let h = s.head(&format!("/v2/org/app/blobs/{d}")).await;
    h.expect(200, None);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("15"));
    assert_eq!(
        h.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_transcript!("blob_head", h.transcript());
}

#[tokio::test]
async fn unknown_blobs_and_repositories_are_404_with_codes() {
    let s = TestServer::start().await;
    let d = s.push_blob("org/app", b"x").await;
    let missing = marina::oci::Algorithm::Sha256.digest_of(b"missing");
    s.get(&format!("/v2/org/app/blobs/{missing}"))
        .await
        .expect(404, Some("BLOB_UNKNOWN"));
    s.get(&format!("/v2/org/other/blobs/{d}"))
        .await
        .expect(404, Some("NAME_UNKNOWN"));
    let h = s.head(&format!("/v2/org/app/blobs/{missing}")).await;
    h.expect(404, None);
    s.get("/v2/org/app/blobs/sha256:nothex")
        .await
        .expect(400, Some("DIGEST_INVALID"));
    s.get("/v2/org/app/blobs/unknown:12345")
        .await
        .expect(400, Some("DIGEST_INVALID"));
}

#[tokio::test]
async fn range_requests_follow_rfc_9110() {
    let s = TestServer::start().await;
    let data: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let d = s.push_blob("r", &data).await;
    let path = format!("/v2/r/blobs/{d}");
    type Case<'a> = (&'a str, u16, Option<(usize, usize)>);
    let cases: [Case; 6] = [
        ("bytes=500-1499", 206, Some((500, 1499))),
        ("bytes=500-", 206, Some((500, 2047))),
        ("bytes=-500", 206, Some((1548, 2047))),
        ("bytes=2000-5000", 206, Some((2000, 2047))),
        ("bytes=500-0", 416, None),
        ("bytes=5000-10000", 416, None),
    ];
    for (range, status, want) in cases {
        let r = s
            .req(reqwest::Method::GET, &path)
            .await
            .header("Range", range)
            .send()
            .await;
        assert_eq!(r.status.as_u16(), status, "{range}: {}", r.describe());
        if let Some((a, b)) = want {
            assert_eq!(r.body, &data[a..=b], "{range}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {a}-{b}/2048").as_str())
            );
            assert_eq!(
                r.header("content-length"),
                Some((b - a + 1).to_string().as_str())
            );
        } else {
            assert_eq!(r.header("content-range"), Some("bytes */2048"));
            // The blob exists: the error must not say it is unknown.
            assert_eq!(r.error_code(), "UNSUPPORTED", "{range}: {}", r.describe());
        }
    }
    let r = s
        .req(reqwest::Method::GET, &path)
        .await
        .header("Range", "bytes=10-19")
        .send()
        .await;
    assert_transcript!("blob_range", r.transcript());
}

/// `If-Range` (RFC 9110, 13.1.5): the range is sent only when the validator is
/// the blob's digest as an entity tag; any other validator gets the whole blob.
#[tokio::test]
async fn if_range_with_another_validator_gets_the_whole_blob() {
    let s = TestServer::start().await;
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let d = s.push_blob("r", &data).await;
    let path = format!("/v2/r/blobs/{d}");
    let matching = format!("\"{d}\"");
    let cases = [
        (matching.as_str(), 206, &data[10..20]),
        ("\"wrong\"", 200, &data[..]),
        ("Sat, 05 Dec 2026 10:00:00 GMT", 200, &data[..]),
    ];
    for (validator, status, want) in cases {
        let r = s
            .req(reqwest::Method::GET, &path)
            .await
            .header("Range", "bytes=10-19")
            .header("If-Range", validator)
            .send()
            .await;
        assert_eq!(r.status.as_u16(), status, "{validator}: {}", r.describe());
        assert_eq!(r.body, want, "{validator}");
    }
}

/// Blobs are read from disk in 1 MiB chunks: whole blobs and ranges that start,
/// end or straddle a chunk boundary come back exactly.
#[tokio::test]
async fn ranges_across_read_chunk_boundaries() {
    const C: usize = 1 << 20;
    let s = TestServer::start().await;
    let size = 2 * C + 7;
    let data: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
    let d = s.push_blob("chunks", &data).await;
    let path = format!("/v2/chunks/blobs/{d}");
    let whole = s.get(&path).await;
    whole.expect(200, None);
    assert!(whole.body == data, "whole blob differs");
    for (a, b) in [
        (0, C - 1),
        (0, C),
        (C - 1, C),
        (C, 2 * C - 1),
        (C + 1, 2 * C + 1),
        (2 * C, size - 1),
        (size - 1, size - 1),
        (1, size - 2),
    ] {
        let r = s
            .req(reqwest::Method::GET, &path)
            .await
            .header("Range", &format!("bytes={a}-{b}"))
            .send()
            .await;
        assert_eq!(r.status.as_u16(), 206, "{a}-{b}: {}", r.describe());
        assert!(r.body == data[a..=b], "{a}-{b}: bytes differ");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{size}").as_str())
        );
    }
}

/// A blob file found shorter than its recorded size (damaged on disk) is answered
/// with a 500 before any byte is sent, never with a 200 and a short body.
#[tokio::test]
async fn a_truncated_blob_file_is_an_error_not_a_short_body() {
    let s = TestServer::start().await;
    let data = vec![5u8; 100_000];
    let d = s.push_blob("damaged", &data).await;
    let file = s
        .data_dir()
        .join("blobs/sha256")
        .join(&d.hex()[..2])
        .join(d.hex());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(10)
        .unwrap();
    let r = s.get(&format!("/v2/damaged/blobs/{d}")).await;
    assert_eq!(r.status.as_u16(), 500, "{}", r.describe());
    assert!(
        String::from_utf8_lossy(&r.body).contains("\"errors\""),
        "{}",
        r.describe()
    );
}

#[tokio::test]
async fn delete_unlinks_from_one_repository_only() {
    let s = TestServer::start().await;
    let d = s.push_blob("a", b"shared").await;
    s.push_blob("b", b"shared").await;
    let r = s.delete(&format!("/v2/a/blobs/{d}")).await;
    r.expect(202, None);
    s.get(&format!("/v2/a/blobs/{d}"))
        .await
        .expect(404, Some("BLOB_UNKNOWN"));
    s.get(&format!("/v2/b/blobs/{d}")).await.expect(200, None);
    s.delete(&format!("/v2/a/blobs/{d}"))
        .await
        .expect(404, Some("BLOB_UNKNOWN"));
    assert_transcript!("blob_delete", r.transcript());
}

#[tokio::test]
async fn blob_delete_can_be_disabled() {
    let s = TestServer::start_with(|c| c.registry.delete.blobs = false).await;
    let d = s.push_blob("a", b"keep").await;
    let r = s.delete(&format!("/v2/a/blobs/{d}")).await;
    r.expect(405, Some("UNSUPPORTED"));
    assert_eq!(r.header("allow"), Some("GET, HEAD"), "{}", r.describe());
    s.get(&format!("/v2/a/blobs/{d}")).await.expect(200, None);
}
