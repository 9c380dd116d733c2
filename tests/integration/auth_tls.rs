//! HTTPS: a test CA made in the test (rcgen), token auth over TLS, and a
//! certificate renewal picked up without a restart.

use std::time::Duration;

use marina::config::AuthScheme;
use reqwest::Method;

use crate::auth_api::{push_image_as, send};
use crate::auth_support::{bearer, standard_auth, start_secure, TestCa};

#[tokio::test]
async fn https_with_a_test_ca_and_token_auth() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Marina test CA");
    let s = start_secure(
        standard_auth(dir.path(), AuthScheme::Token),
        Some(&ca),
        |_| {},
    )
    .await;
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let r = send(&s, Method::GET, "/v2/", None, None).await;
    r.expect(401, Some("UNAUTHORIZED"));
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .starts_with(&format!("Bearer realm=\"{}/token\"", s.url)),
        "{}",
        r.describe()
    );
    let writer = bearer(
        &s,
        Some(("writer", "writer-pw")),
        &["repository:team/tls:pull,push"],
    )
    .await;
    push_image_as(&s, &writer, "team/tls", "v1", "over tls").await;
    send(
        &s,
        Method::GET,
        "/v2/team/tls/manifests/v1",
        Some(&writer),
        None,
    )
    .await
    .expect(200, None);

    // A client that does not trust the CA cannot talk to the server at all.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let err = stranger
        .get(format!("{}/v2/", s.url))
        .send()
        .await
        .expect_err("untrusted certificate accepted");
    assert!(
        err.is_connect() || err.to_string().contains("certificate"),
        "{err:?}"
    );
    // Nor does plain HTTP get an answer on the HTTPS port.
    let plain = reqwest::Client::new()
        .get(format!("{}/v2/", s.url.replace("https", "http")))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status().as_u16() != 200);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = TestCa::new("Old CA");
    let new = TestCa::new("New CA");
    let s = start_secure(
        standard_auth(dir.path(), AuthScheme::Basic),
        Some(&old),
        |_| {},
    )
    .await;
    let url = format!("{}/healthz", s.url);
    assert_eq!(old.client().get(&url).send().await.unwrap().status(), 200);
    assert!(
        new.client().get(&url).send().await.is_err(),
        "the new CA is not in use yet"
    );

    new.issue_into(&old.cert, &old.key);
    let mut renewed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if new.client().get(&url).send().await.is_ok() {
            renewed = true;
            break;
        }
    }
    assert!(renewed, "the renewed certificate was never served");
    assert!(
        old.client().get(&url).send().await.is_err(),
        "new connections still get the old certificate"
    );
}
