//! The generated OpenAPI document: committed copy in sync, every endpoint present,
//! served at /openapi.json, browsable at /docs.

use crate::support::TestServer;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/openapi.json");

#[test]
fn committed_document_matches_the_generated_one() {
    let generated = marina::openapi_document().expect("document");
    if std::env::var_os("MARINA_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert_eq!(
        committed.trim_end(),
        generated.trim_end(),
        "spec/openapi.json is stale: run `MARINA_UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
}

#[test]
fn every_endpoint_of_the_spec_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&marina::openapi_document().unwrap()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let want: &[(&str, &[&str])] = &[
        ("/v2", &["get"]),
        ("/v2/{name}/blobs/{digest}", &["get", "head", "delete"]),
        (
            "/v2/{name}/manifests/{reference}",
            &["get", "head", "put", "delete"],
        ),
        ("/v2/{name}/blobs/uploads", &["post"]),
        (
            "/v2/{name}/blobs/uploads/{session}",
            &["get", "patch", "put", "delete"],
        ),
        ("/v2/{name}/tags/list", &["get"]),
        ("/v2/{name}/referrers/{digest}", &["get"]),
        ("/v2/_catalog", &["get"]),
    ];
    for (path, methods) in want {
        let ops = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
        for m in *methods {
            let op = ops.get(*m).unwrap_or_else(|| panic!("{m} {path} missing"));
            assert!(op["operationId"].is_string());
            if *path != "/v2" {
                assert!(
                    op["responses"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .any(|k| k.starts_with('4')),
                    "{m} {path} documents no errors"
                );
            }
        }
    }
}

/// Every operation says how it may authenticate (Basic, Bearer, or anonymously),
/// and the token endpoint of token mode is documented.
#[test]
fn security_schemes_and_the_token_endpoint_are_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&marina::openapi_document().unwrap()).unwrap();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic", "{schemes}");
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    let want = serde_json::json!([{"basic": []}, {"bearer": []}, {}]);
    let mut operations = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if path == "/token" && method == "post" {
                continue; // the form carries the credentials
            }
            if path == "/healthz" || path == "/readyz" {
                // Orchestrators probe without credentials: open, and said so.
                assert!(op["security"].is_null(), "{method} {path}: {op}");
                continue;
            }
            assert_eq!(op["security"], want, "{method} {path}");
            operations += 1;
        }
    }
    assert!(operations >= 23, "{operations} operations");
    let token = &doc["paths"]["/token"];
    assert!(token["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "scope"));
    assert!(token["post"]["requestBody"]["content"]
        .get("application/x-www-form-urlencoded")
        .is_some());
}

/// Without access control there is no token service: a clear 404, not a token.
#[tokio::test]
async fn token_endpoint_without_access_control_says_so() {
    let s = TestServer::start().await;
    let r = s.get("/token?service=marina&scope=repository:a:pull").await;
    r.expect(404, Some("UNSUPPORTED"));
}

#[tokio::test]
async fn served_document_and_docs_page() {
    let s = TestServer::start().await;
    let r = s.get("/openapi.json").await;
    r.expect(200, None);
    let served: serde_json::Value = r.json();
    let generated: serde_json::Value =
        serde_json::from_str(&marina::openapi_document().unwrap()).unwrap();
    assert_eq!(served["paths"], generated["paths"]);
    let r = s.get("/docs").await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.describe()
    );
    let r = s.get("/docs/").await;
    r.expect(200, None);
    assert!(
        String::from_utf8_lossy(&r.body).contains("swagger"),
        "docs page is Swagger UI"
    );
}

/// "Try it out" sends repository names percent-encoded; they must route like raw ones.
#[tokio::test]
async fn percent_encoded_names_work_like_raw_ones() {
    let s = TestServer::start().await;
    let (m, _) = s.push_image("org/team/app", "v1", "enc").await;
    let r = s.get("/v2/org%2Fteam%2Fapp/manifests/v1").await;
    r.expect(200, None);
    assert_eq!(r.body, m);
    s.get("/v2/org%2Fteam%2Fapp/tags/list")
        .await
        .expect(200, None);
}

/// schemathesis (a property-based API fuzzer) against the served document: no
/// server error, no status or header or body the document does not describe, no
/// accepted request that the document says is invalid. Its check that every
/// schema-valid request is accepted is left out: digests that do not match their
/// content, cursors this registry did not issue and filter syntax are rejected
/// with the spec's 4xx, and no schema can say so. So is its check that a
/// session just opened can still be deleted: its own steps close it between
/// (a closing `PUT` whose digest does not match ends the session, as documented).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_describe() {
    schemathesis_against(&TestServer::start().await).await;
}

/// Runs schemathesis against `server`'s document (see the test above).
pub(crate) async fn schemathesis_against(server: &TestServer) {
    let installed = std::process::Command::new("st")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !installed {
        crate::support::missing_tool("schemathesis (`st`)", "pip install schemathesis");
        return;
    }
    let url = format!("{}/openapi.json", server.url);
    // schemathesis keeps a cache in its working directory: not in the repository.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("st")
            .current_dir(&cwd)
            .args([
                "run",
                &url,
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--no-color",
            ])
            .args([
                "--exclude-checks",
                "positive_data_acceptance,ensure_resource_availability",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("generated"), "{report}");
}
