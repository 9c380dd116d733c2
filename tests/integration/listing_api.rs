//! The `_marina` listing extension over HTTP: discovery, the five scenarios,
//! paging with `n`, cursor and `Link`, filters applied before paging, sorting,
//! versioned media types, errors, pages under concurrent pushes and deletes, and
//! the OpenAPI document.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::listing_fixture::{push_untagged, scenario, REPOS, SBOM, SIGNATURE};
use crate::support::{Resp, TestServer};

const REPOSITORIES_V1: &str = "application/vnd.marina.list.repositories.v1+json";
const TAGS_V1: &str = "application/vnd.marina.list.tags.v1+json";
const MANIFESTS_V1: &str = "application/vnd.marina.list.manifests.v1+json";
const REFERRERS_V1: &str = "application/vnd.marina.list.referrers.v1+json";

/// The `Link` target of a response, if any.
fn next_of(r: &Resp) -> Option<String> {
    let l = r.header("link")?;
    assert!(l.ends_with("; rel=\"next\""), "{}", r.describe());
    Some(
        l.trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string(),
    )
}

/// Reads every page from `path`, asserting the media type and that every page but
/// the last holds exactly `n` items (filters are applied before paging).
async fn all_pages(
    s: &TestServer,
    path: &str,
    key: &str,
    media_type: &str,
    n: usize,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = Some(path.to_string());
    let mut pages = 0;
    while let Some(p) = next.take() {
        let r = s.get(&p).await;
        r.expect(200, None);
        assert_eq!(
            r.header("content-type"),
            Some(media_type),
            "{}",
            r.describe()
        );
        let page = r.json()[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {}", r.describe()))
            .clone();
        next = next_of(&r);
        if next.is_some() {
            assert_eq!(
                page.len(),
                n,
                "a page followed by a Link is full: {}",
                r.describe()
            );
        } else {
            assert!(page.len() <= n, "{}", r.describe());
        }
        items.extend(page);
        pages += 1;
        assert!(pages < 1000, "Link loop from {path}");
    }
    items
}

fn strings(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            i[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {i}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn discover_advertises_the_extension_at_both_levels() {
    let s = TestServer::start().await;
    let r = s.get("/v2/_oci/ext/discover").await;
    r.expect(200, None);
    let v = r.json();
    let ext = &v["extensions"][0];
    assert_eq!(ext["name"], "_marina");
    assert!(ext["description"].is_string());
    // The url names the extension's definition, which the registry serves.
    assert_eq!(ext["url"], "/extensions/_marina.md");
    let def = s.get("/extensions/_marina.md").await;
    def.expect(200, None);
    assert!(String::from_utf8_lossy(&def.body).contains("#### Module: `repositories`"));
    assert_eq!(
        ext["endpoints"],
        serde_json::json!(["/v2/_marina/list/repositories"])
    );
    let r = s.get("/v2/org2/team-a/image-a1/_oci/ext/discover").await;
    r.expect(200, None);
    assert_eq!(
        r.json()["extensions"][0]["endpoints"],
        serde_json::json!([
            "/v2/org2/team-a/image-a1/_marina/list/tags",
            "/v2/org2/team-a/image-a1/_marina/list/manifests",
            "/v2/org2/team-a/image-a1/_marina/list/referrers"
        ])
    );
    s.get("/v2/Bad_Name/_oci/ext/discover")
        .await
        .expect(400, Some("NAME_INVALID"));
}

/// Scenario 1: repositories of the registry, or of one namespace and everything under it.
#[tokio::test]
async fn scenario_1_repositories_of_the_registry_and_of_namespaces() {
    let s = TestServer::start().await;
    scenario(&s).await;
    let list = |q: &str| format!("/v2/_marina/list/repositories?{q}");
    for n in [1, 2, 100] {
        let all = all_pages(
            &s,
            &list(&format!("n={n}")),
            "repositories",
            REPOSITORIES_V1,
            n,
        )
        .await;
        assert_eq!(strings(&all, "name"), REPOS, "n={n}");
    }
    for (ns, want) in [
        ("org1", vec!["org1/artifact-a"]),
        ("org1/", vec!["org1/artifact-a"]),
        (
            "org2/team-a/",
            vec!["org2/team-a/image-a1", "org2/team-a/image-a2"],
        ),
        (
            "org2",
            vec![
                "org2/team-a/image-a1",
                "org2/team-a/image-a2",
                "org2/team-b/image-b1",
            ],
        ),
        ("org3/team-c", vec!["org3/team-c/image-c1"]),
        ("org4", vec![]),
    ] {
        let all = all_pages(
            &s,
            &list(&format!("namespace={ns}&n=1")),
            "repositories",
            REPOSITORIES_V1,
            1,
        )
        .await;
        assert_eq!(strings(&all, "name"), want, "namespace {ns}");
    }
    let r = s.get(&list("namespace=org2")).await;
    assert_eq!(r.json()["namespace"], "org2");
    // Push time: hello-world's referrers were pushed last.
    let by_push = all_pages(
        &s,
        &list("sort=pushed&n=4"),
        "repositories",
        REPOSITORIES_V1,
        4,
    )
    .await;
    let names = strings(&by_push, "name");
    assert_eq!(
        names.last().map(String::as_str),
        Some("hello-world"),
        "{names:?}"
    );
    assert_eq!(names[0], "org1/artifact-a");
    let times = strings(&by_push, "pushedAt");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let desc = all_pages(
        &s,
        &list("sort=pushed&order=desc&n=4"),
        "repositories",
        REPOSITORIES_V1,
        4,
    )
    .await;
    let mut reversed = names.clone();
    reversed.reverse();
    assert_eq!(strings(&desc, "name"), reversed);
    let desc = all_pages(
        &s,
        &list("order=desc&n=5"),
        "repositories",
        REPOSITORIES_V1,
        5,
    )
    .await;
    let mut want: Vec<&str> = REPOS.to_vec();
    want.reverse();
    assert_eq!(strings(&desc, "name"), want);
    s.get(&list("namespace=Org1"))
        .await
        .expect(400, Some("NAME_INVALID"));
}

/// Scenario 2 and 5: tags with digest and push time; the tags pointing at a digest.
#[tokio::test]
async fn scenario_2_and_5_tags_with_digests_push_times_and_by_digest() {
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let tags = all_pages(
        &s,
        "/v2/hello-world/_marina/list/tags",
        "tags",
        TAGS_V1,
        100,
    )
    .await;
    assert_eq!(strings(&tags, "name"), ["latest", "sig", "v1"]);
    assert_eq!(tags[0]["digest"], sc.hello.to_string());
    assert_eq!(tags[1]["digest"], sc.sig_alice.to_string());
    assert_eq!(tags[2]["digest"], sc.hello.to_string());
    for t in &tags {
        let at = t["pushedAt"].as_str().unwrap();
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "RFC 3339: {at}"
        );
    }
    let by_push = all_pages(
        &s,
        "/v2/hello-world/_marina/list/tags?sort=pushed&order=desc&n=1",
        "tags",
        TAGS_V1,
        1,
    )
    .await;
    assert_eq!(strings(&by_push, "name"), ["sig", "v1", "latest"]);
    // Scenario 5.
    let path = format!("/v2/hello-world/_marina/list/tags?digest={}&n=1", sc.hello);
    let at = all_pages(&s, &path, "tags", TAGS_V1, 1).await;
    assert_eq!(strings(&at, "name"), ["latest", "v1"]);
    let r = s.get(&path).await;
    assert_eq!(r.json()["digest"], sc.hello.to_string());
    let none = all_pages(
        &s,
        &format!(
            "/v2/hello-world/_marina/list/tags?digest={}",
            sc.hello_untagged
        ),
        "tags",
        TAGS_V1,
        100,
    )
    .await;
    assert!(none.is_empty());
    // Tags filtered by their manifest.
    let t = all_pages(
        &s,
        &format!("/v2/hello-world/_marina/list/tags?artifactType={SIGNATURE}"),
        "tags",
        TAGS_V1,
        100,
    )
    .await;
    assert_eq!(strings(&t, "name"), ["sig"]);
    let t = all_pages(
        &s,
        "/v2/org1/artifact-a/_marina/list/tags?annotation=org.opencontainers.image.version%3D2",
        "tags",
        TAGS_V1,
        100,
    )
    .await;
    assert_eq!(strings(&t, "name"), ["v2"]);
    s.get("/v2/nope/_marina/list/tags")
        .await
        .expect(404, Some("NAME_UNKNOWN"));
    s.get("/v2/hello-world/_marina/list/tags?digest=sha256:zz")
        .await
        .expect(400, Some("DIGEST_INVALID"));
}

/// Scenario 3: manifests, tagged and untagged, with every field.
#[tokio::test]
async fn scenario_3_manifests_tagged_and_untagged_with_every_field() {
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let all = all_pages(
        &s,
        "/v2/hello-world/_marina/list/manifests?n=2",
        "manifests",
        MANIFESTS_V1,
        2,
    )
    .await;
    let want: BTreeSet<String> = [
        &sc.hello,
        &sc.hello_untagged,
        &sc.sig_alice,
        &sc.sig_bob,
        &sc.sbom,
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    let got = strings(&all, "digest");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted, "sorted by digest");
    for m in &all {
        let d = m["digest"].as_str().unwrap();
        let r = s.get(&format!("/v2/hello-world/manifests/{d}")).await;
        assert_eq!(m["size"], r.body.len(), "{m}");
        assert_eq!(m["mediaType"].as_str(), r.header("content-type"), "{m}");
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        let artifact_type = doc
            .get("artifactType")
            .or_else(|| doc.get("config").map(|c| &c["mediaType"]));
        assert_eq!(m.get("artifactType"), artifact_type, "{m}");
        assert_eq!(m.get("annotations"), doc.get("annotations"), "{m}");
        assert_eq!(
            m.get("subject"),
            doc.get("subject").map(|s| &s["digest"]),
            "{m}"
        );
        assert!(m["pushedAt"].is_string());
    }
    let hello = all
        .iter()
        .find(|m| m["digest"] == sc.hello.to_string())
        .unwrap();
    assert_eq!(hello["tags"], serde_json::json!(["latest", "v1"]));
    let untagged = all_pages(
        &s,
        "/v2/hello-world/_marina/list/manifests?tagged=false&n=1",
        "manifests",
        MANIFESTS_V1,
        1,
    )
    .await;
    let want: BTreeSet<String> = [&sc.hello_untagged, &sc.sig_bob, &sc.sbom]
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        strings(&untagged, "digest")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        want
    );
    assert!(untagged.iter().all(|m| m["tags"] == serde_json::json!([])));
    let tagged = all_pages(
        &s,
        "/v2/hello-world/_marina/list/manifests?tagged=true",
        "manifests",
        MANIFESTS_V1,
        100,
    )
    .await;
    assert_eq!(tagged.len(), 2);
    // Annotation filters, key present and key=value, applied before paging.
    let a = all_pages(
        &s,
        "/v2/org1/artifact-a/_marina/list/manifests?annotation=org.example.team&n=1",
        "manifests",
        MANIFESTS_V1,
        1,
    )
    .await;
    assert_eq!(a.len(), 3);
    let a = all_pages(&s, "/v2/org1/artifact-a/_marina/list/manifests?annotation=org.opencontainers.image.version%3D0", "manifests", MANIFESTS_V1, 100).await;
    assert_eq!(strings(&a, "digest"), [sc.artifact_untagged.to_string()]);
    let a = all_pages(
        &s,
        "/v2/org1/artifact-a/_marina/list/manifests?sort=pushed&order=desc&n=1",
        "manifests",
        MANIFESTS_V1,
        1,
    )
    .await;
    assert_eq!(
        strings(&a, "digest"),
        [
            sc.artifact_untagged.to_string(),
            sc.artifact_v2.to_string(),
            sc.artifact_v1.to_string()
        ]
    );
    let a = all_pages(&s, "/v2/hello-world/_marina/list/manifests?annotation=org.opencontainers.image.created&artifactType=application%2Fspdx%2Bjson", "manifests", MANIFESTS_V1, 100).await;
    assert_eq!(strings(&a, "digest"), [sc.sbom.to_string()]);
}

/// Scenario 4: referrers of a digest, as the referrers API gives them, with the filters.
#[tokio::test]
async fn scenario_4_referrers_with_filters_match_the_referrers_api() {
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let base = format!(
        "/v2/hello-world/_marina/list/referrers?subject={}",
        sc.hello
    );
    let ext = all_pages(&s, &format!("{base}&n=1"), "manifests", REFERRERS_V1, 1).await;
    let api = s
        .get(&format!("/v2/hello-world/referrers/{}", sc.hello))
        .await
        .json();
    let api_set: BTreeSet<String> = api["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        strings(&ext, "digest").into_iter().collect::<BTreeSet<_>>(),
        api_set
    );
    assert_eq!(api_set.len(), 3);
    for m in api["manifests"].as_array().unwrap() {
        let e = ext.iter().find(|e| e["digest"] == m["digest"]).unwrap();
        for f in ["mediaType", "size", "artifactType", "annotations"] {
            assert_eq!(e[f], m[f], "{f} of {}", m["digest"]);
        }
        assert_eq!(e["subject"], sc.hello.to_string());
    }
    let r = s.get(&base).await;
    assert_eq!(r.json()["subject"], sc.hello.to_string());
    let sigs = all_pages(
        &s,
        &format!("{base}&artifactType={SIGNATURE}&n=1"),
        "manifests",
        REFERRERS_V1,
        1,
    )
    .await;
    let want: BTreeSet<String> = [sc.sig_alice.to_string(), sc.sig_bob.to_string()].into();
    assert_eq!(
        strings(&sigs, "digest")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        want
    );
    let bob = all_pages(
        &s,
        &format!("{base}&annotation=org.example.signer%3Dbob"),
        "manifests",
        REFERRERS_V1,
        100,
    )
    .await;
    assert_eq!(strings(&bob, "digest"), [sc.sig_bob.to_string()]);
    let created = all_pages(
        &s,
        &format!("{base}&annotation=org.opencontainers.image.created&sort=pushed&order=desc"),
        "manifests",
        REFERRERS_V1,
        100,
    )
    .await;
    assert_eq!(
        strings(&created, "digest"),
        [sc.sbom.to_string(), sc.sig_alice.to_string()]
    );
    let sbom = all_pages(
        &s,
        &format!("{base}&artifactType={}", SBOM.replace('+', "%2B")),
        "manifests",
        REFERRERS_V1,
        100,
    )
    .await;
    assert_eq!(strings(&sbom, "digest"), [sc.sbom.to_string()]);
    let tagged = all_pages(
        &s,
        &format!("{base}&tagged=true"),
        "manifests",
        REFERRERS_V1,
        100,
    )
    .await;
    assert_eq!(strings(&tagged, "digest"), [sc.sig_alice.to_string()]);
    let none = all_pages(
        &s,
        &format!(
            "/v2/hello-world/_marina/list/referrers?subject={}",
            sc.hello_untagged
        ),
        "manifests",
        REFERRERS_V1,
        100,
    )
    .await;
    assert!(none.is_empty());
    s.get("/v2/hello-world/_marina/list/referrers")
        .await
        .expect(400, None);
}

#[tokio::test]
async fn paging_rules_media_types_and_errors() {
    let s = TestServer::start().await;
    scenario(&s).await;
    // n=0: an empty page without Link.
    let r = s.get("/v2/_marina/list/repositories?n=0").await;
    r.expect(200, None);
    assert_eq!(r.json()["repositories"], serde_json::json!([]));
    assert!(r.header("link").is_none(), "{}", r.describe());
    // The last page has no Link.
    let r = s.get("/v2/_marina/list/repositories?n=6").await;
    assert!(r.header("link").is_none(), "{}", r.describe());
    // The Link carries the sort and filters.
    let r = s.get("/v2/org1/artifact-a/_marina/list/manifests?n=1&sort=pushed&order=desc&annotation=org.example.team&artifactType=application%2Fvnd.example.chart&tagged=true").await;
    let link = next_of(&r).expect("a Link");
    for p in [
        "n=1",
        "sort=pushed",
        "order=desc",
        "annotation=org.example.team",
        "artifactType=application%2Fvnd.example.chart",
        "tagged=true",
        "next=",
    ] {
        assert!(link.contains(p), "{p} missing from {link}");
    }
    // A cursor belongs to its sort.
    let token = link.split("next=").nth(1).unwrap();
    let r = s
        .get(&format!(
            "/v2/org1/artifact-a/_marina/list/manifests?n=1&sort=name&next={token}"
        ))
        .await;
    r.expect(400, Some("UNSUPPORTED"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("sort"),
        "{}",
        r.describe()
    );
    s.get("/v2/org1/artifact-a/_marina/list/manifests?next=zz")
        .await
        .expect(400, Some("UNSUPPORTED"));
    s.get("/v2/org1/artifact-a/_marina/list/manifests?sort=size")
        .await
        .expect(400, Some("UNSUPPORTED"));
    s.get("/v2/org1/artifact-a/_marina/list/manifests?annotation=%3Dx")
        .await
        .expect(400, Some("UNSUPPORTED"));
    // Versioned media types: application/json and wildcards accepted, another version refused.
    for accept in [MANIFESTS_V1, "application/json", "*/*", "application/*"] {
        let r = s
            .req(
                reqwest::Method::GET,
                "/v2/org1/artifact-a/_marina/list/manifests",
            )
            .await
            .header("Accept", accept)
            .send()
            .await;
        r.expect(200, None);
        assert_eq!(r.header("content-type"), Some(MANIFESTS_V1));
    }
    let r = s
        .req(
            reqwest::Method::GET,
            "/v2/org1/artifact-a/_marina/list/manifests",
        )
        .await
        .header("Accept", "application/vnd.marina.list.manifests.v2+json")
        .send()
        .await;
    r.expect(406, Some("UNSUPPORTED"));
    // The registry caps n.
    let capped = TestServer::start_with(|c| c.registry.max_list_page = 2).await;
    scenario(&capped).await;
    let r = capped.get("/v2/_marina/list/repositories?n=50").await;
    assert_eq!(r.json()["repositories"].as_array().unwrap().len(), 2);
    assert!(next_of(&r).unwrap().contains("n=2"), "{}", r.describe());
    let all = all_pages(
        &capped,
        "/v2/_marina/list/repositories?n=50",
        "repositories",
        REPOSITORIES_V1,
        2,
    )
    .await;
    assert_eq!(all.len(), REPOS.len());
}

/// Keyset pages stay correct while tags are pushed and deleted between them: every
/// tag present throughout is listed exactly once, in order; a tag deleted before the
/// cursor reaches it is not listed; one added ahead of the cursor is.
#[tokio::test]
async fn pages_stay_correct_while_tags_are_pushed_and_deleted_between_them() {
    let s = TestServer::start().await;
    let (m, _) = s.push_image("busy/app", "t00", "busy").await;
    let mt = crate::support::OCI_MANIFEST;
    for i in 1..30 {
        s.push_manifest("busy/app", &format!("t{i:02}"), mt, &m)
            .await;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some("/v2/busy/app/_marina/list/tags?n=5".to_string());
    let mut round = 0;
    while let Some(p) = next.take() {
        let r = s.get(&p).await;
        r.expect(200, None);
        seen.extend(strings(r.json()["tags"].as_array().unwrap(), "name"));
        next = next_of(&r);
        match round {
            0 => {
                // Behind the cursor (t04): deleting one, adding one changes nothing ahead.
                s.delete("/v2/busy/app/manifests/t01")
                    .await
                    .expect(202, None);
                s.push_manifest("busy/app", "t02a", mt, &m).await;
                // Ahead: delete t10, add t15a and t99.
                s.delete("/v2/busy/app/manifests/t10")
                    .await
                    .expect(202, None);
                s.push_manifest("busy/app", "t15a", mt, &m).await;
                s.push_manifest("busy/app", "t99", mt, &m).await;
            }
            2 => {
                // Delete the very tag the cursor points at (t14): the next page still follows it.
                s.delete("/v2/busy/app/manifests/t14")
                    .await
                    .expect(202, None);
                push_untagged(&s, "busy/app", "noise").await;
            }
            _ => {}
        }
        round += 1;
    }
    let mut want: Vec<String> = (0..30)
        .map(|i| format!("t{i:02}"))
        .filter(|t| t != "t10")
        .collect();
    want.push("t15a".into());
    want.push("t99".into());
    want.sort();
    assert_eq!(seen, want);

    // In push order, re-pushed tags move to the end and are met again there, once.
    let mut seen = Vec::new();
    let mut next = Some("/v2/busy/app/_marina/list/tags?n=4&sort=pushed".to_string());
    let mut first = true;
    while let Some(p) = next.take() {
        let r = s.get(&p).await;
        seen.extend(strings(r.json()["tags"].as_array().unwrap(), "name"));
        next = next_of(&r);
        if first {
            s.push_manifest("busy/app", "t00", mt, &m).await;
            s.push_manifest("busy/app", "t20", mt, &m).await;
            first = false;
        }
    }
    assert_eq!(seen.iter().filter(|t| *t == "t00").count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|t| *t == "t20").count(), 1, "{seen:?}");
    assert_eq!(&seen[seen.len() - 2..], ["t00", "t20"], "{seen:?}");
}

#[test]
fn the_extension_is_in_the_openapi_document() {
    let doc: Value = serde_json::from_str(&marina::openapi_document().unwrap()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, media_type) in [
        (
            "/v2/_oci/ext/discover",
            Some("application/json; charset=utf-8"),
        ),
        (
            "/v2/{name}/_oci/ext/discover",
            Some("application/json; charset=utf-8"),
        ),
        ("/v2/_marina/list/repositories", Some(REPOSITORIES_V1)),
        ("/v2/{name}/_marina/list/tags", Some(TAGS_V1)),
        ("/v2/{name}/_marina/list/manifests", Some(MANIFESTS_V1)),
        ("/v2/{name}/_marina/list/referrers", Some(REFERRERS_V1)),
    ] {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))["get"];
        assert!(op["operationId"].is_string(), "{path}");
        let content = &op["responses"]["200"]["content"];
        if let Some(mt) = media_type {
            assert!(
                content.get(mt).is_some(),
                "{path} documents {mt}: {content}"
            );
        }
        assert!(
            op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with('4')),
            "{path} documents no errors"
        );
    }
    let tags = &paths["/v2/{name}/_marina/list/manifests"]["get"]["parameters"];
    let names: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "name",
        "artifactType",
        "annotation",
        "tagged",
        "n",
        "next",
        "sort",
        "order",
    ] {
        assert!(names.contains(&p), "parameter {p} missing: {names:?}");
    }
}

/// "Try it out" in /docs sends the name percent-encoded.
#[tokio::test]
async fn percent_encoded_names_work_for_the_extension() {
    let s = TestServer::start().await;
    scenario(&s).await;
    let r = s
        .get("/v2/org2%2Fteam-a%2Fimage-a1/_marina/list/tags")
        .await;
    r.expect(200, None);
    assert_eq!(r.json()["repository"], "org2/team-a/image-a1");
}

/// Regression: `--referrers false` made the referrers API answer 404 while the
/// listing extension still listed referrers. One switch governs both.
#[tokio::test]
async fn the_referrers_switch_also_turns_off_the_listings_referrers_module() {
    let s = TestServer::start_with(|c| c.registry.referrers = false).await;
    let sc = scenario(&s).await;
    s.get(&format!("/v2/hello-world/referrers/{}", sc.hello))
        .await
        .expect(404, Some("UNSUPPORTED"));
    s.get(&format!(
        "/v2/hello-world/_marina/list/referrers?subject={}",
        sc.hello
    ))
    .await
    .expect(404, Some("UNSUPPORTED"));
    let d = s.get("/v2/hello-world/_oci/ext/discover").await.json();
    let endpoints = d.to_string();
    assert!(!endpoints.contains("/list/referrers"), "{endpoints}");
    assert!(endpoints.contains("/list/manifests"), "{endpoints}");
    // Tags and manifests are still listed.
    s.get("/v2/hello-world/_marina/list/tags")
        .await
        .expect(200, None);
}
