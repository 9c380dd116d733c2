//! Tag listing and the catalog: order, `n`, `last`, `Link`, unknown repositories.

use std::collections::BTreeSet;

use crate::assert_transcript;
use crate::support::{image_manifest, TestServer, OCI_MANIFEST};

async fn tag_all(s: &TestServer, repo: &str, tags: &[&str]) {
    let c = s.push_blob(repo, b"{}").await;
    let m = image_manifest(&c, 2, &[], None, None);
    for t in tags {
        s.push_manifest(repo, t, OCI_MANIFEST, &m).await;
    }
}

fn tags_of(v: &serde_json::Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn tags_are_listed_in_lexical_order_with_name() {
    let s = TestServer::start().await;
    tag_all(
        &s,
        "org/app",
        &["b", "TEST0", "a", "test0", "B", "1.0", "_x"],
    )
    .await;
    let r = s.get("/v2/org/app/tags/list").await;
    r.expect(200, None);
    let v = r.json();
    assert_eq!(v["name"], "org/app");
    let tags = tags_of(&v);
    let mut sorted = tags.clone();
    sorted.sort();
    assert_eq!(tags, sorted);
    assert_eq!(tags.len(), 7);
    assert!(r.header("link").is_none());
    assert_transcript!("tags_list", r.transcript());
}

#[tokio::test]
async fn n_last_and_link_walk_the_whole_list() {
    let s = TestServer::start().await;
    let all: Vec<String> = (0..23).map(|i| format!("v{i:02}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    tag_all(&s, "app", &refs).await;
    let mut seen = Vec::new();
    let mut next = Some("/v2/app/tags/list?n=5".to_string());
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        assert!(pages < 20, "pagination does not end");
        let r = s.get(&path).await;
        r.expect(200, None);
        let tags = tags_of(&r.json());
        assert!(tags.len() <= 5);
        if let Some(link) = r.header("link") {
            assert_eq!(tags.len(), 5, "a page with a Link is full");
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            next = Some(link[1..link.find('>').unwrap()].to_string());
        }
        seen.extend(tags);
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, all);
    let r = s.get("/v2/app/tags/list?n=5&last=v03").await;
    assert_eq!(tags_of(&r.json()), ["v04", "v05", "v06", "v07", "v08"]);
    assert_transcript!("tags_page", r.transcript());
    let r = s.get("/v2/app/tags/list?last=v20").await;
    assert_eq!(tags_of(&r.json()), ["v21", "v22"]);
    let r = s.get("/v2/app/tags/list?n=0").await;
    r.expect(200, None);
    assert!(tags_of(&r.json()).is_empty());
    assert!(r.header("link").is_none());
    s.get("/v2/app/tags/list?n=-1").await.expect(400, None);
    s.get("/v2/app/tags/list?n=abc").await.expect(400, None);
}

#[tokio::test]
async fn unknown_repository_and_empty_repository() {
    let s = TestServer::start().await;
    let r = s.get("/v2/nothing/here/tags/list").await;
    r.expect(404, Some("NAME_UNKNOWN"));
    assert_transcript!("tags_unknown_repo", r.transcript());
    // A repository with only blobs exists but has no tags.
    s.push_blob("blobs/only", b"x").await;
    let r = s.get("/v2/blobs/only/tags/list").await;
    r.expect(200, None);
    assert!(tags_of(&r.json()).is_empty());
}

#[tokio::test]
async fn catalog_pages_and_forgets_emptied_repositories() {
    let s = TestServer::start().await;
    let mut names = BTreeSet::new();
    for i in 0..7 {
        let name = format!("team{}/app{i}", i % 3);
        s.push_image(&name, "v1", &name).await;
        names.insert(name);
    }
    let mut seen = Vec::new();
    let mut next = Some("/v2/_catalog?n=3".to_string());
    while let Some(path) = next.take() {
        let r = s.get(&path).await;
        r.expect(200, None);
        let v = r.json();
        seen.extend(
            v["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string()),
        );
        next = r
            .header("link")
            .map(|l| l[1..l.find('>').unwrap()].to_string());
        assert!(seen.len() <= 7);
    }
    assert_eq!(seen, names.iter().cloned().collect::<Vec<_>>());
    let d = s
        .get("/v2/team0/app0/manifests/v1")
        .await
        .header("docker-content-digest")
        .unwrap()
        .to_string();
    s.delete(&format!("/v2/team0/app0/manifests/{d}"))
        .await
        .expect(202, None);
    let r = s.get("/v2/_catalog").await;
    let repos = r.json()["repositories"].clone();
    assert!(
        !repos.as_array().unwrap().iter().any(|x| x == "team0/app0"),
        "{}",
        r.describe()
    );
    assert_eq!(repos.as_array().unwrap().len(), 6);
}

/// The library's builder caps list pages like the config file does.
#[tokio::test]
async fn the_builder_s_max_list_page_caps_tag_lists() {
    let test = marina::testing::TestRegistry::start_with(
        marina::Registry::builder().in_memory().max_list_page(2),
        None,
    )
    .await;
    for tag in ["a", "b", "c"] {
        test.push_image("app", tag).await;
    }
    let r = reqwest::get(format!("{}/v2/app/tags/list?n=100", test.url()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("n=2&last=b"), "{link}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!(["a", "b"]));
}
