//! Blob uploads: single POST, POST+PUT, chunked PATCH with and without
//! Content-Range, status, cancel, sha512, digest checks and mounts.

use marina::oci::Algorithm;
use reqwest::Method;

use crate::assert_transcript;
use crate::support::{Resp, TestServer};

/// Opens an upload session in `repo` (with `query`); the answer and its location.
pub(crate) async fn open(s: &TestServer, repo: &str, query: &str) -> (Resp, String) {
    let r = s
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/{query}"))
        .await
        .send()
        .await;
    r.expect(202, None);
    let loc = r.header("location").expect("Location").to_string();
    (r, loc)
}

async fn patch(s: &TestServer, loc: &str, range: Option<&str>, body: &[u8]) -> Resp {
    let mut req = s
        .req(Method::PATCH, loc)
        .await
        .header("Content-Type", "application/octet-stream");
    if let Some(r) = range {
        req = req.header("Content-Range", r);
    }
    req.body(body.to_vec()).send().await
}

fn with_digest(loc: &str, d: &impl std::fmt::Display) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={d}")
}

#[tokio::test]
async fn session_post_gives_unique_locations() {
    let s = TestServer::start().await;
    let (r1, l1) = open(&s, "org/app", "").await;
    let (_, l2) = open(&s, "org/app", "").await;
    assert_ne!(l1, l2);
    assert!(l1.starts_with("/v2/org/app/blobs/uploads/"), "{l1}");
    assert_eq!(r1.header("range"), Some("0-0"));
    assert_transcript!("upload_open", r1.transcript());
}

#[tokio::test]
async fn post_then_put_stores_the_blob() {
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "app", "").await;
    let d = Algorithm::Sha256.digest_of(b"monolithic put");
    let r = s
        .req(Method::PUT, &with_digest(&loc, &d))
        .await
        .body(b"monolithic put".to_vec())
        .send()
        .await;
    r.expect(201, None);
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/app/blobs/{d}").as_str())
    );
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(
        s.get(r.header("location").unwrap()).await.body,
        b"monolithic put"
    );
    // The session is gone once closed.
    s.get(&loc).await.expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    assert_transcript!("upload_put_monolithic", r.transcript());
}

#[tokio::test]
async fn chunked_upload_reports_range_on_every_patch() {
    let s = TestServer::start().await;
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (_, mut loc) = open(&s, "app", "").await;
    for (start, end) in [(0usize, 999usize), (1000, 1999), (2000, 2999)] {
        let r = patch(
            &s,
            &loc,
            Some(&format!("{start}-{end}")),
            &data[start..=end],
        )
        .await;
        r.expect(202, None);
        assert_eq!(
            r.header("range"),
            Some(format!("0-{end}").as_str()),
            "{}",
            r.describe()
        );
        loc = r.header("location").unwrap().to_string();
    }
    let st = s.get(&loc).await;
    st.expect(204, None);
    assert_eq!(st.header("range"), Some("0-2999"));
    assert_eq!(st.header("location"), Some(loc.as_str()));
    let d = Algorithm::Sha256.digest_of(&data);
    s.req(Method::PUT, &with_digest(&loc, &d))
        .await
        .send()
        .await
        .expect(201, None);
    assert_eq!(s.get(&format!("/v2/app/blobs/{d}")).await.body, data);
    assert_transcript!("upload_status", st.transcript());
}

#[tokio::test]
async fn out_of_order_and_repeated_chunks_get_416_and_leave_the_session_intact() {
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "app", "").await;
    patch(&s, &loc, Some("0-3"), b"abcd")
        .await
        .expect(202, None);
    let skipped = patch(&s, &loc, Some("10-13"), b"wxyz").await;
    skipped.expect(416, Some("BLOB_UPLOAD_INVALID"));
    assert_eq!(skipped.header("range"), Some("0-3"));
    assert!(skipped.header("location").is_some());
    patch(&s, &loc, Some("0-3"), b"abcd")
        .await
        .expect(416, None);
    let st = s.get(&loc).await;
    assert_eq!(st.header("range"), Some("0-3"));
    // A final PUT whose chunk does not continue the upload is refused too.
    let d = Algorithm::Sha256.digest_of(b"abcdefgh");
    let r = s
        .req(Method::PUT, &with_digest(&loc, &d))
        .await
        .header("Content-Range", "5-8")
        .body(b"efgh".to_vec())
        .send()
        .await;
    r.expect(416, None);
    let r = s
        .req(Method::PUT, &with_digest(&loc, &d))
        .await
        .header("Content-Range", "4-7")
        .body(b"efgh".to_vec())
        .send()
        .await;
    r.expect(201, None);
    assert_transcript!("upload_out_of_order", skipped.transcript());
}

#[tokio::test]
async fn chunk_length_mismatch_is_rolled_back() {
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "app", "").await;
    let r = patch(&s, &loc, Some("0-9"), b"short").await;
    r.expect(400, Some("SIZE_INVALID"));
    assert_eq!(s.get(&loc).await.header("range"), Some("0-0"));
    patch(&s, &loc, Some("0-4"), b"short")
        .await
        .expect(202, None);
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "app", "").await;
    let chunks: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; 1000 + i]).collect();
    let all: Vec<u8> = chunks.concat();
    let r = s
        .req(Method::PATCH, &loc)
        .await
        .stream_body(chunks)
        .send()
        .await;
    r.expect(202, None);
    assert_eq!(
        r.header("range"),
        Some(format!("0-{}", all.len() - 1).as_str())
    );
    let d = Algorithm::Sha256.digest_of(&all);
    s.req(Method::PUT, &with_digest(r.header("location").unwrap(), &d))
        .await
        .send()
        .await
        .expect(201, None);
    assert_eq!(s.get(&format!("/v2/app/blobs/{d}")).await.body, all);
}

#[tokio::test]
async fn cancel_removes_the_session_and_its_file() {
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "app", "").await;
    patch(&s, &loc, None, b"to be dropped")
        .await
        .expect(202, None);
    let r = s.delete(&loc).await;
    r.expect(204, None);
    s.get(&loc).await.expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    patch(&s, &loc, None, b"more")
        .await
        .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    s.delete(&loc)
        .await
        .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    let left = std::fs::read_dir(s.data_dir().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
    assert_transcript!("upload_cancel", r.transcript());
}

#[tokio::test]
async fn sessions_belong_to_their_repository() {
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "mine", "").await;
    let stolen = loc.replace("/v2/mine/", "/v2/theirs/");
    s.get(&stolen)
        .await
        .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    s.get("/v2/mine/blobs/uploads/not-a-session")
        .await
        .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
}

#[tokio::test]
async fn single_post_and_digest_mismatch() {
    let s = TestServer::start().await;
    let good = Algorithm::Sha256.digest_of(b"content");
    let r = s
        .req(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={good}"),
        )
        .await
        .body(b"content".to_vec())
        .send()
        .await;
    r.expect(201, None);
    assert_transcript!("upload_single_post", r.transcript());
    let wrong = Algorithm::Sha256.digest_of(b"other");
    let r = s
        .req(
            Method::POST,
            &format!("/v2/app/blobs/uploads/?digest={wrong}"),
        )
        .await
        .body(b"content".to_vec())
        .send()
        .await;
    r.expect(400, Some("DIGEST_INVALID"));
    s.get(&format!("/v2/app/blobs/{wrong}"))
        .await
        .expect(404, None);
    assert_eq!(crate::support::stored_blob(&s.data_dir(), &wrong), None);
    // The same through a session: nothing is stored and the session is closed.
    let (_, loc) = open(&s, "app", "").await;
    let r = s
        .req(Method::PUT, &with_digest(&loc, &wrong))
        .await
        .body(b"content".to_vec())
        .send()
        .await;
    r.expect(400, Some("DIGEST_INVALID"));
    s.get(&format!("/v2/app/blobs/{wrong}"))
        .await
        .expect(404, None);
    assert_eq!(
        std::fs::read_dir(s.data_dir().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn malformed_and_unsupported_digests_are_400() {
    let s = TestServer::start().await;
    for q in [
        "?digest=sha256:abc",
        "?digest=unknown:12345",
        "?digest-algorithm=md5",
        "?digest-algorithm=NOT%20AN%20ALG",
        "?mount=sha256:zz",
    ] {
        let r = s
            .req(Method::POST, &format!("/v2/app/blobs/uploads/{q}"))
            .await
            .body(b"x".to_vec())
            .send()
            .await;
        r.expect(400, Some("DIGEST_INVALID"));
    }
    let (_, loc) = open(&s, "app", "").await;
    s.req(Method::PUT, &with_digest(&loc, &"sha256:short"))
        .await
        .send()
        .await
        .expect(400, Some("DIGEST_INVALID"));
    s.req(Method::PUT, &loc)
        .await
        .send()
        .await
        .expect(400, Some("DIGEST_INVALID"));
}

#[tokio::test]
async fn sha512_with_and_without_digest_algorithm() {
    let s = TestServer::start().await;
    let data = b"sha512 content".to_vec();
    let d = Algorithm::Sha512.digest_of(&data);
    let (_, loc) = open(&s, "app", "?digest-algorithm=sha512").await;
    let r = patch(&s, &loc, Some(&format!("0-{}", data.len() - 1)), &data).await;
    r.expect(202, None);
    s.req(Method::PUT, &with_digest(r.header("location").unwrap(), &d))
        .await
        .send()
        .await
        .expect(201, None);
    let got = s.get(&format!("/v2/app/blobs/{d}")).await;
    assert_eq!(got.body, data);
    assert_eq!(
        got.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    // A client that names sha512 only in the final digest is served too.
    let data2 = b"sha512 without announcing it".to_vec();
    let d2 = Algorithm::Sha512.digest_of(&data2);
    let (_, loc) = open(&s, "app", "").await;
    s.req(Method::PUT, &with_digest(&loc, &d2))
        .await
        .body(data2.clone())
        .send()
        .await
        .expect(201, None);
    assert_eq!(s.get(&format!("/v2/app/blobs/{d2}")).await.body, data2);
    let r = s
        .req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={d2}"))
        .await
        .body(data2.clone())
        .send()
        .await;
    r.expect(201, None);
}

#[tokio::test]
async fn mounts_from_a_repository_anonymously_and_of_missing_blobs() {
    let s = TestServer::start().await;
    let d = s.push_blob("source", b"mount me").await;
    let r = s
        .req(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={d}&from=source"),
        )
        .await
        .send()
        .await;
    r.expect(201, None);
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/target/blobs/{d}").as_str())
    );
    assert_eq!(
        s.get(&format!("/v2/target/blobs/{d}")).await.body,
        b"mount me"
    );
    assert_transcript!("upload_mount", r.transcript());

    let r = s
        .req(Method::POST, &format!("/v2/anon/blobs/uploads/?mount={d}"))
        .await
        .send()
        .await;
    r.expect(201, None);
    s.get(&format!("/v2/anon/blobs/{d}"))
        .await
        .expect(200, None);

    // Not in `from`: 202 with a working session.
    let other = Algorithm::Sha256.digest_of(b"never pushed");
    let r = s
        .req(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={other}&from=source"),
        )
        .await
        .send()
        .await;
    r.expect(202, None);
    let loc = r.header("location").unwrap().to_string();
    s.req(Method::PUT, &with_digest(&loc, &other))
        .await
        .body(b"never pushed".to_vec())
        .send()
        .await
        .expect(201, None);
    // In the registry but not in `from`: still a 202.
    s.push_blob("elsewhere", b"only elsewhere").await;
    let e = Algorithm::Sha256.digest_of(b"only elsewhere");
    s.req(
        Method::POST,
        &format!("/v2/target/blobs/uploads/?mount={e}&from=source"),
    )
    .await
    .send()
    .await
    .expect(202, None);
    // Regression: a `from` naming no repository was ignored, and the blob
    // mounted from wherever it was. Nothing can come from there: 202.
    for bad in ["A%2FB", "source%2F", "..", "%FF"] {
        s.req(
            Method::POST,
            &format!("/v2/badfrom/blobs/uploads/?mount={d}&from={bad}"),
        )
        .await
        .send()
        .await
        .expect(202, None);
    }
    s.head(&format!("/v2/badfrom/blobs/{d}"))
        .await
        .expect(404, None);
    // An empty `from` is no `from` (an anonymous mount).
    s.req(
        Method::POST,
        &format!("/v2/emptyfrom/blobs/uploads/?mount={d}&from="),
    )
    .await
    .send()
    .await
    .expect(201, None);
}

/// Bodies are written in batches of about 1 MiB, small frames copied together and
/// large ones kept as they came: sizes around and across a batch, in frames of
/// awkward sizes, must come back byte for byte under their digest.
#[tokio::test]
async fn bodies_of_any_size_survive_the_write_batches() {
    const MIB: usize = 1 << 20;
    let s = TestServer::start().await;
    for (i, size) in [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 12_345]
        .into_iter()
        .enumerate()
    {
        let all: Vec<u8> = (0..size).map(|j| (j * 31 + i) as u8).collect();
        // Frames of 7, 64 KiB + 3 and 300 KiB bytes, in turn.
        let mut frames = Vec::new();
        let mut rest = &all[..];
        for len in [7, (64 << 10) + 3, 300 << 10].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = len.min(rest.len());
            frames.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let d = Algorithm::Sha256.digest_of(&all);
        let (_, loc) = open(&s, "sizes", "").await;
        s.req(Method::PUT, &with_digest(&loc, &d))
            .await
            .stream_body(frames)
            .send()
            .await
            .expect(201, None);
        let got = s.get(&format!("/v2/sizes/blobs/{d}")).await;
        got.expect(200, None);
        assert_eq!(got.body.len(), size, "size {size}");
        assert!(got.body == all, "size {size}: bytes differ");
    }
}

/// A chunk whose client goes away mid-body is rolled back: the session still holds
/// exactly what it held before, and the upload can go on from there.
#[tokio::test]
async fn client_disconnecting_mid_chunk_leaves_the_session_resumable() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "gone", "").await;
    patch(&s, &loc, Some("0-4"), b"hello")
        .await
        .expect(202, None);

    // Announce 4 MiB, send 2.5 MiB (so whole batches were written), hang up.
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let announced = 4 << 20;
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: 5-{}\r\nContent-Length: {announced}\r\n\r\n",
        4 + announced
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![b'x'; 5 << 19]).await.unwrap();
    conn.flush().await.unwrap();
    drop(conn);

    // The server notices the hang-up and rolls back; wait for it (bounded).
    let mut range = None;
    for _ in 0..100 {
        let r = s.get(&loc).await;
        r.expect(204, None);
        range = r.header("range").map(str::to_string);
        if range.as_deref() == Some("0-4") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        range.as_deref(),
        Some("0-4"),
        "the broken chunk is rolled back"
    );

    let rest = vec![b'y'; 3 << 20];
    patch(&s, &loc, Some(&format!("5-{}", 4 + rest.len())), &rest)
        .await
        .expect(202, None);
    let all = [b"hello".as_slice(), &rest].concat();
    let d = Algorithm::Sha256.digest_of(&all);
    s.req(Method::PUT, &with_digest(&loc, &d))
        .await
        .send()
        .await
        .expect(201, None);
    assert!(s.get(&format!("/v2/gone/blobs/{d}")).await.body == all);
}

/// A session that holds nothing yet is closed by one whole body (with no
/// staging area): exactly one of two racing `PUT`s closes it, the other
/// finds it gone, and the blob is whole.
#[tokio::test]
async fn two_puts_racing_to_close_one_fresh_session() {
    let s = TestServer::start().await;
    for round in 0..10 {
        let data = format!("raced {round}").into_bytes();
        let d = Algorithm::Sha256.digest_of(&data);
        let (_, loc) = open(&s, "app", "").await;
        let url = with_digest(&loc, &d);
        let put = || async {
            s.req(Method::PUT, &url)
                .await
                .body(data.clone())
                .send()
                .await
                .status
                .as_u16()
        };
        let (a, b) = tokio::join!(put(), put());
        let mut got = [a, b];
        got.sort();
        assert_eq!(got, [201, 404], "round {round}");
        assert_eq!(s.get(&format!("/v2/app/blobs/{d}")).await.body, data);
    }
}

/// A closing `PUT` on a session that holds nothing must still start at byte
/// 0 and be as long as it says; one that fits is stored.
#[tokio::test]
async fn a_closing_put_on_a_fresh_session_is_checked_like_any_chunk() {
    let s = TestServer::start().await;
    let data = b"first and last chunk".to_vec();
    let d = Algorithm::Sha256.digest_of(&data);
    async fn put(s: &TestServer, url: &str, range: String, body: &[u8]) -> Resp {
        s.req(Method::PUT, url)
            .await
            .header("Content-Range", &range)
            .body(body.to_vec())
            .send()
            .await
    }
    let (_, loc) = open(&s, "app", "").await;
    let url = with_digest(&loc, &d);
    let late = put(&s, &url, format!("1-{}", data.len()), &data).await;
    late.expect(416, Some("BLOB_UPLOAD_INVALID"));
    let short = put(&s, &url, format!("0-{}", data.len()), &data).await;
    assert_eq!(short.status.as_u16(), 400, "{}", short.describe());
    // Neither touched the session: it still holds nothing, and takes the body.
    s.get(&loc).await.expect(204, None);
    put(&s, &url, format!("0-{}", data.len() - 1), &data)
        .await
        .expect(201, None);
    assert_eq!(s.get(&format!("/v2/app/blobs/{d}")).await.body, data);
}

/// Everything of an answer a client may read, with the session's id (which
/// differs between two sessions) taken out of it.
fn answer_of(r: &Resp, session: &str) -> String {
    let mut headers: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| k != "date" && k != "x-request-id")
        .map(|(k, v)| format!("{k}: {}", v.replace(session, "<session>")))
        .collect();
    headers.sort();
    let body = String::from_utf8_lossy(&r.body).replace(session, "<session>");
    format!("{}\n{}\n{body}", r.status, headers.join("\n"))
}

/// A small blob's `POST` and closing `PUT` are answered straight from the route
/// table; with another query parameter they take the generated routes. Both
/// must answer every case alike.
#[tokio::test]
async fn a_small_push_is_answered_alike_straight_and_through_the_generated_routes() {
    let s = TestServer::start().await;
    let abc = Algorithm::Sha256.digest_of(b"abc");
    let other = Algorithm::Sha256.digest_of(b"other");
    let forged = format!("/v2/app/blobs/uploads/{}", "0".repeat(64));
    // (closing PUT's digest, Content-Range, body; on a fresh session or the forged one)
    let cases: Vec<(String, Option<&str>, &[u8], bool)> = vec![
        (abc.to_string(), None, b"abc", true),
        (other.to_string(), None, b"abc", true),
        (abc.to_string(), Some("0-2"), b"abc", true),
        (abc.to_string(), Some("5-7"), b"abc", true),
        (abc.to_string(), Some("0-9"), b"abc", true),
        (abc.to_string(), Some("bytes=oops"), b"abc", true),
        (abc.to_string(), None, b"abc", false),
        ("sha256:nothex".to_string(), None, b"abc", true),
    ];
    for (digest, range, body, fresh) in cases {
        let mut answers = Vec::new();
        for extra in ["", "&via=routes"] {
            let (opened, loc) = open(&s, "app", &extra.replacen('&', "?", 1)).await;
            let session = loc.rsplit('/').next().unwrap().to_string();
            let loc = if fresh { loc } else { forged.clone() };
            let mut req = s
                .req(Method::PUT, &format!("{loc}?digest={digest}{extra}"))
                .await;
            if let Some(r) = range {
                req = req.header("Content-Range", r);
            }
            let r = req.body(body.to_vec()).send().await;
            answers.push((answer_of(&opened, &session), answer_of(&r, &session)));
            // The blob may be stored by the first way: remove it for the second.
            let _ = s
                .req(Method::DELETE, &format!("/v2/app/blobs/{abc}"))
                .await
                .send()
                .await;
        }
        assert_eq!(
            answers[0], answers[1],
            "PUT ?digest={digest} with Content-Range {range:?} (fresh session: {fresh})"
        );
    }
}

#[tokio::test]
async fn an_unreadable_content_range_is_400_and_an_upper_cased_session_unknown() {
    let s = TestServer::start().await;
    let (_, loc) = open(&s, "app", "").await;
    for bad in ["'mdIgs)7", "5", "a-b", "-3", "1-"] {
        patch(&s, &loc, Some(bad), b"abc")
            .await
            .expect(400, Some("BLOB_UPLOAD_INVALID"));
    }
    // The forms the server reads: plain, and RFC style with a prefix and a total.
    patch(&s, &loc, Some("0-2"), b"abc").await.expect(202, None);
    patch(&s, &loc, Some("bytes 3-5/6"), b"def")
        .await
        .expect(202, None);
    let d = Algorithm::Sha256.digest_of(b"abcdef");
    s.req(Method::PUT, &with_digest(&loc, &d))
        .await
        .header("Content-Range", "not a range")
        .send()
        .await
        .expect(400, Some("BLOB_UPLOAD_INVALID"));
    let (_, other) = open(&s, "app", "").await;
    let (path, id) = other.rsplit_once('/').unwrap();
    let id = id.split('?').next().unwrap();
    s.get(&format!("{path}/{}", id.to_ascii_uppercase()))
        .await
        .expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    s.req(Method::PUT, &with_digest(&loc, &d))
        .await
        .send()
        .await
        .expect(201, None);
}
