//! Access control over plain HTTP: Basic and token challenges, 401/403/429 with the
//! spec's codes, the token endpoint, `_catalog` filtering, and mounts that respect
//! what the caller may read.

use marina::config::AuthScheme;
use marina::oci::Algorithm;
use reqwest::Method;
use serde_json::{json, Value};

use crate::auth_support::{
    basic, bearer, rule, standard_auth, start_secure, token, write_htpasswd,
};
use crate::support::{image_manifest, Resp, TestServer, OCI_MANIFEST};

/// Sends `method path` with an optional `Authorization` and body.
pub async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
) -> Resp {
    let mut r = s.req(method, path).await;
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    if let Some(b) = body {
        r = r.header("Content-Type", OCI_MANIFEST).body(b);
    }
    r.send().await
}

/// Pushes a blob and a one-layer image as `auth`; returns the layer's digest.
pub async fn push_image_as(
    s: &TestServer,
    auth: &str,
    repo: &str,
    tag: &str,
    seed: &str,
) -> String {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let layer = format!("layer of {seed}");
    let mut digests = vec![];
    for bytes in [config.as_bytes(), layer.as_bytes()] {
        let d = Algorithm::Sha256.digest_of(bytes);
        send(
            s,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            Some(auth),
            Some(bytes.to_vec()),
        )
        .await
        .expect(201, None);
        digests.push(d);
    }
    let m = image_manifest(
        &digests[0],
        config.len(),
        &[(&digests[1], layer.len())],
        None,
        None,
    );
    send(
        s,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        Some(auth),
        Some(m),
    )
    .await
    .expect(201, None);
    digests[1].to_string()
}

fn claims(bearer: &str) -> Value {
    use base64::Engine;
    let payload = bearer
        .trim_start_matches("Bearer ")
        .split('.')
        .nth(1)
        .unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn basic_auth_challenges_admits_and_denies_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_secure(standard_auth(dir.path(), AuthScheme::Basic), None, |_| {}).await;
    let admin = basic("admin", "admin-pw");
    let writer = basic("writer", "writer-pw");
    let reader = basic("reader", "reader-pw");

    let r = send(&s, Method::GET, "/v2/", None, None).await;
    r.expect(401, Some("UNAUTHORIZED"));
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="marina""#),
        "{}",
        r.describe()
    );
    send(&s, Method::GET, "/v2/", Some(&reader), None)
        .await
        .expect(200, None);
    send(&s, Method::GET, "/healthz", None, None)
        .await
        .expect(200, None);

    // Wrong password and unknown user look the same.
    let wrong = send(
        &s,
        Method::GET,
        "/v2/",
        Some(&basic("reader", "nope")),
        None,
    )
    .await;
    let unknown = send(
        &s,
        Method::GET,
        "/v2/",
        Some(&basic("nobody", "nope")),
        None,
    )
    .await;
    wrong.expect(401, Some("UNAUTHORIZED"));
    assert_eq!(
        (
            wrong.status,
            wrong.body.clone(),
            wrong.header("www-authenticate")
        ),
        (
            unknown.status,
            unknown.body.clone(),
            unknown.header("www-authenticate")
        )
    );

    push_image_as(&s, &writer, "team/app", "v1", "w").await;
    push_image_as(&s, &admin, "public/base", "v1", "p").await;
    let r = send(
        &s,
        Method::POST,
        "/v2/team/app/blobs/uploads/",
        Some(&reader),
        None,
    )
    .await;
    r.expect(403, Some("DENIED"));
    assert_eq!(
        r.header("www-authenticate"),
        None,
        "basic mode: nothing to ask for: {}",
        r.describe()
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("push on repository team/app"),
        "{}",
        r.describe()
    );
    send(
        &s,
        Method::POST,
        "/v2/other/app/blobs/uploads/",
        Some(&writer),
        None,
    )
    .await
    .expect(403, Some("DENIED"));
    send(
        &s,
        Method::GET,
        "/v2/team/app/manifests/v1",
        Some(&reader),
        None,
    )
    .await
    .expect(200, None);
    send(&s, Method::GET, "/v2/public/base/manifests/v1", None, None)
        .await
        .expect(200, None);
    send(
        &s,
        Method::GET,
        "/v2/public/base/manifests/v1",
        Some(&writer),
        None,
    )
    .await
    .expect(200, None);
    let r = send(&s, Method::GET, "/v2/team/app/manifests/v1", None, None).await;
    r.expect(401, Some("UNAUTHORIZED"));
    send(
        &s,
        Method::DELETE,
        "/v2/team/app/manifests/v1",
        Some(&writer),
        None,
    )
    .await
    .expect(403, Some("DENIED"));
    send(
        &s,
        Method::DELETE,
        "/v2/team/app/manifests/v1",
        Some(&admin),
        None,
    )
    .await
    .expect(202, None);
}

#[tokio::test]
async fn token_auth_follows_the_registry_token_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_secure(standard_auth(dir.path(), AuthScheme::Token), None, |_| {}).await;
    let realm = format!("{}/token", s.url);

    let r = send(&s, Method::GET, "/v2/", None, None).await;
    r.expect(401, Some("UNAUTHORIZED"));
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(r#"Bearer realm="{realm}",service="marina""#)
    );
    let r = send(&s, Method::POST, "/v2/team/app/blobs/uploads/", None, None).await;
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!(r#"Bearer realm="{realm}",service="marina",scope="repository:team/app:pull,push""#),
        "{}",
        r.describe()
    );

    // The token endpoint: requested ∩ policy, in the protocol's JSON.
    let t = token(
        &s,
        Some(("writer", "writer-pw")),
        &[
            "repository:team/app:pull,push,delete",
            "repository:other:pull",
        ],
    )
    .await;
    t.expect(200, None);
    let body = t.json();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], json!(300));
    let issued = body["issued_at"].as_str().unwrap();
    assert!(
        issued.len() == 20 && issued.ends_with('Z') && issued.as_bytes()[10] == b'T',
        "{issued}"
    );
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(c["sub"], "writer");
    assert_eq!(c["aud"], "marina");
    assert_eq!(
        c["access"],
        json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
    token(&s, Some(("writer", "bad")), &[])
        .await
        .expect(401, Some("UNAUTHORIZED"));
    token(&s, Some(("nobody", "bad")), &[])
        .await
        .expect(401, Some("UNAUTHORIZED"));
    let r = send(
        &s,
        Method::GET,
        "/token?service=elsewhere",
        Some(&basic("writer", "writer-pw")),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.describe());

    // Pushing and pulling with tokens.
    let writer = bearer(
        &s,
        Some(("writer", "writer-pw")),
        &["repository:team/app:pull,push"],
    )
    .await;
    push_image_as(&s, &writer, "team/app", "v1", "t").await;
    send(&s, Method::GET, "/v2/", Some(&writer), None)
        .await
        .expect(200, None);
    // Marina's own tokens identify their subject; the live policy decides (the
    // writer may read all of team/**, whatever the token was asked for).
    send(
        &s,
        Method::GET,
        "/v2/team/other/tags/list",
        Some(&writer),
        None,
    )
    .await
    .expect(404, Some("NAME_UNKNOWN"));
    send(&s, Method::GET, "/v2/secret/tags/list", Some(&writer), None)
        .await
        .expect(403, Some("DENIED"));
    let reader = bearer(
        &s,
        Some(("reader", "reader-pw")),
        &["repository:team/app:pull,push"],
    )
    .await;
    assert_eq!(claims(&reader)["access"][0]["actions"], json!(["pull"]));
    send(
        &s,
        Method::GET,
        "/v2/team/app/manifests/v1",
        Some(&reader),
        None,
    )
    .await
    .expect(200, None);
    let r = send(
        &s,
        Method::POST,
        "/v2/team/app/blobs/uploads/",
        Some(&reader),
        None,
    )
    .await;
    r.expect(403, Some("DENIED"));
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.ends_with(r#"scope="repository:team/app:pull,push",error="insufficient_scope""#),
        "{}",
        r.describe()
    );

    // Anonymous tokens: only what anonymous callers may do.
    let anon = bearer(
        &s,
        None,
        &["repository:public/x:pull,push", "repository:team/app:pull"],
    )
    .await;
    assert_eq!(
        claims(&anon)["access"],
        json!([{"type": "repository", "name": "public/x", "actions": ["pull"]}])
    );
    let r = send(
        &s,
        Method::GET,
        "/v2/team/app/manifests/v1",
        Some(&anon),
        None,
    )
    .await;
    r.expect(401, Some("UNAUTHORIZED"));

    // Forged or damaged tokens are refused.
    let mut damaged = writer.clone();
    damaged.push('x');
    send(
        &s,
        Method::GET,
        "/v2/team/app/manifests/v1",
        Some(&damaged),
        None,
    )
    .await
    .expect(401, Some("UNAUTHORIZED"));
    // Basic credentials work directly too.
    send(
        &s,
        Method::GET,
        "/v2/team/app/manifests/v1",
        Some(&basic("reader", "reader-pw")),
        None,
    )
    .await
    .expect(200, None);
}

#[tokio::test]
async fn oauth2_password_grant_issues_tokens_too() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_secure(standard_auth(dir.path(), AuthScheme::Token), None, |_| {}).await;
    let r = s
        .req(Method::POST, "/token")
        .await
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(b"grant_type=password&username=writer&password=writer-pw&service=marina&scope=repository%3Ateam%2Fx%3Apush&client_id=test".to_vec())
        .send()
        .await;
    r.expect(200, None);
    let c = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(c["access"][0]["actions"], json!(["push"]));
    let r = s
        .req(Method::POST, "/token")
        .await
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(b"grant_type=refresh_token&refresh_token=x".to_vec())
        .send()
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    // A form without its Content-Type is an invalid request, in OAuth2's words,
    // not an undocumented 415.
    let r = s
        .req(Method::POST, "/token")
        .await
        .body(b"grant_type=password&username=writer&password=writer-pw".to_vec())
        .send()
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.json()["error"], "invalid_request");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    auth.throttle.max_failures = 3;
    let s = start_secure(auth, None, |_| {}).await;
    let bad = basic("reader", "guess");
    send(&s, Method::GET, "/v2/", Some(&bad), None)
        .await
        .expect(401, Some("UNAUTHORIZED"));
    send(&s, Method::GET, "/v2/", Some(&bad), None)
        .await
        .expect(401, Some("UNAUTHORIZED"));
    let r = send(&s, Method::GET, "/v2/", Some(&bad), None).await;
    r.expect(429, Some("TOOMANYREQUESTS"));
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{}", r.describe());
    // Locked out: even the right password is refused, on every endpoint.
    send(
        &s,
        Method::GET,
        "/v2/",
        Some(&basic("reader", "reader-pw")),
        None,
    )
    .await
    .expect(429, Some("TOOMANYREQUESTS"));
    send(
        &s,
        Method::GET,
        "/v2/public/x/tags/list",
        Some(&basic("reader", "reader-pw")),
        None,
    )
    .await
    .expect(429, Some("TOOMANYREQUESTS"));
    // Anonymous requests carry no password to guess with.
    send(&s, Method::GET, "/v2/", None, None)
        .await
        .expect(401, Some("UNAUTHORIZED"));
}

/// `GET path` with `auth`, as if forwarded for `client` by a proxy.
async fn forwarded_for(s: &TestServer, path: &str, client: &str, auth: &str) -> Resp {
    s.req(Method::GET, path)
        .await
        .header("Authorization", auth)
        .header("X-Forwarded-For", client)
        .send()
        .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_throttle_counts_each_forwarded_client() {
    // Basic: every request logs in; tokens: the token endpoint does.
    for (scheme, path) in [(AuthScheme::Basic, "/v2/"), (AuthScheme::Token, "/token")] {
        let dir = tempfile::tempdir().unwrap();
        let mut auth = standard_auth(dir.path(), scheme);
        auth.throttle.max_failures = 2;
        let s = start_secure(auth, None, |c| {
            c.trusted_proxies = vec!["127.0.0.1".into()];
        })
        .await;
        let (bad, good) = (basic("reader", "guess"), basic("reader", "reader-pw"));
        forwarded_for(&s, path, "192.0.2.7", &bad)
            .await
            .expect(401, None);
        forwarded_for(&s, path, "192.0.2.7", &bad)
            .await
            .expect(429, None);
        // The guesser is locked out; another client behind the same proxy is not.
        forwarded_for(&s, path, "192.0.2.7", &good)
            .await
            .expect(429, None);
        forwarded_for(&s, path, "198.51.100.9", &good)
            .await
            .expect(200, None);
    }
}

#[tokio::test]
async fn an_untrusted_peer_cannot_dodge_the_throttle_with_x_forwarded_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    auth.throttle.max_failures = 2;
    let s = start_secure(auth, None, |_| {}).await;
    let bad = basic("reader", "guess");
    forwarded_for(&s, "/v2/", "192.0.2.1", &bad)
        .await
        .expect(401, Some("UNAUTHORIZED"));
    // A new claimed address each time: the peer's own address is what counts.
    forwarded_for(&s, "/v2/", "192.0.2.2", &bad)
        .await
        .expect(429, Some("TOOMANYREQUESTS"));
}

#[tokio::test]
async fn catalog_lists_only_repositories_the_caller_may_pull_and_pages_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_secure(standard_auth(dir.path(), AuthScheme::Basic), None, |_| {}).await;
    let admin = basic("admin", "admin-pw");
    for repo in ["public/a", "secret/b", "secret/c", "team/d", "zz/e"] {
        push_image_as(&s, &admin, repo, "v1", repo).await;
    }
    let list = |auth: Option<String>, q: &'static str| {
        let s = &s;
        async move {
            send(
                s,
                Method::GET,
                &format!("/v2/_catalog{q}"),
                auth.as_deref(),
                None,
            )
            .await
        }
    };
    let names = |r: &Resp| r.json()["repositories"].clone();
    assert_eq!(names(&list(None, "").await), json!(["public/a"]));
    assert_eq!(
        names(&list(Some(basic("writer", "writer-pw")), "").await),
        json!(["public/a", "team/d"])
    );
    assert_eq!(
        names(&list(Some(admin.clone()), "").await),
        json!(["public/a", "secret/b", "secret/c", "team/d", "zz/e"])
    );
    let first = list(Some(basic("writer", "writer-pw")), "?n=1").await;
    assert_eq!(names(&first), json!(["public/a"]));
    assert_eq!(
        first.header("link"),
        Some(r#"</v2/_catalog?n=1&last=public%2Fa>; rel="next""#),
        "{}",
        first.describe()
    );
    let second = list(Some(basic("writer", "writer-pw")), "?n=1&last=public%2Fa").await;
    assert_eq!(names(&second), json!(["team/d"]));
    assert_eq!(
        second.header("link"),
        None,
        "no hidden name may follow: {}",
        second.describe()
    );
    list(None, "?n=x").await.expect(400, None);

    // Without anonymous grants, an anonymous catalog is a challenge.
    let dir2 = tempfile::tempdir().unwrap();
    let mut closed = standard_auth(dir2.path(), AuthScheme::Token);
    closed.rules.retain(|r| !r.anonymous);
    let s2 = start_secure(closed, None, |_| {}).await;
    let r = send(&s2, Method::GET, "/v2/_catalog", None, None).await;
    r.expect(401, Some("UNAUTHORIZED"));
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains(r#"scope="registry:catalog:*""#),
        "{}",
        r.describe()
    );
    token(&s2, None, &["repository:public/a:pull"])
        .await
        .expect(401, Some("UNAUTHORIZED"));
}

#[tokio::test]
async fn listing_extension_shows_only_repositories_the_caller_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_secure(standard_auth(dir.path(), AuthScheme::Basic), None, |_| {}).await;
    let admin = basic("admin", "admin-pw");
    let writer = basic("writer", "writer-pw");
    for repo in [
        "public/a", "secret/b", "team/c", "secret/d", "team/e/f", "zz/g",
    ] {
        push_image_as(&s, &admin, repo, "v1", repo).await;
    }
    let names = |r: &Resp| -> Vec<String> {
        r.json()["repositories"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.describe()))
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    // Follows every Link from `first`, collecting names and page sizes.
    let walk = |auth: Option<String>, first: &'static str| {
        let s = &s;
        async move {
            let mut all = Vec::new();
            let mut sizes = Vec::new();
            let mut next = Some(first.to_string());
            for _ in 0..20 {
                let Some(path) = next.take() else { break };
                let r = send(s, Method::GET, &path, auth.as_deref(), None).await;
                assert_eq!(r.status.as_u16(), 200, "{}", r.describe());
                let page = names(&r);
                sizes.push(page.len());
                all.extend(page);
                next = r.header("link").map(|l| {
                    l.trim_start_matches('<')
                        .split_once('>')
                        .unwrap()
                        .0
                        .to_string()
                });
            }
            assert!(next.is_none(), "the walk ended");
            (all, sizes)
        }
    };
    let everything = "/v2/_marina/list/repositories";
    assert_eq!(walk(None, everything).await.0, ["public/a"]);
    assert_eq!(
        walk(Some(writer.clone()), everything).await.0,
        ["public/a", "team/c", "team/e/f"]
    );
    assert_eq!(walk(Some(admin.clone()), everything).await.0.len(), 6);
    // Pages of one stay full and never name a hidden repository in their cursor.
    let (paged, sizes) = walk(
        Some(writer.clone()),
        "/v2/_marina/list/repositories?n=1&sort=name&order=desc",
    )
    .await;
    assert_eq!(paged, ["team/e/f", "team/c", "public/a"]);
    assert_eq!(sizes, [1, 1, 1]);
    assert_eq!(
        walk(
            Some(writer.clone()),
            "/v2/_marina/list/repositories?namespace=secret"
        )
        .await
        .0,
        Vec::<String>::new()
    );
    // Repository-level listings follow the repository's pull grant.
    send(
        &s,
        Method::GET,
        "/v2/secret/b/_marina/list/tags",
        Some(&writer),
        None,
    )
    .await
    .expect(403, Some("DENIED"));
    send(
        &s,
        Method::GET,
        "/v2/team/c/_marina/list/tags",
        Some(&writer),
        None,
    )
    .await
    .expect(200, None);

    // Without anonymous grants, an anonymous listing is a challenge.
    let dir2 = tempfile::tempdir().unwrap();
    let mut closed = standard_auth(dir2.path(), AuthScheme::Basic);
    closed.rules.retain(|r| !r.anonymous);
    let s2 = start_secure(closed, None, |_| {}).await;
    send(&s2, Method::GET, everything, None, None)
        .await
        .expect(401, Some("UNAUTHORIZED"));
}

#[tokio::test]
async fn mounts_only_take_blobs_the_caller_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_secure(standard_auth(dir.path(), AuthScheme::Basic), None, |_| {}).await;
    let admin = basic("admin", "admin-pw");
    let writer = basic("writer", "writer-pw");
    let hidden = push_image_as(&s, &admin, "secret/b", "v1", "hidden").await;
    let visible = push_image_as(&s, &admin, "public/a", "v1", "visible").await;

    let r = send(
        &s,
        Method::POST,
        &format!("/v2/team/x/blobs/uploads/?mount={hidden}&from=secret/b"),
        Some(&writer),
        None,
    )
    .await;
    r.expect(202, None);
    send(
        &s,
        Method::HEAD,
        &format!("/v2/team/x/blobs/{hidden}"),
        Some(&writer),
        None,
    )
    .await
    .expect(404, None);
    send(
        &s,
        Method::POST,
        &format!("/v2/team/x/blobs/uploads/?mount={visible}&from=public/a"),
        Some(&writer),
        None,
    )
    .await
    .expect(201, None);

    // Without `from`: found only where the caller may pull.
    send(
        &s,
        Method::POST,
        &format!("/v2/team/y/blobs/uploads/?mount={hidden}"),
        Some(&writer),
        None,
    )
    .await
    .expect(202, None);
    send(
        &s,
        Method::HEAD,
        &format!("/v2/team/y/blobs/{hidden}"),
        Some(&writer),
        None,
    )
    .await
    .expect(404, None);
    send(
        &s,
        Method::POST,
        &format!("/v2/team/y/blobs/uploads/?mount={visible}"),
        Some(&writer),
        None,
    )
    .await
    .expect(201, None);
    send(
        &s,
        Method::POST,
        &format!("/v2/team/z/blobs/uploads/?mount={hidden}"),
        Some(&admin),
        None,
    )
    .await
    .expect(201, None);
}

#[tokio::test]
async fn a_server_with_unusable_auth_files_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    auth.htpasswd = Some(dir.path().join("missing"));
    let mut config = marina::config::Config::ephemeral(dir.path());
    config.auth = Some(auth.clone());
    let err = marina::server::start(config.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("htpasswd") && err.contains("missing"), "{err}");
    std::fs::write(dir.path().join("weak"), "alice:$apr1$x$y\n").unwrap();
    auth.htpasswd = Some(dir.path().join("weak"));
    config.auth = Some(auth);
    let err = marina::server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("not a bcrypt entry"), "{err}");
}

/// Whether `GET path` with `auth` answers `want` within 10 s (the htpasswd
/// file is re-read at most every 2 s).
async fn answers_in_time(s: &TestServer, path: &str, auth: &str, want: u16) -> bool {
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if send(s, Method::GET, path, Some(auth), None).await.status == want {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_changed_htpasswd_file_takes_effect_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    auth.rules
        .push(rule(&["newcomer"], &[], false, &["**"], &["pull"]));
    let s = start_secure(auth, None, |_| {}).await;
    let newcomer = basic("newcomer", "fresh");
    send(&s, Method::GET, "/v2/", Some(&newcomer), None)
        .await
        .expect(401, None);
    write_htpasswd(dir.path(), &[("newcomer", "fresh")]);
    assert!(
        answers_in_time(&s, "/v2/", &newcomer, 200).await,
        "new user never admitted"
    );
    send(
        &s,
        Method::GET,
        "/v2/",
        Some(&basic("reader", "reader-pw")),
        None,
    )
    .await
    .expect(401, None);
}

/// Regression: a token of Marina's own kept working after its user was removed
/// from the htpasswd file, or their password changed, until it expired.
#[tokio::test]
async fn tokens_end_when_their_user_is_removed_or_their_password_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_secure(standard_auth(dir.path(), AuthScheme::Token), None, |_| {}).await;
    let scope = ["repository:team/app:pull"];
    let writer = bearer(&s, Some(("writer", "writer-pw")), &scope).await;
    let reader = bearer(&s, Some(("reader", "reader-pw")), &scope).await;
    let admin = bearer(&s, Some(("admin", "admin-pw")), &scope).await;
    let status = |t: String| {
        let s = &s;
        async move {
            send(s, Method::GET, "/v2/team/app/tags/list", Some(&t), None)
                .await
                .status
        }
    };
    for t in [&writer, &reader, &admin] {
        assert_eq!(status(t.clone()).await, 404);
    }
    // writer removed, reader's password changed (admin's entry is hashed
    // again, with a new salt).
    write_htpasswd(
        dir.path(),
        &[("admin", "admin-pw"), ("reader", "new-reader-pw")],
    );
    assert!(
        answers_in_time(&s, "/v2/team/app/tags/list", &writer, 401).await,
        "the removed user's token was never refused"
    );
    send(
        &s,
        Method::GET,
        "/v2/team/app/tags/list",
        Some(&reader),
        None,
    )
    .await
    .expect(401, Some("UNAUTHORIZED"));
    let fresh = bearer(&s, Some(("reader", "new-reader-pw")), &scope).await;
    assert_eq!(status(fresh).await, 404);
    // The file was rewritten, and admin's hash with it: a new salt is a new
    // entry, so admin logs in again too.
    assert_eq!(status(admin).await, 401);
}

/// Embedded under a path prefix with access control on, what the guard and the
/// catalog write into headers carries the prefix: the challenge's realm names the
/// token endpoint under the prefix, and the catalog's `Link` the next page there.
#[tokio::test]
async fn under_a_mount_prefix_challenges_and_catalog_links_carry_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = marina::config::Config::ephemeral(dir.path());
    config.auth = Some(standard_auth(dir.path(), AuthScheme::Token));
    let test =
        marina::testing::TestRegistry::start_with(marina::Registry::builder().config(config), None)
            .await;
    for repo in ["public/a", "public/b", "team/hidden"] {
        test.push_image(repo, "v1").await;
    }
    let app = poem::Route::new().nest("/registry", test.registry().endpoint());
    use poem::listener::{Acceptor, Listener};
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let server = tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{addr}/registry{path}")).send();

    let r = get("/v2/team/hidden/tags/list").await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains(&format!("realm=\"http://{addr}/registry/token\"")),
        "{challenge}"
    );

    // Anonymous callers may pull public/**: the catalog shows those, one per page.
    let r = get("/v2/_catalog?n=1").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        link,
        "</registry/v2/_catalog?n=1&last=public%2Fa>; rel=\"next\""
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"repositories": ["public/a"]}));
    let r = get("/v2/_catalog?n=1&last=public%2Fa").await.unwrap();
    assert!(
        r.headers().get("link").is_none(),
        "team/hidden is not announced"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"repositories": ["public/b"]}));
    server.abort();
}

/// `marina check` as a user who may push only under `team/` (issue 18 item 11):
/// refusals are "not permitted", not MUST failures, with a hint; run where the
/// user may push, nothing is refused and cleanup deletes everything.
#[tokio::test]
async fn check_reports_refused_actions_as_not_permitted_not_as_failures() {
    use marina::client::Credentials;
    use marina::harness::{report::render_terminal, Options};

    let dir = tempfile::tempdir().unwrap();
    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    auth.rules.push(crate::auth_support::rule(
        &["writer"],
        &[],
        false,
        &["team/check/**"],
        &["delete"],
    ));
    let s = start_secure(auth, None, |_| {}).await;
    let writer = |prefix: &str| Options {
        credentials: Some(Credentials {
            username: "writer".into(),
            password: "writer-pw".into(),
        }),
        repo_prefix: prefix.into(),
        sections: vec![
            marina::harness::Section::Push,
            marina::harness::Section::Delete,
        ],
        cases: 2,
        progress: false,
        ..Options::default()
    };
    let outside = marina::harness::check(&s.url, writer("elsewhere"))
        .await
        .unwrap();
    let text = render_terminal(&outside, false);
    let t = outside.totals();
    assert!(t.not_permitted > 0, "{text}");
    assert_eq!(t.failed, 0, "refusals were counted as failures:\n{text}");
    assert_eq!(outside.exit_code(), 0, "{text}");
    assert!(text.contains("Not permitted (401 or 403"), "{text}");
    assert!(text.contains("--repo-prefix"), "{text}");
    assert!(text.contains("403 DENIED"), "{text}");

    let inside = marina::harness::check(&s.url, writer("team/check"))
        .await
        .unwrap();
    let text = render_terminal(&inside, false);
    assert_eq!(inside.totals().not_permitted, 0, "{text}");
    assert_eq!(inside.totals().failed, 0, "{text}");
    assert!(inside.cleanup.contains(", 0 not deleted"), "{text}");
}

/// The cleanup line names each delete that failed and why.
#[tokio::test]
async fn check_cleanup_says_what_it_could_not_delete_and_why() {
    use marina::client::Credentials;
    use marina::harness::Options;

    let dir = tempfile::tempdir().unwrap();
    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    // `pusher` may push under team/ but not delete.
    auth.htpasswd = Some(crate::auth_support::write_htpasswd(
        dir.path(),
        &[("pusher", "pusher-pw")],
    ));
    auth.rules = vec![crate::auth_support::rule(
        &["pusher"],
        &[],
        false,
        &["team/**"],
        &["pull", "push"],
    )];
    let s = start_secure(auth, None, |_| {}).await;
    let report = marina::harness::check(
        &s.url,
        Options {
            credentials: Some(Credentials {
                username: "pusher".into(),
                password: "pusher-pw".into(),
            }),
            repo_prefix: "team/check".into(),
            only: vec!["push.post-put".into()],
            progress: false,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert!(
        report
            .cleanup
            .contains("not deleted\n  DELETE /v2/team/check/"),
        "{}",
        report.cleanup
    );
    assert!(report.cleanup.contains(": 403"), "{}", report.cleanup);
}
