//! The listing client and `marina list*`: against the reference server through the
//! extension, and against Debian's docker-registry (distribution 2.8, skipped with a
//! message when not installed) through the standard-API fallbacks.

use marina::listing_client::{
    Connection, Filters, ListingClient, Options, SortKey, Sorting, Source,
};
use marina::oci::{referrers_tag, Algorithm, Digest};
use serde_json::{json, Value};

use crate::listing_fixture::{scenario, REPOS, SIGNATURE};
use crate::support::{image_manifest, DockerRegistry, TestServer, OCI_INDEX, OCI_MANIFEST};

fn host(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

fn opts() -> Options {
    Options::default()
}

use crate::support::run_marina as marina;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_lists_the_scenarios_through_the_extension() {
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let c = ListingClient::new(&host(&s.url), &Connection::default()).unwrap();
    assert!(c.base_url().starts_with("http://127.0.0.1:"));

    let all = c.repositories(None, &opts()).await.unwrap();
    assert_eq!(all.source, Source::Extension);
    assert!(all.not_honoured.is_empty());
    assert_eq!(
        all.items
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        REPOS
    );
    assert!(all.items.iter().all(|r| r.pushed_at.is_some()));
    let team_a = c.repositories(Some("org2/team-a"), &opts()).await.unwrap();
    assert_eq!(team_a.items.len(), 2);
    // Limits stop early; sorting by push time is honoured.
    let latest = c
        .repositories(
            None,
            &Options {
                sort: Sorting {
                    key: SortKey::Pushed,
                    descending: true,
                },
                limit: Some(1),
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(latest.items.len(), 1);
    assert_eq!(latest.items[0].name, "hello-world");

    let tags = c
        .tags("hello-world", Some(&sc.hello.to_string()), &opts())
        .await
        .unwrap();
    assert_eq!(
        tags.items
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["latest", "v1"]
    );
    assert!(tags
        .items
        .iter()
        .all(|t| t.digest == sc.hello.to_string() && t.pushed_at.is_some()));

    let untagged = c
        .manifests(
            "hello-world",
            &Options {
                filters: Filters {
                    tagged: Some(false),
                    ..Default::default()
                },
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(untagged.items.len(), 3);
    let refs = c
        .referrers(
            "hello-world",
            &sc.hello.to_string(),
            &Options {
                filters: Filters {
                    artifact_type: Some(SIGNATURE.into()),
                    annotations: vec!["org.example.signer=bob".into()],
                    tagged: None,
                },
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        refs.items
            .iter()
            .map(|m| m.digest.clone())
            .collect::<Vec<_>>(),
        [sc.sig_bob.to_string()]
    );
    // Many pages: the client follows Link.
    let many = c
        .manifests(
            "org2/team-a/image-a1",
            &Options {
                limit: Some(2),
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(many.items.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marina_list_commands_print_tables_and_json() {
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let h = host(&s.url);
    let (code, out, err) = marina(&["list", &format!("{h}/org2/")]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("PUSHED"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].starts_with("org2/team-a/image-a1 "), "{out}");
    assert!(err.is_empty(), "{err}");

    let (code, out, err) = marina(&[
        "list-tags",
        &format!("{h}/hello-world@{}", sc.hello),
        "--sort",
        "pushed:desc",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().nth(1).unwrap().starts_with("v1 "), "{out}");
    assert!(out.contains(&sc.hello.to_string()), "{out}");

    let (code, out, err) = marina(&[
        "list-manifests",
        &format!("{h}/org1/artifact-a"),
        "--annotation",
        "org.opencontainers.image.version=2",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["source"], "extension");
    assert_eq!(v["items"][0]["digest"], sc.artifact_v2.to_string());
    assert_eq!(v["items"][0]["tags"], json!(["v2"]));
    assert_eq!(v["items"].as_array().unwrap().len(), 1);

    let (code, out, err) = marina(&[
        "list-referrers",
        &format!("{h}/hello-world@{}", sc.hello),
        "--artifact-type",
        SIGNATURE,
        "--limit",
        "1",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().next().unwrap().contains("ANNOTATIONS"), "{out}");

    let (code, _, err) = marina(&["list-referrers", &format!("{h}/hello-world")]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = marina(&["list", &format!("{h}/Not_A_Namespace/")]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = marina(&["list-tags", &format!("{h}/missing/repo")]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
}

impl DockerRegistry {
    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let c = reqwest::Client::new();
        let d = Algorithm::Sha256.digest_of(bytes);
        let r = c
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("{}{loc}", self.url)
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = c
            .put(format!("{loc}{sep}digest={d}"))
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        d
    }

    async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Digest {
        let r = reqwest::Client::new()
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.url))
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            status,
            201,
            "PUT {repo}:{reference}: {:?}\nlog:\n{}",
            r.text().await,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        Algorithm::Sha256.digest_of(body)
    }

    /// An image (or artifact, with `artifact_type`, `subject` and annotations).
    async fn push(
        &self,
        repo: &str,
        reference: Option<&str>,
        seed: &str,
        artifact_type: Option<&str>,
        subject: Option<(&Digest, usize)>,
        annotations: Value,
    ) -> (Digest, usize) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let c = self.push_blob(repo, config.as_bytes()).await;
        let layer = format!("layer {seed}");
        let l = self.push_blob(repo, layer.as_bytes()).await;
        let mut m: Value = serde_json::from_slice(&image_manifest(
            &c,
            config.len(),
            &[(&l, layer.len())],
            artifact_type,
            subject,
        ))
        .unwrap();
        if annotations.is_object() {
            m["annotations"] = annotations;
        }
        let body = serde_json::to_vec(&m).unwrap();
        let d = Algorithm::Sha256.digest_of(&body);
        let reference = reference
            .map(str::to_string)
            .unwrap_or_else(|| d.to_string());
        self.push_manifest(repo, &reference, OCI_MANIFEST, &body)
            .await;
        (d, body.len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_falls_back_to_the_standard_api_on_docker_registry() {
    let Some(reg) = DockerRegistry::start().await else {
        return;
    };
    let (hello, hello_len) = reg
        .push(
            "hello-world",
            Some("latest"),
            "hello",
            None,
            None,
            Value::Null,
        )
        .await;
    // The same manifest again under v1 (same seed, same bytes).
    assert_eq!(
        reg.push("hello-world", Some("v1"), "hello", None, None, Value::Null)
            .await
            .0,
        hello
    );
    reg.push("hello-world", None, "hello-old", None, None, Value::Null)
        .await;
    let (v1, _) = reg
        .push(
            "org1/artifact-a",
            Some("v1"),
            "a1",
            Some("application/vnd.example.chart"),
            None,
            json!({"org.example.team": "one", "v": "1"}),
        )
        .await;
    reg.push(
        "org1/artifact-a",
        Some("v2"),
        "a2",
        Some("application/vnd.example.chart"),
        None,
        json!({"v": "2"}),
    )
    .await;
    reg.push(
        "org2/team-a/image-a1",
        Some("v1"),
        "i1",
        None,
        None,
        Value::Null,
    )
    .await;
    reg.push(
        "org2/team-b/image-b1",
        Some("v1"),
        "b1",
        None,
        None,
        Value::Null,
    )
    .await;
    // Referrers of hello through the referrers tag schema, as clients keep them here.
    let (sig, sig_len) = reg
        .push(
            "hello-world",
            None,
            "sig",
            Some(SIGNATURE),
            Some((&hello, hello_len)),
            json!({"org.example.signer": "alice"}),
        )
        .await;
    let (sbom, sbom_len) = reg
        .push(
            "hello-world",
            None,
            "sbom",
            Some("application/spdx+json"),
            Some((&hello, hello_len)),
            Value::Null,
        )
        .await;
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sig.to_string(), "size": sig_len, "artifactType": SIGNATURE, "annotations": {"org.example.signer": "alice"}},
        {"mediaType": OCI_MANIFEST, "digest": sbom.to_string(), "size": sbom_len, "artifactType": "application/spdx+json"},
    ]});
    reg.push_manifest(
        "hello-world",
        &referrers_tag::referrers_tag_for(&hello),
        OCI_INDEX,
        &serde_json::to_vec(&index).unwrap(),
    )
    .await;

    let c = ListingClient::new(&host(&reg.url), &Connection::default()).unwrap();
    // Repositories through _catalog, filtered by namespace.
    let all = c.repositories(None, &opts()).await.unwrap();
    assert_eq!(all.source, Source::Standard);
    assert_eq!(
        all.items
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        [
            "hello-world",
            "org1/artifact-a",
            "org2/team-a/image-a1",
            "org2/team-b/image-b1"
        ]
    );
    assert!(all.items.iter().all(|r| r.pushed_at.is_none()));
    let org2 = c
        .repositories(
            Some("org2"),
            &Options {
                sort: Sorting {
                    key: SortKey::Name,
                    descending: true,
                },
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        org2.items
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["org2/team-b/image-b1", "org2/team-a/image-a1"]
    );
    // Push time cannot be honoured, and says so.
    let by_push = c
        .repositories(
            None,
            &Options {
                sort: Sorting {
                    key: SortKey::Pushed,
                    descending: false,
                },
                ..opts()
            },
        )
        .await
        .unwrap();
    assert!(
        by_push.not_honoured.iter().any(|n| n.contains("push time")),
        "{:?}",
        by_push.not_honoured
    );

    // Tags with digests (HEAD), and the tags pointing at a digest.
    let tags = c.tags("hello-world", None, &opts()).await.unwrap();
    let names: Vec<&str> = tags.items.iter().map(|t| t.name.as_str()).collect();
    let schema_tag = referrers_tag::referrers_tag_for(&hello);
    assert_eq!(names, ["latest", schema_tag.as_str(), "v1"]);
    assert_eq!(tags.items[0].digest, hello.to_string());
    let at = c
        .tags("hello-world", Some(&hello.to_string()), &opts())
        .await
        .unwrap();
    assert_eq!(
        at.items.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["latest", "v1"]
    );
    let typed = c
        .tags(
            "org1/artifact-a",
            None,
            &Options {
                filters: Filters {
                    annotations: vec!["org.example.team".into()],
                    ..Default::default()
                },
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        typed
            .items
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["v1"]
    );
    assert_eq!(typed.items[0].digest, v1.to_string());

    // Manifests: only the tagged ones can be found, and it says so.
    let ms = c.manifests("hello-world", &opts()).await.unwrap();
    let hello_row = ms
        .items
        .iter()
        .find(|m| m.digest == hello.to_string())
        .unwrap();
    assert_eq!(hello_row.tags, ["latest", "v1"]);
    assert_eq!(hello_row.size, hello_len as i64);
    assert_eq!(ms.items.len(), 2, "hello and the referrers index");
    assert!(
        ms.not_honoured.iter().any(|n| n.contains("untagged")),
        "{:?}",
        ms.not_honoured
    );
    let charts = c
        .manifests(
            "org1/artifact-a",
            &Options {
                filters: Filters {
                    annotations: vec!["v=2".into()],
                    ..Default::default()
                },
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(charts.items.len(), 1);
    assert_eq!(
        charts.items[0].artifact_type.as_deref(),
        Some("application/vnd.example.chart")
    );

    // Referrers: no referrers API (404), so the tag schema; filters applied here.
    let refs = c
        .referrers("hello-world", &hello.to_string(), &opts())
        .await
        .unwrap();
    let mut want = vec![sig.to_string(), sbom.to_string()];
    want.sort();
    assert_eq!(
        refs.items
            .iter()
            .map(|m| m.digest.clone())
            .collect::<Vec<_>>(),
        want
    );
    assert!(
        refs.not_honoured
            .iter()
            .any(|n| n.contains("referrers API")),
        "{:?}",
        refs.not_honoured
    );
    let sigs = c
        .referrers(
            "hello-world",
            &hello.to_string(),
            &Options {
                filters: Filters {
                    artifact_type: Some(SIGNATURE.into()),
                    ..Default::default()
                },
                ..opts()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sigs.items
            .iter()
            .map(|m| m.digest.clone())
            .collect::<Vec<_>>(),
        [sig.to_string()]
    );
    let none = c
        .referrers("hello-world", &v1.to_string(), &opts())
        .await
        .unwrap();
    assert!(none.items.is_empty());

    // The command line says what it could not honour.
    let (code, out, err) =
        marina(&["list", &format!("{}/", host(&reg.url)), "--sort", "pushed"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(
        err.contains("standard API") && err.contains("not honoured"),
        "{err}"
    );
}

/// The listing client logs in (Basic, or a token from the registry's token
/// endpoint), trusts a CA given as a file, and lists what the caller may pull.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_logs_in_and_lists_what_the_caller_may_pull() {
    use crate::auth_api::push_image_as;
    use crate::auth_support::{basic, standard_auth, start_secure, TestCa};
    use marina::config::AuthScheme;
    use marina::listing_client::Credentials;

    for scheme in [AuthScheme::Basic, AuthScheme::Token] {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("listing client test CA");
        let s = start_secure(standard_auth(dir.path(), scheme), Some(&ca), |_| {}).await;
        let admin = basic("admin", "admin-pw");
        for repo in ["public/a", "secret/b", "team/c"] {
            push_image_as(&s, &admin, repo, "v1", repo).await;
        }
        let ca_file = ca.dir.path().join("ca.crt");
        let client = |user: Option<(&str, &str)>| {
            let conn = Connection {
                ca_file: Some(ca_file.clone()),
                credentials: user.map(|(u, p)| Credentials {
                    username: u.into(),
                    password: p.into(),
                }),
                ..Connection::default()
            };
            ListingClient::new(&s.url, &conn).unwrap()
        };
        let names = |l: &marina::listing_client::Listing<marina::listing_client::Repository>| {
            l.items.iter().map(|r| r.name.clone()).collect::<Vec<_>>()
        };
        let writer = client(Some(("writer", "writer-pw")))
            .repositories(None, &opts())
            .await
            .unwrap();
        assert_eq!(writer.source, Source::Extension, "{scheme:?}");
        assert_eq!(names(&writer), ["public/a", "team/c"], "{scheme:?}");
        let reader = client(Some(("reader", "reader-pw")))
            .repositories(None, &opts())
            .await
            .unwrap();
        assert_eq!(
            names(&reader),
            ["public/a", "secret/b", "team/c"],
            "{scheme:?}"
        );
        let anonymous = client(None).repositories(None, &opts()).await.unwrap();
        assert_eq!(names(&anonymous), ["public/a"], "{scheme:?}");
        let tags = client(Some(("writer", "writer-pw")))
            .tags("team/c", None, &opts())
            .await
            .unwrap();
        assert_eq!(tags.source, Source::Extension, "{scheme:?}");
        assert_eq!(tags.items.len(), 1, "{scheme:?}");
        let refused = client(Some(("writer", "writer-pw")))
            .tags("secret/b", None, &opts())
            .await;
        // A refusal reads as the registry's reason in one line, not a JSON body
        // naming the URL (issue 18 item 16).
        let refused = refused.unwrap_err().to_string();
        assert!(
            refused.starts_with("403 DENIED: pull on repository secret/b is not granted (GET /v2/"),
            "{scheme:?}: {refused}"
        );
        assert!(
            !refused.contains('{') && !refused.contains("https://"),
            "{refused}"
        );
        let wrong = client(Some(("writer", "guess")))
            .repositories(None, &opts())
            .await;
        assert!(wrong.is_err(), "{scheme:?}: {wrong:?}");

        // The same through the command line.
        let url = s.url.clone();
        let ca_arg = ca_file.display().to_string();
        let (code, out, err) = marina(&[
            "list",
            &format!("{url}/"),
            "--ca-file",
            &ca_arg,
            "--username",
            "writer",
            "--password",
            "writer-pw",
        ])
        .await;
        assert_eq!(code, 0, "{scheme:?}: {err}");
        assert!(out.contains("team/c") && !out.contains("secret/b"), "{out}");
        let (code, _, err) = marina(&["list", &format!("{url}/"), "--username", "writer"]).await;
        assert_ne!(code, 0);
        assert!(err.contains("go together"), "{err}");
    }
}

/// `marina du` through the extension: bytes per repository, what only it holds
/// (a layer mounted elsewhere is shared), and the total with every blob once.
#[tokio::test]
async fn du_reports_sizes_unique_bytes_and_the_total_through_the_extension() {
    let test = marina::testing::TestRegistry::start().await;
    let a = test.push_image("du/a", "v1").await;
    let b = test.push_image("du/b", "v1").await;
    let http = reqwest::Client::new();
    let size = |d: &Digest| {
        let url = format!("{}/v2/du/a/blobs/{d}", test.url());
        let http = http.clone();
        async move {
            let r = http.head(url).send().await.unwrap();
            r.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    let (a_config, a_layer) = (size(&a.blobs[0]).await, size(&a.blobs[1]).await);
    let r = http
        .post(format!(
            "{}/v2/du/b/blobs/uploads/?mount={}&from=du/a",
            test.url(),
            a.blobs[1]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b_own: u64 = {
        let mut t = 0;
        for d in &b.blobs {
            let r = http
                .head(format!("{}/v2/du/b/blobs/{d}", test.url()))
                .send()
                .await
                .unwrap();
            t += r.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
        t
    };
    let (code, out, err) = marina(&["du", &format!("{}/du/", test.host()), "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["source"], "extension");
    assert_eq!(
        v["repositories"],
        json!([
            {"name": "du/a", "bytes": a_config + a_layer, "uniqueBytes": a_config},
            {"name": "du/b", "bytes": b_own + a_layer, "uniqueBytes": b_own},
        ])
    );
    assert_eq!(v["totalBytes"], json!(a_config + a_layer + b_own));
}

/// Without the extension, `marina du` estimates from the manifests tags point
/// at, and says so.
#[tokio::test]
async fn du_estimates_from_manifests_on_docker_registry() {
    let Some(reg) = DockerRegistry::start().await else {
        return;
    };
    reg.push("du/a", Some("v1"), "shared", None, None, Value::Null)
        .await;
    reg.push("du/b", Some("v1"), "shared", None, None, Value::Null)
        .await;
    reg.push("du/b", Some("v2"), "own", None, None, Value::Null)
        .await;
    let c = ListingClient::new(&reg.url, &Connection::default()).unwrap();
    let report = c.usage(Some("du")).await.unwrap();
    let shared = (r#"{"seed":"shared"}"#.len() + "layer shared".len()) as u64;
    let own = (r#"{"seed":"own"}"#.len() + "layer own".len()) as u64;
    let rows: Vec<(String, u64, Option<u64>)> = report
        .repositories
        .iter()
        .map(|r| (r.name.clone(), r.bytes, r.unique_bytes))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("du/a".to_string(), shared, Some(0)),
            ("du/b".to_string(), shared + own, Some(own)),
        ]
    );
    assert_eq!(report.total_bytes, Some(shared + own));
    assert!(
        report.notes.iter().any(|n| n.contains("estimated")),
        "{:?}",
        report.notes
    );
}

/// An untagged manifest that an index holds is told apart from a truly
/// untagged one: the extension names the index, and `list-manifests` shows it.
#[tokio::test]
async fn untagged_children_of_an_index_are_told_apart_from_garbage() {
    let test = marina::testing::TestRegistry::start().await;
    let child = test.push_image("multi/app", "child").await;
    let loose = test.push_image("multi/app", "loose").await;
    let index = test
        .push_index("multi/app", "v1", std::slice::from_ref(&child))
        .await;
    for tag in ["child", "loose"] {
        let r = reqwest::Client::new()
            .delete(format!("{}/v2/multi/app/manifests/{tag}", test.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let c = ListingClient::new(&test.host(), &Connection::default()).unwrap();
    let listing = c.manifests("multi/app", &Options::default()).await.unwrap();
    let held = |d: &Digest| {
        listing
            .items
            .iter()
            .find(|m| m.digest == d.to_string())
            .map(|m| m.held_by.clone())
            .unwrap()
    };
    assert_eq!(held(&child.manifest_digest), vec![index.to_string()]);
    assert!(held(&loose.manifest_digest).is_empty());
    let target = format!("{}/multi/app", test.host());
    let (_, text, _) = marina(&["list-manifests", &target, "--untagged"]).await;
    let hex = &index.hex()[..12];
    let line = |d: &Digest| {
        text.lines()
            .find(|l| l.contains(&d.to_string()))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line(&child.manifest_digest).contains(&format!("(in index sha256:{hex}…)")),
        "{text}"
    );
    assert!(!line(&loose.manifest_digest).contains("in index"), "{text}");
}

/// A closed port is a connection failure, said once, not a missing feature.
#[tokio::test]
async fn a_closed_port_is_reported_as_a_connection_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for args in [
        vec!["list".to_string(), format!("127.0.0.1:{port}/")],
        vec![
            "list-tags".to_string(),
            format!("127.0.0.1:{port}/team/app"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = marina(&args).await;
        assert_ne!(code, 0);
        assert!(
            stderr.contains(&format!("cannot connect to 127.0.0.1:{port}")),
            "{stderr}"
        );
        assert!(!stderr.contains("offers neither"), "{stderr}");
        assert!(
            stderr.matches(&format!("127.0.0.1:{port}")).count() == 1,
            "{stderr}"
        );
    }
}

/// Plain HTTP to a port that speaks HTTPS says so, instead of a parser error.
#[tokio::test]
async fn http_to_an_https_port_suggests_https() {
    let ca = crate::auth_support::TestCa::new("marina test CA");
    let server = TestServer::start_with(|c| c.tls = Some(ca.tls_config(1))).await;
    let host = server.url.trim_start_matches("https://").to_string();
    let (code, _, stderr) = marina(&["list", &format!("{host}/")]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("use https://127.0.0.1:"), "{stderr}");
}

/// The usual self-signed certificate (`openssl req -x509`, marked `CA:TRUE`) is
/// accepted when it is the one given with `--ca-file`, as podman and skopeo do
/// (issue 18 item 7); one that does not name the host is still refused, and
/// the refusal says TLS.
#[tokio::test]
async fn a_self_signed_ca_certificate_given_with_ca_file_is_trusted_for_its_hosts() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    let dir = tempfile::tempdir().unwrap();
    let self_signed = |names: &[&str], stem: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (
            dir.path().join(format!("{stem}.crt")),
            dir.path().join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    };
    for (names, trusted) in [
        (&["localhost", "127.0.0.1"][..], true),
        (&["other.example"][..], false),
    ] {
        let (cert, key) = self_signed(names, names[0]);
        let tls = marina::config::TlsConfig {
            cert: cert.clone(),
            key,
            reload_secs: 60,
        };
        let server = TestServer::start_with(|c| c.tls = Some(tls)).await;
        let ca = cert.display().to_string();
        let (code, out, err) =
            marina(&["list", &format!("{}/", server.url), "--ca-file", &ca]).await;
        if trusted {
            assert_eq!(code, 0, "{out}{err}");
        } else {
            assert_ne!(
                code, 0,
                "a certificate for other.example was accepted: {out}"
            );
            assert!(err.contains("TLS"), "{err}");
        }
    }
}
