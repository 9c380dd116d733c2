//! A throwaway registry for tests, the way Go projects start olareg in theirs.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let reg = marina::testing::TestRegistry::start().await;
//! let image = reg.push_image("team/app", "v1").await;
//! assert!(reg.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(image.manifest_digest.algorithm().as_str(), "sha256");
//! # }
//! ```
//!
//! It listens on an ephemeral loopback port, keeps its data in a temporary
//! directory removed on drop (or in memory with [`TestRegistry::start_in_memory`]),
//! and works from `#[tokio::test]` and, through [`TestRegistry::start_blocking`],
//! from a plain `#[test]`.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;

use crate::oci::media_types::{OCI_EMPTY, OCI_INDEX, OCI_MANIFEST};
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag};
use crate::registry::RegistryError;
use crate::server::ServerHandle;
pub use crate::store::TestClock;
use crate::{Registry, RegistryBuilder};

/// A registry running for the length of a test.
pub struct TestRegistry {
    registry: Registry,
    clock: Arc<TestClock>,
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    url: String,
    _dir: Option<tempfile::TempDir>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// What [`TestRegistry::push_image`] pushed.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// Digest of the image manifest.
    pub manifest_digest: Digest,
    /// The manifest's exact bytes.
    pub manifest: Vec<u8>,
    /// Size of the manifest in bytes.
    pub size: usize,
    /// Digests of the config and of the layer.
    pub blobs: Vec<Digest>,
}

impl TestRegistry {
    /// A registry on disk in a temporary directory, every deletion allowed.
    pub async fn start() -> TestRegistry {
        let dir = tempfile::tempdir().expect("a temporary directory for the test registry");
        let builder = Registry::builder()
            .data_dir(dir.path())
            .preallocate_log(false);
        Self::start_with(builder, Some(dir)).await
    }

    /// A registry held entirely in memory (fastest; nothing touches the disk).
    pub async fn start_in_memory() -> TestRegistry {
        Self::start_with(Registry::builder().in_memory(), None).await
    }

    /// A registry built from `builder`, with a [`TestClock`] of its own (see
    /// [`TestRegistry::clock`]); `dir`, if given, is removed on drop.
    pub async fn start_with(
        builder: RegistryBuilder,
        dir: Option<tempfile::TempDir>,
    ) -> TestRegistry {
        let clock = Arc::new(TestClock::new());
        let registry = builder
            .clock(clock.clone())
            .build()
            .expect("test registry options are valid");
        let handle = crate::server::serve(&registry, "127.0.0.1:0")
            .await
            .expect("the test registry binds a loopback port");
        let addr = handle.addr();
        TestRegistry {
            registry,
            clock,
            url: handle.url(),
            handle: Some(handle),
            addr,
            _dir: dir,
            runtime: None,
        }
    }

    /// For a plain `#[test]`: starts an on-disk registry on a runtime of its own,
    /// which [`TestRegistry::block_on`] drives.
    pub fn start_blocking() -> TestRegistry {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the test registry");
        let mut reg = runtime.block_on(Self::start());
        reg.runtime = Some(runtime);
        reg
    }

    /// Runs a future (e.g. one of the push helpers) on the registry's own runtime;
    /// only for registries from [`TestRegistry::start_blocking`].
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("block_on needs a registry from TestRegistry::start_blocking")
            .block_on(fut)
    }

    /// The registry's clock: advance it instead of sleeping, to give pushes
    /// distinct push times or to let a grace period or a retention age pass.
    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:<port>`, as image references want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry behind the server, for pushing and pulling without HTTP.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn push_blob(&self, repo: &RepoName, bytes: Vec<u8>) -> Result<Digest, RegistryError> {
        let d = Algorithm::Sha256.digest_of(&bytes);
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
        self.registry
            .core()
            .upload_monolithic(repo, &d, None, body)
            .await?;
        Ok(d)
    }

    async fn push_manifest(
        &self,
        repo: &RepoName,
        reference: Reference,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Digest {
        self.registry
            .core()
            .put_manifest(repo, &reference, Some(media_type), bytes, vec![])
            .await
            .expect("the test registry accepts the generated manifest")
            .digest
    }

    /// Pushes a small generated image (config and one layer, unique per call) under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str) -> PushedImage {
        let repo: RepoName = repo.parse().expect("a valid repository name");
        let tag: Tag = tag.parse().expect("a valid tag");
        let unique = uuid::Uuid::new_v4().to_string();
        let config = serde_json::to_vec(
            &json!({"architecture": "amd64", "os": "linux", "marina.test": unique}),
        )
        .unwrap();
        let layer = format!("layer {unique}").into_bytes();
        let (cl, ll) = (config.len(), layer.len());
        let c = self.push_blob(&repo, config).await.expect("config blob");
        let l = self.push_blob(&repo, layer).await.expect("layer blob");
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": cl},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.to_string(), "size": ll}],
        }))
        .unwrap();
        let size = manifest.len();
        let manifest_digest = self
            .push_manifest(&repo, Reference::Tag(tag), OCI_MANIFEST, manifest.clone())
            .await;
        PushedImage {
            manifest_digest,
            manifest,
            size,
            blobs: vec![c, l],
        }
    }

    /// Pushes an image index over already pushed images under `tag`.
    pub async fn push_index(&self, repo: &str, tag: &str, images: &[PushedImage]) -> Digest {
        let repo: RepoName = repo.parse().expect("a valid repository name");
        let manifests: Vec<_> = images
            .iter()
            .map(|i| json!({"mediaType": OCI_MANIFEST, "digest": i.manifest_digest.to_string(), "size": i.size, "platform": {"architecture": "amd64", "os": "linux"}}))
            .collect();
        let index = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
        )
        .unwrap();
        let tag: Tag = tag.parse().expect("a valid tag");
        self.push_manifest(&repo, Reference::Tag(tag), OCI_INDEX, index)
            .await
    }

    /// Pushes an artifact of `artifact_type` whose subject is `subject` (pushed by digest,
    /// untagged, as signing tools do).
    pub async fn push_referrer(
        &self,
        repo: &str,
        subject: &PushedImage,
        artifact_type: &str,
    ) -> Digest {
        let repo_name: RepoName = repo.parse().expect("a valid repository name");
        let empty = self
            .push_blob(&repo_name, b"{}".to_vec())
            .await
            .expect("empty config");
        let payload = format!("{artifact_type} for {}", subject.manifest_digest).into_bytes();
        let pl = payload.len();
        let p = self
            .push_blob(&repo_name, payload)
            .await
            .expect("artifact blob");
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty.to_string(), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": p.to_string(), "size": pl}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.manifest_digest.to_string(), "size": subject.size},
        }))
        .unwrap();
        let d = Algorithm::Sha256.digest_of(&manifest);
        self.push_manifest(&repo_name, Reference::Digest(d), OCI_MANIFEST, manifest)
            .await
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // Dropping the handle aborts the server; a runtime of our own goes with it.
        drop(self.handle.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("url", &self.url)
            .finish()
    }
}

/// Shared so tests can hand the registry to spawned tasks.
pub type SharedTestRegistry = Arc<TestRegistry>;
