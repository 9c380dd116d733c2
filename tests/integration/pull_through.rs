//! The pull-through cache: a Marina in front of another registry (a second
//! Marina, with and without authentication, and Debian's docker-registry),
//! reached by prefix and by `?ns=`; pushes refused; tags revalidated, and served
//! stale when the upstream is gone; a slow, stalled, failing and lying upstream
//! (through a fault-injecting proxy, [`Tap`]); one download shared by
//! concurrent pulls; and skopeo, podman and containerd pulling through it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use marina::config::{AuthScheme, UpstreamConfig};
use marina::oci::{Algorithm, Digest};
use reqwest::Method;

use crate::support::{image_manifest, TestServer, OCI_MANIFEST};

/// The upstream settings these tests use: `ns`, prefix `cache/up/`.
pub(crate) fn upstream(url: &str) -> UpstreamConfig {
    UpstreamConfig {
        ns: Some("up.example".into()),
        prefix: Some("cache/up/".into()),
        timeout_secs: 5,
        ..UpstreamConfig::new(url)
    }
}

/// A cache of `up`.
async fn cache_of(up: UpstreamConfig) -> TestServer {
    TestServer::start_with(move |c| c.registry.upstreams = vec![up]).await
}

/// Pushes an image whose layer is `layer`; returns (manifest bytes, its digest,
/// the layer's digest).
async fn push_image(
    s: &TestServer,
    repo: &str,
    tag: &str,
    layer: &[u8],
) -> (Vec<u8>, Digest, Digest) {
    let config = format!("{{\"layer\":{}}}", layer.len());
    let c = s.push_blob(repo, config.as_bytes()).await;
    let l = s.push_blob(repo, layer).await;
    let m = image_manifest(&c, config.len(), &[(&l, layer.len())], None, None);
    s.push_manifest(repo, tag, OCI_MANIFEST, &m).await;
    let d = Algorithm::Sha256.digest_of(&m);
    (m, d, l)
}

fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn pulls_through_by_prefix_and_by_ns_and_refuses_pushes() {
    let up = TestServer::start().await;
    let layer = noise(300_000, 1);
    let (manifest, md, ld) = push_image(&up, "team/app", "v1", &layer).await;
    let cache = cache_of(upstream(&up.url)).await;

    // By prefix: fetched from the upstream, byte for byte.
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    r.expect(200, None);
    assert_eq!(r.body, manifest);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(md.to_string().as_str())
    );
    assert_eq!(r.header("marina-cache"), Some("miss"));
    assert_eq!(r.header("oci-namespace"), None, "no ns, no OCI-Namespace");
    // Within the freshness time, from the cache.
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    assert_eq!(r.header("marina-cache"), Some("hit"));

    // By ns, under the upstream's own name: the same content, OCI-Namespace echoed.
    let r = cache
        .get(&format!("/v2/team/app/manifests/{md}?ns=up.example"))
        .await;
    r.expect(200, None);
    assert_eq!(r.body, manifest);
    assert_eq!(r.header("oci-namespace"), Some("up.example"));
    let h = cache
        .head(&format!("/v2/team/app/blobs/{ld}?ns=up.example"))
        .await;
    h.expect(200, None);
    assert_eq!(
        h.header("content-length"),
        Some(layer.len().to_string().as_str())
    );
    assert_eq!(
        h.header("marina-cache"),
        Some("miss"),
        "a HEAD asks the upstream"
    );
    let b = cache
        .get(&format!("/v2/team/app/blobs/{ld}?ns=up.example"))
        .await;
    b.expect(200, None);
    assert_eq!(b.body, layer);
    assert_eq!(b.header("oci-namespace"), Some("up.example"));
    let b = cache
        .get(&format!("/v2/cache/up/team/app/blobs/{ld}"))
        .await;
    assert_eq!(b.header("marina-cache"), Some("hit"));
    assert_eq!(b.body, layer);
    // A range of a cached blob.
    let part = cache
        .req(Method::GET, &format!("/v2/cache/up/team/app/blobs/{ld}"))
        .await
        .header("Range", "bytes=10-19")
        .send()
        .await;
    part.expect(206, None);
    assert_eq!(part.body, layer[10..20]);

    // The cached repository is an ordinary one: listed, with its tags merged.
    let tags = cache.get("/v2/cache/up/team/app/tags/list").await;
    tags.expect(200, None);
    assert_eq!(tags.json()["tags"], serde_json::json!(["v1"]));
    assert_eq!(tags.header("marina-cache"), Some("merged"));
    let catalog = cache.get("/v2/_catalog").await;
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!(["cache/up/team/app"])
    );

    // Host names are case-insensitive; the echo is what the client sent.
    let r = cache
        .get(&format!("/v2/team/app/manifests/{md}?ns=UP.Example"))
        .await;
    r.expect(200, None);
    assert_eq!(r.header("oci-namespace"), Some("UP.Example"));
    // An ns no upstream has: a 404 naming it, in the spec's envelope.
    let r = cache
        .get("/v2/team/app/manifests/v1?ns=elsewhere.example")
        .await;
    r.expect(404, Some("NAME_UNKNOWN"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("elsewhere.example"),
        "{}",
        r.describe()
    );
    // Unknown to the upstream: 404 too.
    cache
        .get("/v2/cache/up/team/app/manifests/v404")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    let absent = Algorithm::Sha256.digest_of(b"never pushed");
    cache
        .get(&format!("/v2/cache/up/team/app/blobs/{absent}"))
        .await
        .expect(404, Some("BLOB_UNKNOWN"));

    // Pushes and deletes into the cache are refused; nothing else is.
    let put = cache
        .req(Method::PUT, "/v2/cache/up/team/app/manifests/v2")
        .await
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await;
    put.expect(403, Some("DENIED"));
    cache
        .req(Method::POST, "/v2/team/app/blobs/uploads/?ns=up.example")
        .await
        .send()
        .await
        .expect(403, Some("DENIED"));
    cache
        .delete(&format!("/v2/cache/up/team/app/manifests/{md}"))
        .await
        .expect(403, Some("DENIED"));
    cache.push_blob("local/app", b"local content").await;

    // A registry without upstreams ignores ns.
    let r = up.get("/v2/team/app/manifests/v1?ns=up.example").await;
    r.expect(200, None);
    assert_eq!(r.header("oci-namespace"), None);
}

#[tokio::test]
async fn a_tag_is_revalidated_and_served_stale_when_the_upstream_is_gone() {
    let up = TestServer::start().await;
    let (_, first, _) = push_image(&up, "team/app", "v1", b"first layer").await;
    let cache = cache_of(UpstreamConfig {
        tag_ttl_secs: 0,
        ..upstream(&up.url)
    })
    .await;
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    assert_eq!(
        r.header("docker-content-digest"),
        Some(first.to_string().as_str())
    );
    // Unchanged upstream: confirmed by a HEAD.
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    assert_eq!(r.header("marina-cache"), Some("revalidated"));
    // The upstream moves the tag: the cache follows.
    let (moved, second, _) = push_image(&up, "team/app", "v1", b"second layer").await;
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    assert_eq!(
        r.header("docker-content-digest"),
        Some(second.to_string().as_str())
    );
    assert_eq!(r.header("marina-cache"), Some("miss"));
    assert_eq!(r.body, moved);
    // The first manifest stays cached by digest.
    cache
        .get(&format!("/v2/cache/up/team/app/manifests/{first}"))
        .await
        .expect(200, None);

    // A tag deleted upstream answers 404; its manifest stays cached by digest.
    let (_, third, _) = push_image(&up, "team/app", "v2", b"third layer").await;
    cache
        .get("/v2/cache/up/team/app/manifests/v2")
        .await
        .expect(200, None);
    up.delete("/v2/team/app/manifests/v2")
        .await
        .expect(202, None);
    cache
        .get("/v2/cache/up/team/app/manifests/v2")
        .await
        .expect(404, Some("MANIFEST_UNKNOWN"));
    // ... and the cache's tag list no longer names it.
    let r = cache.get("/v2/cache/up/team/app/tags/list").await;
    r.expect(200, None);
    let list: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(list["tags"], serde_json::json!(["v1"]), "{list}");
    cache
        .get(&format!("/v2/cache/up/team/app/manifests/{third}"))
        .await
        .expect(200, None);

    up.stop().await;
    // The upstream is gone: the cached tag is served, with a warning.
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    r.expect(200, None);
    assert_eq!(r.body, moved);
    assert_eq!(r.header("marina-cache"), Some("stale"));
    let warning = r.header("warning").unwrap_or_default().to_string();
    assert!(
        warning.starts_with("299 - \"") && warning.contains("upstream"),
        "{warning}"
    );
    let tags = cache.get("/v2/cache/up/team/app/tags/list").await;
    tags.expect(200, None);
    assert_eq!(tags.header("marina-cache"), Some("stale"));
    // What was never cached cannot be served: 502 in the spec's envelope.
    let r = cache.get("/v2/cache/up/team/other/manifests/v1").await;
    r.expect(502, Some("UNSUPPORTED"));
    let absent = Algorithm::Sha256.digest_of(b"never pushed");
    cache
        .get(&format!("/v2/cache/up/team/app/blobs/{absent}"))
        .await
        .expect(502, Some("UNSUPPORTED"));
}

/// What the [`Tap`] does to the answers it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Relays faithfully.
    None,
    /// Flips a byte of every blob and manifest body.
    Corrupt,
    /// Answers 503 to everything.
    Down,
    /// Waits longer than any timeout of these tests before answering.
    Hang,
    /// Sends half of each blob body, then nothing more.
    Stall,
    /// Relays blob bodies in small pieces, slowly (so pulls overlap).
    Drip,
    /// Answers 429 with `Retry-After: 7` to everything.
    Throttle,
}

/// A fault-injecting HTTP proxy in front of an upstream registry, counting the
/// blob downloads it relays.
struct Tap {
    url: String,
    fault: Arc<Mutex<Fault>>,
    blob_gets: Arc<AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl Tap {
    async fn start(target: &str) -> Tap {
        use poem::listener::{Acceptor, Listener};
        let fault = Arc::new(Mutex::new(Fault::None));
        let blob_gets = Arc::new(AtomicUsize::new(0));
        let target = target.to_string();
        let client = reqwest::Client::new();
        let (f, n) = (fault.clone(), blob_gets.clone());
        let app = poem::endpoint::make(move |req: poem::Request| {
            let (target, client, fault, gets) =
                (target.clone(), client.clone(), f.clone(), n.clone());
            async move { relay(req, &target, &client, fault, &gets).await }
        });
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().cloned().unwrap();
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Tap {
            url: format!("http://{addr}"),
            fault,
            blob_gets,
            _server: server,
        }
    }

    fn set(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }
}

async fn relay(
    req: poem::Request,
    target: &str,
    client: &reqwest::Client,
    fault: Arc<Mutex<Fault>>,
    gets: &AtomicUsize,
) -> poem::Response {
    let f = *fault.lock().unwrap();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let is_blob = path.contains("/blobs/sha256:");
    match f {
        Fault::Throttle => {
            return poem::Response::builder()
                .status(poem::http::StatusCode::TOO_MANY_REQUESTS)
                .header("Retry-After", "7")
                .finish()
        }
        Fault::Down => {
            return poem::Response::builder()
                .status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
                .finish()
        }
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        _ => {}
    }
    if is_blob && req.method() == poem::http::Method::GET {
        gets.fetch_add(1, Ordering::SeqCst);
    }
    let mut out = client.request(
        reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap(),
        format!("{target}{path}"),
    );
    for (k, v) in req.headers() {
        if k != "host" {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let resp = out.send().await.unwrap();
    let mut builder = poem::Response::builder()
        .status(poem::http::StatusCode::from_u16(resp.status().as_u16()).unwrap());
    for (k, v) in resp.headers() {
        builder = builder.header(k.as_str(), v.as_bytes());
    }
    let body = resp.bytes().await.unwrap_or_default();
    let body_matters =
        f != Fault::None && !body.is_empty() && (is_blob || path.contains("/manifests/"));
    if !body_matters {
        return builder.body(body);
    }
    match f {
        Fault::Corrupt => {
            let mut b = body.to_vec();
            let i = b.len() / 2;
            b[i] ^= 0x20;
            if is_blob {
                // In pieces, so the cache's clients keep up with the download.
                builder.body(drip(Bytes::from(b)))
            } else {
                builder.body(b)
            }
        }
        Fault::Stall if is_blob => {
            let half = body.slice(..body.len() / 2);
            let stream =
                futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(half) })
                    .chain(futures_util::stream::pending());
            builder.body(poem::Body::from_bytes_stream(stream))
        }
        Fault::Drip if is_blob => builder.body(drip(body)),
        _ => builder.body(body),
    }
}

/// A body sent in 64 KiB pieces, 5 ms apart.
fn drip(body: Bytes) -> poem::Body {
    let pieces: Vec<Bytes> = body.chunks(64 << 10).map(Bytes::copy_from_slice).collect();
    let stream = futures_util::stream::iter(pieces).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<Bytes, std::io::Error>(p)
    });
    poem::Body::from_bytes_stream(stream)
}

use futures_util::StreamExt;

#[tokio::test]
async fn a_lying_upstream_is_never_stored_or_served() {
    let up = TestServer::start().await;
    let layer = noise(2 << 20, 2);
    let (manifest, md, ld) = push_image(&up, "team/app", "v1", &layer).await;
    let tap = Tap::start(&up.url).await;
    let cache = cache_of(upstream(&tap.url)).await;
    tap.set(Fault::Corrupt);

    // A manifest whose bytes do not match its digest: 502, not stored.
    let r = cache
        .get(&format!("/v2/cache/up/team/app/manifests/{md}"))
        .await;
    r.expect(502, Some("DIGEST_INVALID"));
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    r.expect(502, Some("DIGEST_INVALID"));
    // A blob with a flipped byte: the client never gets it whole.
    let resp = cache
        .client
        .get(format!("{}/v2/cache/up/team/app/blobs/{ld}", cache.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the download is announced before it is verified"
    );
    match resp.bytes().await {
        Err(_) => {}
        Ok(got) => panic!(
            "a corrupt blob was served whole ({} of {} bytes, equal to the real one: {})",
            got.len(),
            layer.len(),
            got[..] == layer[..]
        ),
    }

    // Honest again: both are fetched anew (nothing wrong was kept) and exact.
    tap.set(Fault::None);
    let r = cache
        .get(&format!("/v2/cache/up/team/app/manifests/{md}"))
        .await;
    r.expect(200, None);
    assert_eq!(r.header("marina-cache"), Some("miss"));
    assert_eq!(r.body, manifest);
    let b = cache
        .get(&format!("/v2/cache/up/team/app/blobs/{ld}"))
        .await;
    b.expect(200, None);
    assert_eq!(b.header("marina-cache"), Some("miss"));
    assert_eq!(b.body, layer);
}

#[tokio::test]
async fn a_slow_failing_or_stalled_upstream_gets_a_bounded_answer() {
    let up = TestServer::start().await;
    let layer = noise(1 << 20, 3);
    let (_, md, ld) = push_image(&up, "team/app", "v1", &layer).await;
    let tap = Tap::start(&up.url).await;
    let cache = cache_of(UpstreamConfig {
        timeout_secs: 1,
        ..upstream(&tap.url)
    })
    .await;

    tap.set(Fault::Hang);
    cache
        .get(&format!("/v2/cache/up/team/app/manifests/{md}"))
        .await
        .expect(504, Some("UNSUPPORTED"));
    cache
        .get(&format!("/v2/cache/up/team/app/blobs/{ld}"))
        .await
        .expect(504, Some("UNSUPPORTED"));

    tap.set(Fault::Down);
    cache
        .get("/v2/cache/up/team/app/manifests/v1")
        .await
        .expect(502, Some("UNSUPPORTED"));
    cache
        .get("/v2/cache/up/team/app/tags/list")
        .await
        .expect(502, Some("UNSUPPORTED"));

    tap.set(Fault::Throttle);
    let r = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    r.expect(429, Some("TOOMANYREQUESTS"));
    assert_eq!(r.header("retry-after"), Some("7"));

    // Half a blob, then silence: the client's download is cut, nothing is kept.
    tap.set(Fault::Stall);
    let resp = cache
        .client
        .get(format!("{}/v2/cache/up/team/app/blobs/{ld}", cache.url))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert!(
        resp.bytes().await.is_err(),
        "a stalled download must be cut, not completed"
    );
    tap.set(Fault::None);
    let b = cache
        .get(&format!("/v2/cache/up/team/app/blobs/{ld}"))
        .await;
    assert_eq!(b.header("marina-cache"), Some("miss"));
    assert_eq!(b.body, layer);
}

#[tokio::test]
async fn concurrent_pulls_of_one_blob_share_one_download() {
    let up = TestServer::start().await;
    let layer = noise(8 << 20, 4);
    let (_, _, ld) = push_image(&up, "team/app", "v1", &layer).await;
    let tap = Tap::start(&up.url).await;
    let cache = cache_of(upstream(&tap.url)).await;
    tap.set(Fault::Drip);
    let url = format!("{}/v2/cache/up/team/app/blobs/{ld}", cache.url);
    // Another repository of the same upstream asks for it too.
    let other = format!("{}/v2/team/other/blobs/{ld}?ns=up.example", cache.url);
    let pulls: Vec<_> = (0..8)
        .map(|i| {
            let u = if i % 4 == 3 {
                other.clone()
            } else {
                url.clone()
            };
            let client = cache.client.clone();
            tokio::spawn(async move {
                let r = client.get(u).send().await.unwrap();
                (r.status().as_u16(), r.bytes().await.unwrap())
            })
        })
        .collect();
    for p in pulls {
        let (status, body) = p.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            body[..] == layer[..],
            "a client got {} wrong bytes",
            body.len()
        );
    }
    assert_eq!(
        tap.blob_gets.load(Ordering::SeqCst),
        1,
        "one upstream download for all"
    );
    let scrape = cache.get("/metrics").await;
    let scrape = String::from_utf8_lossy(&scrape.body);
    assert!(
        scrape.contains("marina_pull_through_total{kind=\"blob\",result=\"miss\"} 1\n"),
        "{scrape}"
    );
    assert!(
        scrape.contains(&format!(
            "marina_pull_through_upstream_bytes_total {}\n",
            layer.len()
        )),
        "{scrape}"
    );
    // Stored once, linked in both repositories.
    tap.set(Fault::Down);
    for u in [&url, &other] {
        let r = cache.client.get(u.as_str()).send().await.unwrap();
        assert_eq!(r.headers()["marina-cache"], "hit");
        assert!(r.bytes().await.unwrap()[..] == layer[..]);
    }
}

#[tokio::test]
async fn upstream_credentials_basic_and_token() {
    for scheme in [AuthScheme::Basic, AuthScheme::Token] {
        let dir = tempfile::tempdir().unwrap();
        let auth = crate::auth_support::standard_auth(dir.path(), scheme);
        let up = TestServer::start_with(|c| c.auth = Some(auth)).await;
        let admin = crate::auth_support::basic("admin", "admin-pw");
        let layer = noise(10_000, 5);
        let c = b"{}".to_vec();
        for (blob, name) in [(&layer, "layer"), (&c, "config")] {
            let d = Algorithm::Sha256.digest_of(blob);
            up.req(
                Method::POST,
                &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            )
            .await
            .header("Authorization", &admin)
            .body(blob.clone())
            .send()
            .await
            .expect(201, None);
            let _ = name;
        }
        let m = image_manifest(
            &Algorithm::Sha256.digest_of(&c),
            c.len(),
            &[(&Algorithm::Sha256.digest_of(&layer), layer.len())],
            None,
            None,
        );
        up.req(Method::PUT, "/v2/team/app/manifests/v1")
            .await
            .header("Authorization", &admin)
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
            .expect(201, None);

        // Without credentials the upstream refuses the cache: a 502 that says so.
        let anonymous = cache_of(upstream(&up.url)).await;
        let r = anonymous.get("/v2/cache/up/team/app/manifests/v1").await;
        r.expect(502, Some("UNSUPPORTED"));
        assert!(
            String::from_utf8_lossy(&r.body).contains("credentials"),
            "{}",
            r.describe()
        );

        let pw = dir.path().join("reader.pw");
        std::fs::write(&pw, "reader-pw\n").unwrap();
        let signed = cache_of(UpstreamConfig {
            username: Some("reader".into()),
            password_file: Some(pw),
            ..upstream(&up.url)
        })
        .await;
        let r = signed.get("/v2/team/app/manifests/v1?ns=up.example").await;
        r.expect(200, None);
        assert_eq!(r.body, m, "{scheme:?}");
        let b = signed
            .get(&format!(
                "/v2/cache/up/team/app/blobs/{}",
                Algorithm::Sha256.digest_of(&layer)
            ))
            .await;
        b.expect(200, None);
        assert_eq!(b.body, layer, "{scheme:?}");
    }
}

#[tokio::test]
async fn docker_registry_as_the_upstream() {
    let Some(dr) = crate::support::DockerRegistry::start().await else {
        return;
    };
    let client = reqwest::Client::new();
    let layer = noise(500_000, 6);
    let config = b"{\"os\":\"linux\"}".to_vec();
    for blob in [&layer, &config] {
        let d = Algorithm::Sha256.digest_of(blob);
        let start = client
            .post(format!("{}/v2/lib/tool/blobs/uploads/", dr.url))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 202);
        let loc = start.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with('/') {
            format!("{}{loc}", dr.url)
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = client
            .put(format!("{loc}{sep}digest={d}"))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
    }
    let m = image_manifest(
        &Algorithm::Sha256.digest_of(&config),
        config.len(),
        &[(&Algorithm::Sha256.digest_of(&layer), layer.len())],
        None,
        None,
    );
    let put = client
        .put(format!("{}/v2/lib/tool/manifests/1.0", dr.url))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    let cache = cache_of(upstream(&dr.url)).await;
    let r = cache.get("/v2/lib/tool/manifests/1.0?ns=up.example").await;
    r.expect(200, None);
    assert_eq!(r.body, m);
    let b = cache
        .get(&format!(
            "/v2/cache/up/lib/tool/blobs/{}",
            Algorithm::Sha256.digest_of(&layer)
        ))
        .await;
    b.expect(200, None);
    assert_eq!(b.body, layer);
    let tags = cache.get("/v2/cache/up/lib/tool/tags/list").await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["1.0"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_passes_against_a_cache_and_judges_its_namespace() {
    use marina::harness::{self, report, Options, Verdict};
    let up = TestServer::start().await;
    push_image(&up, "team/app", "v1", &noise(50_000, 7)).await;
    let cache = cache_of(upstream(&up.url)).await;
    let report = harness::check(
        &cache.url,
        Options {
            seed: 7,
            cases: 8,
            ns: Some("up.example".into()),
            ns_image: Some("team/app:v1".into()),
            ..Options::default()
        },
    )
    .await
    .expect("the harness runs");
    let text = report::render_terminal(&report, true);
    let verdict = |id: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.verdict.clone())
            .unwrap_or_else(|| panic!("{id} did not run"))
    };
    assert!(matches!(verdict("protocol.proxy"), Verdict::Pass), "{text}");
    // An ns it does not proxy is refused the same way on every request.
    assert!(
        matches!(verdict("protocol.namespace"), Verdict::Unsupported { .. }),
        "{text}"
    );
    // Its own (non-proxied) repositories pass everything else.
    assert_eq!(report.exit_code(), 0, "{text}");

    // Pointed at a namespace the cache does not proxy, the check fails.
    let report = harness::check(
        &cache.url,
        Options {
            only: vec!["protocol.proxy".into()],
            ns: Some("nowhere.example".into()),
            ns_image: Some("team/app:v1".into()),
            ..Options::default()
        },
    )
    .await
    .expect("the harness runs");
    assert!(
        report
            .outcomes
            .iter()
            .any(|o| o.id == "protocol.proxy" && matches!(o.verdict, Verdict::Fail(_))),
        "{}",
        report::render_terminal(&report, true)
    );
}

#[tokio::test]
async fn referrers_come_from_the_upstream_and_limits_apply_to_it() {
    let up = TestServer::start().await;
    let layer = noise(4_000, 8);
    let (manifest, md, ld) = push_image(&up, "team/app", "v1", &layer).await;
    // A signature-like referrer of the image, pushed upstream only.
    let c = up.push_blob("team/app", b"{}").await;
    let referrer = image_manifest(
        &c,
        2,
        &[],
        Some("application/vnd.example.signature"),
        Some((&md, manifest.len())),
    );
    up.push_manifest("team/app", "sig", OCI_MANIFEST, &referrer)
        .await;
    let rd = Algorithm::Sha256.digest_of(&referrer);

    let cache = cache_of(UpstreamConfig {
        max_blob_bytes: Some(1_000),
        ..upstream(&up.url)
    })
    .await;
    let r = cache
        .get(&format!("/v2/cache/up/team/app/referrers/{md}"))
        .await;
    r.expect(200, None);
    assert_eq!(r.header("marina-cache"), Some("merged"));
    let listed: Vec<String> = r.json()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, vec![rd.to_string()]);
    let filtered = cache
        .get(&format!(
            "/v2/cache/up/team/app/referrers/{md}?artifactType=application/vnd.other"
        ))
        .await;
    assert_eq!(filtered.json()["manifests"], serde_json::json!([]));

    // A blob over the upstream's max_blob_bytes is refused, not stored.
    cache
        .get(&format!("/v2/cache/up/team/app/blobs/{ld}"))
        .await
        .expect(502, Some("SIZE_INVALID"));
    // Small ones pass, a range of a miss too (once stored).
    let part = cache
        .req(Method::GET, &format!("/v2/cache/up/team/app/blobs/{c}"))
        .await
        .header("Range", "bytes=1-1")
        .send()
        .await;
    part.expect(206, None);
    assert_eq!(part.body, b"}");
    assert_eq!(part.header("marina-cache"), Some("miss"));
}

#[tokio::test]
async fn access_control_governs_the_local_names() {
    let up = TestServer::start().await;
    let (manifest, _, _) = push_image(&up, "team/app", "v1", b"guarded layer").await;
    let dir = tempfile::tempdir().unwrap();
    let mut auth = crate::auth_support::standard_auth(dir.path(), AuthScheme::Basic);
    // Anyone may pull what is cached from up.example; nothing else is open.
    auth.rules = vec![crate::auth_support::rule(
        &[],
        &[],
        true,
        &["cache/up/**"],
        &["pull"],
    )];
    let up_config = upstream(&up.url);
    let cache = TestServer::start_with(move |c| {
        c.registry.upstreams = vec![up_config];
        c.auth = Some(auth);
    })
    .await;
    // By ns, the name is the upstream's, but the rule for the local name decides.
    let r = cache.get("/v2/team/app/manifests/v1?ns=up.example").await;
    r.expect(200, None);
    assert_eq!(r.body, manifest);
    // The same name without ns is a local repository no rule opens.
    cache
        .get("/v2/team/app/manifests/v1")
        .await
        .expect(401, Some("UNAUTHORIZED"));
}

/// A blob the cache holds because another of its repositories brought it (a
/// private one here) is served through a cached name only when the upstream
/// says that name holds it: knowing a digest is not a right to its bytes.
#[tokio::test]
async fn a_blob_held_for_another_repository_needs_the_upstreams_word() {
    let up = TestServer::start().await;
    let cache = cache_of(upstream(&up.url)).await;
    let private = cache.push_blob("private/app", b"private layer").await;
    let path = format!("/v2/cache/up/team/app/blobs/{private}");
    // The upstream does not hold it under that name (nor at all).
    cache.get(&path).await.expect(404, Some("BLOB_UNKNOWN"));
    cache
        .req(Method::HEAD, &path)
        .await
        .send()
        .await
        .expect(404, None);
    // Once it does, the cache serves its own copy, linked to the cached name.
    let pushed = up.push_blob("team/app", b"private layer").await;
    assert_eq!(pushed, private);
    let r = cache.get(&path).await;
    r.expect(200, None);
    assert_eq!(r.body, b"private layer");
    // A different name of the upstream, which does not hold it, still gets 404.
    cache
        .get(&format!("/v2/cache/up/team/other/blobs/{private}"))
        .await
        .expect(404, Some("BLOB_UNKNOWN"));
}

/// Both official suites (when `MARINA_CONFORMANCE_BIN` /
/// `MARINA_CONFORMANCE_V111_BIN` name builds of them) against a cache: its
/// own, non-proxied names behave like any registry's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_suites_pass_on_a_caches_own_names() {
    let suites = [
        ("MARINA_CONFORMANCE_BIN", true),
        ("MARINA_CONFORMANCE_V111_BIN", false),
    ];
    let up = TestServer::start().await;
    let up_config = upstream(&up.url);
    let cache = TestServer::start_with(move |c| {
        c.registry.upstreams = vec![up_config];
        c.registry.sparse_manifests = true;
    })
    .await;
    for (variable, current) in suites {
        let Some(bin) = crate::support::suite_binary(variable, "against a cache") else {
            continue;
        };
        let report = crate::support::official_suite(bin, &cache.url, current).await;
        assert_eq!(report.exit_code(), 0, "{variable}: {}", report.summary);
        if current {
            assert!(
                report.summary.contains(" 0 FAIL") && report.summary.contains(" 0 Skip"),
                "{}",
                report.summary
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_ns_can_be_ignored() {
    let up = TestServer::start().await;
    let up_config = upstream(&up.url);
    let cache = TestServer::start_with(move |c| {
        c.registry.upstreams = vec![up_config];
        c.registry.unknown_ns = marina::config::UnknownNs::Ignore;
    })
    .await;
    let (manifest, _) = cache.push_image("local/app", "v1", "local").await;
    let r = cache
        .get("/v2/local/app/manifests/v1?ns=elsewhere.example")
        .await;
    r.expect(200, None);
    assert_eq!(r.body, manifest);
    assert_eq!(
        r.header("oci-namespace"),
        None,
        "an ignored ns is not echoed"
    );
}

/// The upstream process SIGKILLed: what the cache holds is still served.
#[tokio::test]
async fn an_upstream_killed_with_sigkill_leaves_the_cache_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("up");
    let (mut child, up_url) = crate::support::spawn_serve(
        &[std::ffi::OsStr::new("--data-dir"), data.as_os_str()],
        std::process::Stdio::null(),
    );
    let client = reqwest::Client::new();
    let layer = noise(100_000, 9);
    let config = b"{}".to_vec();
    for blob in [&layer, &config] {
        let d = Algorithm::Sha256.digest_of(blob);
        let r = client
            .post(format!("{up_url}/v2/team/app/blobs/uploads/?digest={d}"))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let ld = Algorithm::Sha256.digest_of(&layer);
    let m = image_manifest(
        &Algorithm::Sha256.digest_of(&config),
        config.len(),
        &[(&ld, layer.len())],
        None,
        None,
    );
    let r = client
        .put(format!("{up_url}/v2/team/app/manifests/v1"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let cache = cache_of(UpstreamConfig {
        tag_ttl_secs: 0,
        ..upstream(&up_url)
    })
    .await;
    cache
        .get("/v2/team/app/manifests/v1?ns=up.example")
        .await
        .expect(200, None);
    cache
        .get(&format!("/v2/team/app/blobs/{ld}?ns=up.example"))
        .await
        .expect(200, None);

    child.kill().unwrap();
    child.wait().unwrap();
    let r = cache.get("/v2/team/app/manifests/v1?ns=up.example").await;
    r.expect(200, None);
    assert_eq!(r.body, m);
    assert_eq!(r.header("marina-cache"), Some("stale"));
    let b = cache
        .get(&format!("/v2/team/app/blobs/{ld}?ns=up.example"))
        .await;
    assert_eq!(b.header("marina-cache"), Some("hit"));
    assert_eq!(b.body, layer);
    cache
        .get("/v2/team/other/manifests/v1?ns=up.example")
        .await
        .expect(502, Some("UNSUPPORTED"));
}
