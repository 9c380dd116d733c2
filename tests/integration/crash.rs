//! Durability under SIGKILL: the `marina` binary is killed while clients push, then
//! restarted on the same directory. Every acknowledged blob and tag must still be
//! there, and no stored blob may hold bytes that differ from its digest.

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marina::oci::{Algorithm, Digest};
use reqwest::Method;

use crate::support::{image_manifest, OCI_MANIFEST};

/// The server as a child process; killed when dropped.
struct Process {
    child: Child,
    url: String,
}

impl Process {
    fn start_with(dir: &std::path::Path, extra: &[&str]) -> Process {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--data-dir".as_ref(), dir.as_os_str()];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        let (child, url) = crate::support::spawn_serve(&args, Stdio::null());
        Process { child, url }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Default)]
struct Acknowledged {
    blobs: Vec<(String, Digest, Vec<u8>)>,
    tags: Vec<(String, String, Digest)>,
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Pushes blobs (single POST and chunked) and manifests until the server dies,
/// recording what was acknowledged.
async fn pusher(url: String, worker: u64, acked: Arc<Mutex<Acknowledged>>) {
    let client = reqwest::Client::new();
    for i in 0..200u64 {
        let repo = format!("crash/w{worker}");
        let data = content(worker * 1000 + i, 1000 + ((i * 7919) % 300_000) as usize);
        let d = Algorithm::Sha256.digest_of(&data);
        let ok = if i % 2 == 0 {
            match client
                .request(
                    Method::POST,
                    format!("{url}/v2/{repo}/blobs/uploads/?digest={d}"),
                )
                .body(data.clone())
                .send()
                .await
            {
                Ok(r) => r.status() == 201,
                Err(_) => return,
            }
        } else {
            let Ok(r) = client
                .post(format!("{url}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
            else {
                return;
            };
            let Some(loc) = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
            else {
                return;
            };
            let half = data.len() / 2;
            let Ok(r) = client
                .patch(format!("{url}{loc}"))
                .header("Content-Range", format!("0-{}", half - 1))
                .body(data[..half].to_vec())
                .send()
                .await
            else {
                return;
            };
            if r.status() != 202 {
                return;
            }
            match client
                .put(format!("{url}{loc}?digest={d}"))
                .body(data[half..].to_vec())
                .send()
                .await
            {
                Ok(r) => r.status() == 201,
                Err(_) => return,
            }
        };
        // Refused (the collector, with no grace, may take a blob between its
        // push and its manifest's): nothing was acknowledged; go on.
        if !ok {
            continue;
        }
        acked
            .lock()
            .unwrap()
            .blobs
            .push((repo.clone(), d.clone(), data.clone()));
        let m = image_manifest(&d, data.len(), &[], None, None);
        let tag = format!("t{i}");
        match client
            .put(format!("{url}/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == 201 => {
                acked
                    .lock()
                    .unwrap()
                    .tags
                    .push((repo, tag, Algorithm::Sha256.digest_of(&m)))
            }
            // `MANIFEST_BLOB_UNKNOWN` when the collector took its blob first.
            Ok(_) => continue,
            // The server was killed.
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_no_blob_is_corrupt() {
    survive_sigkill(&[]).await;
}

/// The same with metadata in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_on_postgres() {
    let Some(url) = crate::support::postgres_metadata_url() else {
        return;
    };
    survive_sigkill(&["--metadata-url", url.expose()]).await;
}

/// Three rounds of pushers and a SIGKILL, then every acknowledged write is
/// checked on a restarted server (started with `extra` flags each time).
pub(crate) async fn survive_sigkill(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    for round in 0..3u64 {
        let mut server = Process::start_with(dir.path(), extra);
        let workers: Vec<_> = (0..3)
            .map(|w| tokio::spawn(pusher(server.url.clone(), round * 10 + w, acked.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + round * 120)).await;
        server.kill();
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }
    }
    let server = Process::start_with(dir.path(), extra);
    let client = reqwest::Client::new();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        !acked.blobs.is_empty(),
        "the pushers got nothing acknowledged before the kills"
    );
    eprintln!(
        "checking {} acknowledged blobs and {} tags after 3 kills",
        acked.blobs.len(),
        acked.tags.len()
    );
    for (repo, d, data) in &acked.blobs {
        let r = client
            .get(format!("{}/v2/{repo}/blobs/{d}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged blob {d} in {repo} is gone");
        assert_eq!(&r.bytes().await.unwrap()[..], &data[..], "blob {d} changed");
    }
    for (repo, tag, d) in &acked.tags {
        let r = client
            .get(format!("{}/v2/{repo}/manifests/{tag}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged tag {repo}:{tag} is gone");
        assert_eq!(
            r.headers()["docker-content-digest"].to_str().unwrap(),
            d.to_string()
        );
    }
    // With local blobs, every file is checked against its name too (in a
    // bucket, the reads above are the check).
    if !extra.contains(&"--blob-url") {
        let checked = check_blob_files(dir.path());
        assert!(
            checked >= acked.blobs.len() / 3,
            "blob files were checked ({checked})"
        );
    }
}

/// SIGKILL during garbage collection: the server collects every second with no
/// grace, `marina gc` processes sweep the same directory and are killed at random
/// moments, a deleter releases manifests, and the server itself is killed and
/// restarted. Every acknowledged manifest not deleted must still pull with its
/// blob byte-exact, and every blob file must match its digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sweeps_loses_no_acknowledged_manifest() {
    sweeps_under_sigkill(&[]).await;
}

/// The same with metadata in PostgreSQL: a killed collector's advisory lock
/// and transaction go with its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sweeps_on_postgres_loses_no_acknowledged_manifest() {
    let Some(url) = crate::support::postgres_metadata_url() else {
        return;
    };
    sweeps_under_sigkill(&["--metadata-url", url.expose()]).await;
}

/// Servers and `marina gc` processes (both started with `extra` flags) killed
/// while pushers and a deleter work; then every live manifest is checked.
pub(crate) async fn sweeps_under_sigkill(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut deleted = Vec::new();
    let mut gc_args = vec!["--gc-interval-secs", "1", "--gc-grace-secs", "0"];
    gc_args.extend_from_slice(extra);
    let client = reqwest::Client::new();
    for round in 0..3u64 {
        let mut server = Process::start_with(dir.path(), &gc_args);
        let workers: Vec<_> = (0..2)
            .map(|w| {
                tokio::spawn(pusher(
                    server.url.clone(),
                    100 + round * 10 + w,
                    acked.clone(),
                ))
            })
            .collect();
        let started = std::time::Instant::now();
        let mut sweeps = 0;
        while started.elapsed() < Duration::from_millis(1200 + round * 300) {
            let mut gc = std::process::Command::new(env!("CARGO_BIN_EXE_marina"))
                .args(["gc", "--gc-grace-secs", "0", "--data-dir"])
                .arg(dir.path())
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20 + (sweeps * 37) % 80)).await;
            let _ = gc.kill();
            let _ = gc.wait();
            sweeps += 1;
            // Release every third acknowledged manifest.
            let victim = {
                let a = acked.lock().unwrap();
                a.tags.get(deleted.len() * 3).cloned()
            };
            if let Some((repo, tag, d)) = victim {
                let r = client
                    .delete(format!("{}/v2/{repo}/manifests/{d}", server.url))
                    .send()
                    .await;
                if matches!(r, Ok(ref r) if r.status() == 202) {
                    deleted.push((repo, tag));
                }
            }
        }
        server.kill();
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
        }
    }
    let server = Process::start_with(dir.path(), extra);
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let blobs: std::collections::HashMap<(String, Digest), Vec<u8>> = acked
        .blobs
        .into_iter()
        .map(|(repo, d, data)| ((repo, d), data))
        .collect();
    let live: Vec<_> = acked
        .tags
        .iter()
        .filter(|(repo, tag, _)| !deleted.contains(&(repo.clone(), tag.clone())))
        .collect();
    assert!(
        !live.is_empty() && !deleted.is_empty(),
        "too little happened: {} live, {} deleted",
        live.len(),
        deleted.len()
    );
    eprintln!(
        "checking {} manifests after 3 kills, {} deleted",
        live.len(),
        deleted.len()
    );
    for (repo, tag, d) in live {
        let r = client
            .get(format!("{}/v2/{repo}/manifests/{d}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "acknowledged manifest {repo}:{tag} is gone"
        );
        let m: serde_json::Value = r.json().await.unwrap();
        let config: Digest = m["config"]["digest"].as_str().unwrap().parse().unwrap();
        let r = client
            .get(format!("{}/v2/{repo}/blobs/{config}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "blob {config} of {repo}:{tag} is gone");
        let want = &blobs[&(repo.clone(), config.clone())];
        assert_eq!(
            &r.bytes().await.unwrap()[..],
            &want[..],
            "blob {config} changed"
        );
    }
    if !extra.contains(&"--blob-url") {
        check_blob_files(dir.path());
    }
}

/// Asserts that every blob stored (files and small blobs) holds exactly the
/// bytes its digest promises; returns how many were checked.
fn check_blob_files(data: &std::path::Path) -> usize {
    let stored = crate::support::stored_blobs(data);
    for (digest, bytes) in &stored {
        assert_eq!(
            &digest.algorithm().digest_of(bytes),
            digest,
            "corrupt blob {digest}"
        );
    }
    stored.len()
}
