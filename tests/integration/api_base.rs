//! GET /v2/, unknown routes, invalid names, and operator Warning headers.

use crate::assert_transcript;
use crate::support::TestServer;
use marina::config::WarningRule;
use reqwest::Method;

#[tokio::test]
async fn version_check_answers_200_with_and_without_trailing_slash() {
    let s = TestServer::start().await;
    let r = s.get("/v2/").await;
    r.expect(200, None);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    s.get("/v2").await.expect(200, None);
    assert_transcript!("base_version_check", r.transcript());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_json_envelope() {
    let s = TestServer::start().await;
    let r = s.get("/v2/a/unknown-endpoint").await;
    r.expect(404, Some("UNSUPPORTED"));
    let r = s.req(Method::POST, "/v2/a/tags/list").await.send().await;
    r.expect(405, Some("UNSUPPORTED"));
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_transcript!("base_method_not_allowed", r.transcript());
}

#[tokio::test]
async fn invalid_repository_names_are_rejected_before_storage() {
    let s = TestServer::start().await;
    let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let long = "a".repeat(256);
    let names = [
        "UPPER",
        "-lead",
        "a/b_",
        "a%2F..%2Fb",
        "a%00b",
        long.as_str(),
        "_x",
    ];
    for name in names {
        for path in [
            format!("/v2/{name}/manifests/latest"),
            format!("/v2/{name}/blobs/{digest}"),
            format!("/v2/{name}/tags/list"),
        ] {
            let r = s.get(&path).await;
            assert!(
                r.status == 400 || r.status == 404,
                "{path} must be refused with 400 or 404: {}",
                r.describe()
            );
            if r.status == 400 {
                assert_eq!(r.error_code(), "NAME_INVALID", "{}", r.describe());
            } else {
                r.error_code();
            }
        }
        let r = s
            .req(Method::POST, &format!("/v2/{name}/blobs/uploads/"))
            .await
            .send()
            .await;
        assert!(r.status.is_client_error(), "{}", r.describe());
    }
    // Nothing was created on disk for any of them.
    let uploads = std::fs::read_dir(s.data_dir().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0);
    let r = s.get("/v2/UPPER/tags/list").await;
    r.expect(400, Some("NAME_INVALID"));
    assert_transcript!("base_invalid_name", r.transcript());
}

/// Sends a request line exactly as written (HTTP clients normalise `..` away).
async fn raw_get(s: &TestServer, path: &str) -> String {
    let addr = s.url.trim_start_matches("http://");
    raw(
        s,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Sends `req` as it is and returns the whole answer.
async fn raw(s: &TestServer, req: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn path_traversal_never_escapes_the_api() {
    let s = TestServer::start().await;
    s.push_blob("a", b"inside").await;
    for path in [
        "/v2/../../etc/passwd",
        "/v2/a/../b/tags/list",
        "/v2/a/./b/tags/list",
        "/v2/../a/tags/list",
        "/v2/%2e%2e/%2e%2e/etc/passwd/manifests/x",
        "/v2/a/blobs/..%2F..%2Fmeta.db",
        "/v2/a/blobs/../../meta.db",
        "/v2/a/blobs/uploads/..%2F..%2Fmeta.db",
    ] {
        let resp = raw_get(&s, path).await;
        let status: u16 = resp[9..12].parse().unwrap();
        assert!((400..500).contains(&status), "{path}: {resp}");
        assert!(resp.contains("\"errors\""), "{path}: {resp}");
        assert!(
            !resp.contains("root:") && !resp.contains("SQLite"),
            "{path}: {resp}"
        );
    }
}

#[tokio::test]
async fn warnings_are_attached_to_matching_repositories_in_the_spec_format() {
    let s = TestServer::start_with(|c| {
        c.registry.warnings = vec![
            WarningRule {
                repositories: "legacy/**".into(),
                message: "legacy/* moves to archive/* on 2027-01-01".into(),
            },
            WarningRule {
                repositories: "legacy/app".into(),
                message: "app is deprecated".into(),
            },
        ]
    })
    .await;
    let r = s.get("/v2/legacy/app/tags/list").await;
    let warnings = r.header_all("warning");
    assert_eq!(
        warnings,
        [
            "299 - \"legacy/* moves to archive/* on 2027-01-01\"",
            "299 - \"app is deprecated\""
        ]
    );
    assert!(warnings.iter().map(|w| w.len()).sum::<usize>() <= 4096);
    let r = s.get("/v2/current/app/tags/list").await;
    assert!(r.header("warning").is_none(), "{}", r.describe());
}

/// Regression: warning rules compiled `legacy/*` so that it also matched
/// `legacy/a/b`, unlike the access policy and the README (`*` is one segment).
#[tokio::test]
async fn a_warning_rules_star_matches_one_path_segment_only() {
    let s = TestServer::start_with(|c| {
        c.registry.warnings.push(marina::config::WarningRule {
            repositories: "legacy/*".into(),
            message: "moved to new/".into(),
        });
    })
    .await;
    let one = s.get("/v2/legacy/app/tags/list").await;
    assert_eq!(
        one.header("warning"),
        Some("299 - \"moved to new/\""),
        "{}",
        one.describe()
    );
    let deeper = s.get("/v2/legacy/team/app/tags/list").await;
    assert_eq!(deeper.header("warning"), None, "{}", deeper.describe());
}

/// Regression: a HEAD of a JSON endpoint (the base, lists, referrers, health,
/// metrics) came without `Content-Length`, where the GET sends one; RFC 9110
/// §9.3.2 has HEAD send the GET's header fields.
#[tokio::test]
async fn head_answers_carry_the_length_the_get_would_send() {
    let s = TestServer::start().await;
    let (_, d) = s.push_image("heads/app", "v1", "x").await;
    for path in [
        "/v2/".to_string(),
        "/v2/_catalog".to_string(),
        "/v2/heads/app/tags/list".to_string(),
        "/v2/heads/app/tags/list?n=0".to_string(),
        format!("/v2/heads/app/referrers/{d}"),
        "/v2/nothing/here/tags/list".to_string(),
        "/v2/_marina/list/repositories".to_string(),
        "/healthz".to_string(),
        "/readyz".to_string(),
    ] {
        let get = s.get(&path).await;
        let head = s.head(&path).await;
        assert_eq!(head.status, get.status, "{path}: {}", head.describe());
        assert!(head.body.is_empty(), "{path}: {}", head.describe());
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str()),
            "{path}: {}",
            head.describe()
        );
    }
}

/// Regression: a request with two `Host` lines was served (RFC 9112 §3.2 says
/// 400: two servers in a chain could each take a different one).
#[tokio::test]
async fn a_request_with_two_host_lines_is_refused() {
    let s = TestServer::start().await;
    let addr = s.url.trim_start_matches("http://");
    let answer = raw(
        &s,
        &format!(
            "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nHost: elsewhere\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains(r#"{"errors":[{"code":"UNSUPPORTED""#),
        "{answer}"
    );
    // One Host line is served as before.
    assert!(raw_get(&s, "/v2/").await.starts_with("HTTP/1.1 200"));
}
