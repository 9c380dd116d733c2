//! Real clients through HTTPS (a test CA, trusted with `--cert-dir` / a CA bundle)
//! and token auth: skopeo, buildah + podman (vfs storage), and the `oras` Python
//! client (an artifact with a subject, then its referrers). Each also checks that a
//! pull-only user is refused a push with a clear error. Each test is skipped, with a
//! message, when its tool is missing (`.ci/run` installs them).

use std::path::Path;
use std::process::{Command, Output};

use marina::config::AuthScheme;
use marina::oci::Algorithm;
use serde_json::json;

use crate::auth_support::{basic, standard_auth, start_secure, TestCa};
use crate::support::TestServer;

fn available(program: &str, args: &[&str], install: &str) -> bool {
    let found = Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        crate::support::missing_tool(&format!("`{program}`"), install);
    }
    found
}

/// Runs a command off the runtime; returns its output whatever the exit status.
async fn output(program: &str, args: Vec<String>, env: Vec<(String, String)>) -> (String, Output) {
    let shown = format!("{program} {}", args.join(" "));
    let p = program.to_string();
    let out = tokio::task::spawn_blocking(move || Command::new(p).args(args).envs(env).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    (shown, out)
}

fn explain(shown: &str, out: &Output) -> String {
    format!(
        "{shown} ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn ok(program: &str, args: Vec<String>) -> String {
    let (shown, out) = output(program, args, vec![]).await;
    assert!(out.status.success(), "{}", explain(&shown, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the command fails and says the access was denied.
async fn refused(program: &str, args: Vec<String>) {
    let (shown, out) = output(program, args, vec![]).await;
    let text = explain(&shown, &out);
    assert!(!out.status.success(), "a pull-only user could push: {text}");
    let lower = text.to_lowercase();
    assert!(
        lower.contains("denied") || lower.contains("forbidden"),
        "the refusal does not say why: {text}"
    );
}

async fn secure_server(ca: &TestCa, dir: &Path) -> TestServer {
    start_secure(standard_auth(dir, AuthScheme::Token), Some(ca), |_| {}).await
}

fn host(s: &TestServer) -> String {
    s.url.trim_start_matches("https://").to_string()
}

/// An OCI layout with one small image tagged `v1`.
fn make_layout(layout: &Path) {
    let blob = |bytes: &[u8]| {
        let d = Algorithm::Sha256.digest_of(bytes);
        let dir = layout.join("blobs/sha256");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let (ld, ll) = blob(&layer);
    let config = serde_json::to_vec(
        &json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[ld]}}),
    )
    .unwrap();
    let (cd, cl) = blob(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ll}]
    }))
    .unwrap();
    let (md, ml) = blob(&manifest);
    let index = json!({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":md,"size":ml,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pushes_and_pulls_over_https_with_tokens_and_a_reader_cannot_push() {
    if !available("skopeo", &["--version"], "apt-get install skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("skopeo test CA");
    let s = secure_server(&ca, dir.path()).await;
    let certs = ca.cert_dir().display().to_string();
    let work = tempfile::tempdir().unwrap();
    let (src, back) = (work.path().join("src"), work.path().join("back"));
    make_layout(&src);
    let h = host(&s);
    let p = |p: &Path| p.display().to_string();
    ok(
        "skopeo",
        vec![
            "copy".into(),
            "--preserve-digests".into(),
            "--dest-cert-dir".into(),
            certs.clone(),
            "--dest-creds".into(),
            "writer:writer-pw".into(),
            format!("oci:{}:v1", p(&src)),
            format!("docker://{h}/team/skopeo:v1"),
        ],
    )
    .await;
    ok(
        "skopeo",
        vec![
            "copy".into(),
            "--preserve-digests".into(),
            "--src-cert-dir".into(),
            certs.clone(),
            "--src-creds".into(),
            "reader:reader-pw".into(),
            format!("docker://{h}/team/skopeo:v1"),
            format!("oci:{}:v1", p(&back)),
        ],
    )
    .await;
    let files = |l: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(l.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        files(&src),
        files(&back),
        "blobs differ after the round trip"
    );
    // Without credentials the private repository is closed.
    let (shown, out) = output(
        "skopeo",
        vec![
            "inspect".into(),
            "--cert-dir".into(),
            certs.clone(),
            "--no-creds".into(),
            format!("docker://{h}/team/skopeo:v1"),
        ],
        vec![],
    )
    .await;
    assert!(
        !out.status.success(),
        "anonymous inspect of a private repository: {}",
        explain(&shown, &out)
    );
    refused(
        "skopeo",
        vec![
            "copy".into(),
            "--dest-cert-dir".into(),
            certs,
            "--dest-creds".into(),
            "reader:reader-pw".into(),
            format!("oci:{}:v1", p(&src)),
            format!("docker://{h}/team/denied:v1"),
        ],
    )
    .await;
    s.get("/v2/").await.expect(401, None);
    let r = s
        .req(reqwest::Method::GET, "/v2/team/denied/tags/list")
        .await
        .header("Authorization", &basic("admin", "admin-pw"))
        .send()
        .await;
    r.expect(404, Some("NAME_UNKNOWN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildah_builds_and_pushes_podman_pulls_over_https_with_tokens() {
    if !available("buildah", &["--version"], "apt-get install buildah")
        || !available("podman", &["--version"], "apt-get install podman")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("podman test CA");
    let s = secure_server(&ca, dir.path()).await;
    let certs = ca.cert_dir().display().to_string();
    let work = tempfile::tempdir().unwrap();
    let storage: Vec<String> = vec![
        "--storage-driver".into(),
        "vfs".into(),
        "--root".into(),
        work.path().join("root").display().to_string(),
        "--runroot".into(),
        work.path().join("runroot").display().to_string(),
    ];
    let buildah = |extra: &[&str]| -> Vec<String> {
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
    let h = host(&s);
    let file = work.path().join("hello.txt");
    std::fs::write(&file, "hello over https\n").unwrap();
    let container = ok("buildah", buildah(&["from", "scratch"]))
        .await
        .trim()
        .to_string();
    ok(
        "buildah",
        buildah(&[
            "copy",
            &container,
            &file.display().to_string(),
            "/hello.txt",
        ]),
    )
    .await;
    ok(
        "buildah",
        buildah(&["commit", &container, "localhost/marina-secure:v1"]),
    )
    .await;
    let target = format!("docker://{h}/team/built:v1");
    ok(
        "buildah",
        buildah(&[
            "push",
            "--cert-dir",
            &certs,
            "--creds",
            "writer:writer-pw",
            "localhost/marina-secure:v1",
            &target,
        ]),
    )
    .await;

    let pulled = format!("{h}/team/built:v1");
    ok(
        "podman",
        podman(&[
            "pull",
            "--cert-dir",
            &certs,
            "--creds",
            "reader:reader-pw",
            &pulled,
        ]),
    )
    .await;
    let copy = format!("{h}/team/copied:v1");
    ok("podman", podman(&["tag", &pulled, &copy])).await;
    refused(
        "podman",
        podman(&[
            "push",
            "--cert-dir",
            &certs,
            "--creds",
            "reader:reader-pw",
            &copy,
        ]),
    )
    .await;
    refused(
        "buildah",
        buildah(&[
            "push",
            "--cert-dir",
            &certs,
            "--creds",
            "reader:reader-pw",
            "localhost/marina-secure:v1",
            &format!("docker://{h}/team/other:v1"),
        ]),
    )
    .await;
    ok(
        "podman",
        podman(&[
            "push",
            "--cert-dir",
            &certs,
            "--creds",
            "writer:writer-pw",
            &copy,
        ]),
    )
    .await;
    let admin = basic("admin", "admin-pw");
    let get = |path: &'static str| {
        let (s, a) = (&s, admin.clone());
        async move {
            s.req(reqwest::Method::GET, path).await.header("Accept", "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json").header("Authorization", &a).send().await
        }
    };
    let (a, b) = (
        get("/v2/team/built/manifests/v1").await,
        get("/v2/team/copied/manifests/v1").await,
    );
    b.expect(200, None);
    assert_eq!(a.json()["config"]["digest"], b.json()["config"]["digest"]);
}

const ORAS_SCRIPT: &str = r#"
import json, sys
import oras.client, oras.oci

host, ca, user, password, repo, workdir = sys.argv[1:7]
client = oras.client.OrasClient(hostname=host, tls_verify=ca)
client.auth.set_basic_auth(user, password)

def push(target, path, **kw):
    with open(path, "w") as f:
        f.write("artifact " + target)
    return client.push(target=target, files=[path], disable_path_validation=True, **kw)

if sys.argv[7] == "denied":
    try:
        push(f"{host}/{repo}:denied", f"{workdir}/denied.txt")
    except Exception as e:
        print("REFUSED:", e)
        sys.exit(3)
    sys.exit(0)

push(f"{host}/{repo}:v1", f"{workdir}/subject.txt")
manifest = client.get_manifest(f"{host}/{repo}:v1")
subject = oras.oci.Subject.from_manifest(manifest)
push(f"{host}/{repo}:sig", f"{workdir}/signature.txt", subject=subject)
r = client.do_request(f"https://{host}/v2/{repo}/referrers/{subject.digest}", "GET",
                      headers={"Accept": "application/vnd.oci.image.index.v1+json"})
print(json.dumps({"subject": subject.digest, "status": r.status_code, "referrers": r.json()}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_python_pushes_an_artifact_with_a_subject_and_lists_its_referrers() {
    if !available(
        "python3",
        &["-c", "import oras"],
        "pip install 'oras>=0.2,<0.3'",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("oras test CA");
    let s = secure_server(&ca, dir.path()).await;
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("oras_test.py");
    std::fs::write(&script, ORAS_SCRIPT).unwrap();
    let ca_file = ca.dir.path().join("ca.crt").display().to_string();
    let args = |user: &str, pw: &str, mode: &str| -> Vec<String> {
        vec![
            script.display().to_string(),
            host(&s),
            ca_file.clone(),
            user.into(),
            pw.into(),
            "team/oras".into(),
            work.path().display().to_string(),
            mode.into(),
        ]
    };
    let out = ok("python3", args("writer", "writer-pw", "push")).await;
    let result: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(result["status"], 200, "{result}");
    let referrers = result["referrers"]["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{result}"));
    assert_eq!(referrers.len(), 1, "{result}");
    let sig = s
        .req(reqwest::Method::HEAD, "/v2/team/oras/manifests/sig")
        .await
        .header("Authorization", &basic("reader", "reader-pw"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await;
    sig.expect(200, None);
    assert_eq!(
        referrers[0]["digest"].as_str(),
        sig.header("docker-content-digest")
    );

    let (shown, out) = output("python3", args("reader", "reader-pw", "denied"), vec![]).await;
    let text = explain(&shown, &out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a pull-only user could push: {text}"
    );
    assert!(
        text.contains("denied"),
        "the refusal does not say why: {text}"
    );
}
