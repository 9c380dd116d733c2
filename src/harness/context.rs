//! The state shared by the checks of one run: the client, the options, a run id
//! that keeps this run's repositories apart, the features detected so far (the
//! referrers API, the extensions `_oci/ext/discover` lists), the shared fixture
//! image, and the list of everything created (for cleanup).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::content::{self, Desc, Extras};
use super::discover::{self, Answer, Level};
use super::options::Options;
use super::verdict::{Failure, Verdict};
use crate::client::transcript;
use crate::client::{Client, Request, Response};
use crate::oci::{media_types, Digest};

/// Result type of checks and their steps: `Err` carries a final verdict early.
pub type Step<T> = Result<T, Verdict>;

/// Something the run created, to delete at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A manifest (deleting it by digest also removes its tags).
    Manifest(String, Digest),
    /// A blob.
    Blob(String, Digest),
}

/// The image every pull check reads: a config, one layer and a manifest, tagged.
#[derive(Debug, Clone)]
pub struct Image {
    /// Repository.
    pub repo: String,
    /// Tag.
    pub tag: String,
    /// Config bytes and descriptor.
    pub config: (Bytes, Desc),
    /// Layer bytes and descriptor.
    pub layer: (Bytes, Desc),
    /// Manifest bytes.
    pub manifest: Bytes,
    /// Manifest descriptor.
    pub desc: Desc,
}

/// Shared state of a run; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    options: Options,
    run: String,
    counter: AtomicU64,
    created: Mutex<Vec<Created>>,
    image: OnceCell<Result<Image, Verdict>>,
    referrers: OnceCell<Result<(), String>>,
    extensions: OnceCell<Answer>,
}

/// How many exchanges a failure transcript shows.
const TRANSCRIPT_EXCHANGES: usize = 12;

impl Ctx {
    /// A context for one run.
    pub fn new(client: Client, options: Options, run: String) -> Ctx {
        Ctx {
            inner: Arc::new(Inner {
                client,
                options,
                run,
                counter: AtomicU64::new(0),
                created: Mutex::new(Vec::new()),
                image: OnceCell::new(),
                referrers: OnceCell::new(),
                extensions: OnceCell::new(),
            }),
        }
    }

    /// The HTTP client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The run's options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// A fresh number, unique within the run.
    pub fn next(&self) -> u64 {
        self.inner.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A repository name for `purpose` in this run.
    pub fn repo(&self, purpose: &str) -> String {
        format!(
            "{}/{}-{purpose}",
            self.options().repo_prefix,
            self.inner.run
        )
    }

    /// Bytes unique to this run and call.
    pub fn unique_bytes(&self, len: usize) -> Bytes {
        let seed = u64::from_str_radix(&self.inner.run, 16).unwrap_or(1) ^ (self.next() << 20);
        Bytes::from(content::pseudo_random(seed, len))
    }

    /// A label unique to this run and call.
    pub fn label(&self, what: &str) -> String {
        format!("{}-{what}-{}", self.inner.run, self.next())
    }

    /// Remembers something to delete at the end of the run.
    pub fn created(&self, c: Created) {
        self.inner.created.lock().expect("created lock").push(c);
    }

    /// Everything created so far, oldest first.
    pub fn take_created(&self) -> Vec<Created> {
        std::mem::take(&mut *self.inner.created.lock().expect("created lock"))
    }

    /// A failure of `requirement`, with the current transcript.
    pub fn fail(&self, requirement: &str, expected: impl Into<String>) -> Verdict {
        Verdict::Fail(Failure {
            requirement: requirement.to_string(),
            expected: expected.into(),
            transcript: transcript::render_all(&self.client().log(), TRANSCRIPT_EXCHANGES),
        })
    }

    /// Sends a request; a transport failure fails R143 (every request deserves an HTTP answer).
    pub async fn send(&self, req: Request) -> Step<Response> {
        self.client()
            .send(req)
            .await
            .map_err(|e| self.fail("R143", format!("an HTTP response; the request failed: {e}")))
    }

    /// Fails `requirement` unless the status is one of `allowed`. A 401 or 403
    /// that `allowed` does not name is access control refusing the run's
    /// credentials: the check ends [`Verdict::NotPermitted`], not failed.
    pub fn expect_status(
        &self,
        resp: &Response,
        allowed: &[u16],
        requirement: &str,
        what: &str,
    ) -> Step<()> {
        if allowed.contains(&resp.status) {
            Ok(())
        } else if matches!(resp.status, 401 | 403) {
            Err(Verdict::NotPermitted {
                reason: format!("{what}: {}", refusal(resp)),
            })
        } else {
            let list: Vec<String> = allowed.iter().map(u16::to_string).collect();
            Err(self.fail(
                requirement,
                format!(
                    "{what}: expected {}, got {}",
                    list.join(" or "),
                    resp.status
                ),
            ))
        }
    }

    /// Fails `requirement` with `expected` unless `cond` holds.
    pub fn ensure(
        &self,
        cond: bool,
        requirement: &str,
        expected: impl FnOnce() -> String,
    ) -> Step<()> {
        if cond {
            Ok(())
        } else {
            Err(self.fail(requirement, expected()))
        }
    }

    /// A `Location` header resolved against the answering URL.
    pub fn location(&self, resp: &Response, requirement: &str, what: &str) -> Step<String> {
        resp.header("location")
            .and_then(|l| resp.resolve(l))
            .map(|u| u.to_string())
            .ok_or_else(|| self.fail(requirement, format!("{what}: a Location header")))
    }

    /// Skips unless pushing is allowed.
    pub fn need_push(&self) -> Step<()> {
        if self.options().push {
            Ok(())
        } else {
            Err(Verdict::skipped("pushing is turned off (--no-push)"))
        }
    }

    /// Skips unless deleting is allowed.
    pub fn need_delete(&self) -> Step<()> {
        if self.options().delete {
            Ok(())
        } else {
            Err(Verdict::skipped("deleting is turned off (--no-delete)"))
        }
    }

    /// Pushes a blob with POST then PUT; a failure skips the calling check (the
    /// push checks report it).
    pub async fn push_blob(&self, repo: &str, bytes: &Bytes) -> Step<Digest> {
        self.need_push()?;
        let digest = crate::oci::Algorithm::Sha256.digest_of(bytes);
        let setup = |what: &str, r: &Response| {
            Verdict::skipped(format!(
                "setup: {what} answered {} (see the push checks)",
                r.status
            ))
        };
        let post = self
            .send(Request::post(format!("/v2/{repo}/blobs/uploads/")))
            .await?;
        let Some(loc) = post
            .header("location")
            .and_then(|l| post.resolve(l))
            .filter(|_| post.status == 202)
        else {
            return Err(setup("POST of an upload session", &post));
        };
        let mut put_url = loc;
        put_url
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let put = self
            .send(
                Request::put(put_url.to_string())
                    .header("content-type", "application/octet-stream")
                    .body(bytes.clone()),
            )
            .await?;
        if put.status != 201 {
            return Err(setup("PUT closing an upload", &put));
        }
        self.created(Created::Blob(repo.to_string(), digest.clone()));
        Ok(digest)
    }

    /// PUTs a manifest and returns the answer (status unchecked).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: &Bytes,
        media_type: &str,
    ) -> Step<Response> {
        self.need_push()?;
        let resp = self
            .send(
                Request::put(format!("/v2/{repo}/manifests/{reference}"))
                    .header("content-type", media_type)
                    .body(body.clone()),
            )
            .await?;
        if resp.status == 201 {
            let by_reference = reference
                .split('?')
                .next()
                .and_then(|r| r.parse::<Digest>().ok());
            let digest =
                by_reference.unwrap_or_else(|| crate::oci::Algorithm::Sha256.digest_of(body));
            self.created(Created::Manifest(repo.to_string(), digest));
        }
        Ok(resp)
    }

    /// PUTs a manifest that must be accepted; otherwise the calling check is skipped.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: &Bytes,
        media_type: &str,
    ) -> Step<Desc> {
        let resp = self.put_manifest(repo, reference, body, media_type).await?;
        if resp.status != 201 {
            return Err(Verdict::skipped(format!(
                "setup: manifest PUT answered {} (see the manifests checks)",
                resp.status
            )));
        }
        Ok(Desc::of(media_type, body))
    }

    /// GETs a manifest with the harness's Accept header.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Step<Response> {
        self.send(
            Request::get(format!("/v2/{repo}/manifests/{reference}"))
                .header("accept", content::manifest_accept()),
        )
        .await
    }

    /// Pushes a small image (config, layer, manifest) to `repo` under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str) -> Step<Image> {
        let config = content::config_blob(&self.label("config"));
        let layer = self.unique_bytes(1500);
        self.push_blob(repo, &config).await?;
        self.push_blob(repo, &layer).await?;
        let cdesc = Desc::of(content::CONFIG_TYPE, &config);
        let ldesc = Desc::of(content::LAYER_TYPE, &layer);
        let manifest =
            content::image_manifest(&cdesc, std::slice::from_ref(&ldesc), &Extras::default());
        let desc = self
            .push_manifest(repo, tag, &manifest, media_types::OCI_MANIFEST)
            .await?;
        Ok(Image {
            repo: repo.to_string(),
            tag: tag.to_string(),
            config: (config, cdesc),
            layer: (layer, ldesc),
            manifest,
            desc,
        })
    }

    /// The shared fixture image, pushed on first use.
    pub async fn image(&self) -> Step<Image> {
        let r = self
            .inner
            .image
            .get_or_init(|| async {
                if let Some(reference) = self
                    .options()
                    .image
                    .as_ref()
                    .filter(|_| !self.options().push)
                {
                    return self
                        .existing_image(reference)
                        .await
                        .map_err(Verdict::skipped);
                }
                let repo = self.repo("main");
                match self.push_image(&repo, "fixture").await {
                    Ok(i) => Ok(i),
                    Err(v @ (Verdict::Skipped { .. } | Verdict::NotPermitted { .. })) => Err(v),
                    Err(other) => Err(Verdict::skipped(format!(
                        "pushing the fixture image failed: {}",
                        other.kind()
                    ))),
                }
            })
            .await;
        r.clone()
    }

    /// Reads an existing image (`repository:tag`, an image manifest with a config
    /// and at least one layer) to serve as the fixture.
    async fn existing_image(&self, reference: &str) -> Result<Image, String> {
        let (repo, tag) = reference
            .rsplit_once(':')
            .ok_or_else(|| format!("--image {reference:?} is not repository:tag"))?;
        let why = |what: &str| format!("--image {reference}: {what}");
        let r = self
            .get_manifest(repo, tag)
            .await
            .map_err(|_| why("GET of the manifest failed"))?;
        if r.status != 200 {
            return Err(why(&format!("GET of the manifest answered {}", r.status)));
        }
        let media_type = r
            .header("content-type")
            .unwrap_or(media_types::OCI_MANIFEST)
            .to_string();
        let view = crate::oci::ManifestView::parse(&r.body, Some(&media_type))
            .map_err(|e| why(&e.to_string()))?;
        let (Some(config), Some(layer)) = (view.config, view.layers.first().cloned()) else {
            return Err(why("not an image manifest with a config and a layer"));
        };
        let mut blobs = Vec::new();
        for d in [&config, &layer] {
            let b = self
                .send(Request::get(format!("/v2/{repo}/blobs/{}", d.digest)))
                .await
                .map_err(|_| why("GET of a blob failed"))?;
            if b.status != 200 {
                return Err(why(&format!(
                    "GET of blob {} answered {}",
                    d.digest, b.status
                )));
            }
            blobs.push((
                b.body,
                Desc {
                    media_type: d.media_type.clone(),
                    digest: d.digest.clone(),
                    size: d.size as u64,
                },
            ));
        }
        let layer = blobs.pop().expect("two blobs");
        let config = blobs.pop().expect("two blobs");
        Ok(Image {
            repo: repo.to_string(),
            tag: tag.to_string(),
            config,
            layer,
            desc: Desc {
                media_type,
                digest: crate::oci::Algorithm::Sha256.digest_of(&r.body),
                size: r.body.len() as u64,
            },
            manifest: r.body,
        })
    }

    /// Whether the referrers API answers: detected once, on the fixture image.
    pub async fn referrers_available(&self) -> Step<()> {
        let image = self.image().await?;
        let r = self
            .inner
            .referrers
            .get_or_init(|| async {
                let url = format!("/v2/{}/referrers/{}", image.repo, image.desc.digest);
                match self.client().send(Request::get(url)).await {
                    Ok(r) if r.status == 200 => Ok(()),
                    Ok(r) => Err(format!(
                        "the referrers API answered {} (see referrers.api)",
                        r.status
                    )),
                    Err(e) => Err(format!("the referrers API did not answer: {e}")),
                }
            })
            .await;
        r.clone().map_err(Verdict::skipped)
    }

    /// What `GET /v2/_oci/ext/discover` says: detected once per run. A request
    /// that gets no answer counts as no discovery.
    pub async fn extensions(&self) -> Answer {
        self.inner
            .extensions
            .get_or_init(|| async {
                let level = Level::Registry;
                match self.client().send(Request::get(level.path())).await {
                    Ok(r) => discover::classify(r.status, r.header("content-type"), &r.body, level),
                    Err(e) => Answer::Absent(format!("{} did not answer: {e}", level.path())),
                }
            })
            .await
            .clone()
    }
}

/// A 401/403 answer in a few words: the status and the first error's code and
/// message, as the registry gave them.
pub(crate) fn refusal(resp: &Response) -> String {
    let first = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?.clone();
            let code = e.get("code")?.as_str()?.to_string();
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            Some(format!("{code} {message}").trim_end().to_string())
        });
    match first {
        Some(e) => format!(
            "{} {}",
            resp.status,
            e.chars().take(120).collect::<String>()
        ),
        None => resp.status.to_string(),
    }
}
