//! Real clients against the in-process server: skopeo copies an OCI layout in and
//! back byte for byte; buildah builds an image from scratch and pushes it; podman
//! pulls it and pushes it again. Each test is skipped, with a message saying so,
//! when its tool is not installed (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

use marina::oci::Algorithm;
use serde_json::json;

use crate::support::TestServer;

pub(crate) fn tool(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        crate::support::missing_tool(&format!("`{name}`"), &format!("apt-get install {name}"));
    }
    found
}

pub(crate) async fn run(program: &str, args: Vec<String>) -> String {
    let shown = format!("{program} {}", args.join(" "));
    let (program, args2) = (program.to_string(), args.clone());
    let out = tokio::task::spawn_blocking(move || Command::new(program).args(args2).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let d = Algorithm::Sha256.digest_of(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(d.hex()), bytes).unwrap();
    (d.to_string(), bytes.len())
}

/// An OCI image layout with one image of a 300 KiB layer, tagged `v1`.
fn make_layout(layout: &Path) -> String {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (ld, ll) = write_blob(layout, &layer);
    let config = serde_json::to_vec(
        &json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[ld]}}),
    )
    .unwrap();
    let (cd, cl) = write_blob(layout, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ll}],
        "annotations": {"org.example.test": "skopeo round trip"}
    }))
    .unwrap();
    let (md, ml) = write_blob(layout, &manifest);
    let index = json!({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":md,"size":ml,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    md
}

fn blob_files(layout: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_an_oci_layout_in_and_back_byte_for_byte() {
    skopeo_round_trip(&TestServer::start().await.url).await;
}

/// skopeo pushes an OCI layout to the registry at `url` and copies it back byte
/// for byte.
pub(crate) async fn skopeo_round_trip(url: &str) {
    if !tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let back = work.path().join("back");
    let manifest_digest = make_layout(&src);
    let host = url.trim_start_matches("http://").to_string();
    let p = |p: &Path| p.display().to_string();
    run(
        "skopeo",
        vec![
            "copy".into(),
            "--dest-tls-verify=false".into(),
            "--preserve-digests".into(),
            format!("oci:{}:v1", p(&src)),
            format!("docker://{host}/skopeo/image:v1"),
        ],
    )
    .await;
    let r = reqwest::Client::new()
        .get(format!("{url}/v2/skopeo/image/manifests/v1"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
        Some(manifest_digest.as_str())
    );
    run(
        "skopeo",
        vec![
            "copy".into(),
            "--src-tls-verify=false".into(),
            "--preserve-digests".into(),
            format!("docker://{host}/skopeo/image:v1"),
            format!("oci:{}:v1", p(&back)),
        ],
    )
    .await;
    assert_eq!(
        blob_files(&src),
        blob_files(&back),
        "blobs differ after the round trip"
    );
    let inspect = run(
        "skopeo",
        vec![
            "inspect".into(),
            "--tls-verify=false".into(),
            "--raw".into(),
            format!("docker://{host}/skopeo/image:v1"),
        ],
    )
    .await;
    assert_eq!(
        Algorithm::Sha256
            .digest_of(inspect.trim_end_matches('\n').as_bytes())
            .to_string(),
        manifest_digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildah_builds_and_pushes_podman_pulls_and_pushes() {
    buildah_and_podman(&TestServer::start().await).await;
}

/// buildah builds and pushes an image to `s`; podman pulls it and pushes it on.
pub(crate) async fn buildah_and_podman(s: &TestServer) {
    if !tool("buildah") || !tool("podman") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let runroot = work.path().join("runroot");
    let storage = [
        "--storage-driver".to_string(),
        "vfs".into(),
        "--root".into(),
        root.display().to_string(),
        "--runroot".into(),
        runroot.display().to_string(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        storage
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let podman = |extra: &[&str]| -> Vec<String> {
        storage
            .iter()
            .cloned()
            .chain([
                "--cgroup-manager=cgroupfs".to_string(),
                "--events-backend=file".into(),
            ])
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let host = s.url.trim_start_matches("http://").to_string();
    let file = work.path().join("hello.txt");
    std::fs::write(&file, "hello from marina's test\n").unwrap();
    let container = run("buildah", with(&["from", "scratch"]))
        .await
        .trim()
        .to_string();
    run(
        "buildah",
        with(&[
            "copy",
            &container,
            &file.display().to_string(),
            "/hello.txt",
        ]),
    )
    .await;
    run(
        "buildah",
        with(&["config", "--cmd", "/hello.txt", &container]),
    )
    .await;
    run(
        "buildah",
        with(&["commit", &container, "localhost/marina-test:v1"]),
    )
    .await;
    let target = format!("docker://{host}/built/by-buildah:v1");
    run(
        "buildah",
        with(&[
            "push",
            "--tls-verify=false",
            "localhost/marina-test:v1",
            &target,
        ]),
    )
    .await;
    s.get("/v2/built/by-buildah/manifests/v1")
        .await
        .expect(200, None);

    let pulled = format!("{host}/built/by-buildah:v1");
    run("podman", podman(&["pull", "--tls-verify=false", &pulled])).await;
    let repushed = format!("{host}/pushed/by-podman:v2");
    run("podman", podman(&["tag", &pulled, &repushed])).await;
    run("podman", podman(&["push", "--tls-verify=false", &repushed])).await;
    let a = s.get("/v2/built/by-buildah/manifests/v1").await;
    let b = s.get("/v2/pushed/by-podman/manifests/v2").await;
    b.expect(200, None);
    // Same image content: the config digest is the image id either way.
    let config = |r: &crate::support::Resp| r.json()["config"]["digest"].clone();
    assert_eq!(config(&a), config(&b));
    let tags = s.get("/v2/_catalog").await.json();
    assert_eq!(
        tags["repositories"],
        json!(["built/by-buildah", "pushed/by-podman"])
    );
}
