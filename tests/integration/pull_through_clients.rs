//! Real clients pulling through the cache, each the way it is configured in
//! practice: skopeo by the cache's prefix, podman through a `registries.conf`
//! mirror, and containerd (`ctr`) through a `hosts.toml` mirror, which sends
//! `?ns=`. The upstream host name `up.example` does not resolve, so a pull
//! that succeeds came through Marina. Each test is skipped, with a message,
//! when its tool is missing (and fails under CI, which installs them).

use std::path::Path;

use marina::config::UpstreamConfig;
use marina::oci::{Algorithm, Digest};

use crate::clients::{run, tool};
use crate::support::{TestServer, OCI_MANIFEST};

/// An image a runtime can unpack: one tar layer holding `/hello.txt`.
struct Image {
    manifest: Vec<u8>,
    layer: Vec<u8>,
    layer_digest: Digest,
}

/// Pushes [`Image`] to `up` as `team/app:v1`.
async fn push_runnable_image(up: &TestServer, work: &Path) -> Image {
    let root = work.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "pulled through marina\n").unwrap();
    let tar = work.join("layer.tar");
    run(
        "tar",
        vec![
            "-cf".into(),
            tar.display().to_string(),
            "-C".into(),
            root.display().to_string(),
            "hello.txt".into(),
        ],
    )
    .await;
    let layer = std::fs::read(&tar).unwrap();
    let layer_digest = Algorithm::Sha256.digest_of(&layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))
    .unwrap();
    let config_digest = up.push_blob("team/app", &config).await;
    up.push_blob("team/app", &layer).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    up.push_manifest("team/app", "v1", OCI_MANIFEST, &manifest)
        .await;
    Image {
        manifest,
        layer,
        layer_digest,
    }
}

/// A cache of `up` for `up.example`, under `cache/up/`.
async fn cache_of(up: &TestServer) -> TestServer {
    let upstream = UpstreamConfig {
        timeout_secs: 10,
        ..crate::pull_through::upstream(&up.url)
    };
    TestServer::start_with(move |c| c.registry.upstreams = vec![upstream]).await
}

fn host_of(s: &TestServer) -> String {
    s.url.trim_start_matches("http://").to_string()
}

/// After a client's pull: the cache holds the image (a hit, not a miss).
async fn assert_cached(cache: &TestServer, image: &Image) {
    let m = cache.get("/v2/cache/up/team/app/manifests/v1").await;
    m.expect(200, None);
    assert_eq!(m.header("marina-cache"), Some("hit"));
    assert_eq!(m.body, image.manifest);
    let b = cache
        .get(&format!(
            "/v2/cache/up/team/app/blobs/{}",
            image.layer_digest
        ))
        .await;
    assert_eq!(b.header("marina-cache"), Some("hit"));
    assert_eq!(b.body, image.layer);
}

#[tokio::test]
async fn skopeo_copies_from_the_cache_by_prefix() {
    if !tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let up = TestServer::start().await;
    let image = push_runnable_image(&up, work.path()).await;
    let cache = cache_of(&up).await;
    let out = work.path().join("out");
    run(
        "skopeo",
        vec![
            "copy".into(),
            "--preserve-digests".into(),
            "--src-tls-verify=false".into(),
            format!("docker://{}/cache/up/team/app:v1", host_of(&cache)),
            format!("oci:{}:v1", out.display()),
        ],
    )
    .await;
    let blob = |d: &Digest| {
        std::fs::read(
            out.join("blobs/sha256")
                .join(d.to_string().trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    assert_eq!(
        blob(&Algorithm::Sha256.digest_of(&image.manifest)),
        image.manifest
    );
    assert_eq!(blob(&image.layer_digest), image.layer);
    assert_cached(&cache, &image).await;
}

#[tokio::test]
async fn podman_pulls_through_a_registries_conf_mirror() {
    if !tool("podman") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let up = TestServer::start().await;
    let image = push_runnable_image(&up, work.path()).await;
    let cache = cache_of(&up).await;
    let conf = work.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "unqualified-search-registries = []\n\n[[registry]]\nprefix = \"up.example\"\nlocation = \"up.example\"\n\n[[registry.mirror]]\nlocation = \"{}/cache/up\"\ninsecure = true\n",
            host_of(&cache)
        ),
    )
    .unwrap();
    let args: Vec<String> = [
        "--root",
        &work.path().join("root").display().to_string(),
        "--runroot",
        &work.path().join("runroot").display().to_string(),
        "--storage-driver",
        "vfs",
        "--cgroup-manager=cgroupfs",
        "--events-backend=file",
        "pull",
        "up.example/team/app:v1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let conf2 = conf.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("podman")
            .args(&args)
            .env("CONTAINERS_REGISTRIES_CONF", &conf2)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "podman pull failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_cached(&cache, &image).await;
}

#[tokio::test]
async fn containerd_pulls_through_a_hosts_toml_mirror_with_ns() {
    if !tool("containerd") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::support::missing_tool("root (containerd runs as root)", "run the tests as root");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let up = TestServer::start().await;
    let image = push_runnable_image(&up, work.path()).await;
    let cache = cache_of(&up).await;

    let dir = work.path();
    let socket = dir.join("containerd.sock");
    let config = dir.join("containerd.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n",
            dir.join("root").display(),
            dir.join("state").display(),
            socket.display(),
            dir.join("ttrpc.sock").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    let mut daemon = std::process::Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd starts");
    let ready = async {
        for _ in 0..100 {
            if socket.exists() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    let started = ready.await;
    let hosts = dir.join("hosts");
    std::fs::create_dir_all(hosts.join("up.example")).unwrap();
    // The upstream's own address is unreachable: only the mirror can serve.
    std::fs::write(
        hosts.join("up.example/hosts.toml"),
        format!(
            "server = \"http://127.0.0.1:9\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            host_of(&cache)
        ),
    )
    .unwrap();
    let ctr = |extra: &[&str]| -> Vec<String> {
        [
            "--address",
            &socket.display().to_string(),
            "--namespace",
            "marina-test",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let result = if started {
        let args = ctr(&[
            "images",
            "pull",
            "--snapshotter",
            "native",
            "--hosts-dir",
            &hosts.display().to_string(),
            "up.example/team/app:v1",
        ]);
        Some(
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("ctr").args(&args).output()
            })
            .await
            .unwrap()
            .unwrap(),
        )
    } else {
        None
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    let daemon_log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
    let out = result.unwrap_or_else(|| panic!("containerd did not start:\n{daemon_log}"));
    assert!(
        out.status.success(),
        "ctr pull failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_cached(&cache, &image).await;
}
