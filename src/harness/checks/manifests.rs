//! Manifest pushes: Location and digest, byte-exact storage, indexes, Content-Type
//! handling, subjects, missing references, tag parameters, size limits and bad
//! references.

use bytes::Bytes;

use super::pull::expect_digest_header;
use super::CheckDef;
use crate::client::Request;
use crate::harness::content::{self, Desc, Extras};
use crate::harness::context::{Created, Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::{media_types, Algorithm, Digest, ErrorEnvelope};

/// The manifest checks.
pub fn checks() -> Vec<CheckDef> {
    vec![
        harness_check!("manifests.put-by-tag", Manifests, "PUT by tag answers 201 with a pullable Location and the manifest's Docker-Content-Digest", ["R005", "R074", "R075", "R076"], put_by_tag),
        harness_check!("manifests.put-by-digest", Manifests, "PUT by digest answers 201 with a pullable Location and the same digest, again when repeated", ["R075", "R076"], put_by_digest),
        harness_check!("manifests.sha512", Manifests, "PUT by a sha512 digest answers 201 with that digest and serves the exact bytes, or is refused with 400", ["R015", "R074", "R075", "R076"], sha512),
        harness_check!("manifests.byte-exact", Manifests, "an oddly formatted manifest (spacing, key order, unicode, unknown fields) comes back byte for byte", ["R074"], byte_exact),
        harness_check!("manifests.index", Manifests, "an image index is accepted and served with the index media type", ["R013", "R015", "R075"], index),
        harness_check!("manifests.retag", Manifests, "pushing another manifest to an existing tag moves the tag", ["R015"], retag),
        harness_check!("manifests.content-type", Manifests, "parameters on a pushed Content-Type are ignored; GET answers the pushed type without parameters", ["R011", "R013", "R069"], content_type),
        harness_check!("manifests.subject-missing", Manifests, "a manifest whose subject does not exist yet is accepted", ["R031"], subject_missing),
        harness_check!("manifests.blob-unknown", Manifests, "a manifest refused for a missing layer is refused with MANIFEST_BLOB_UNKNOWN", ["R032"], blob_unknown),
        harness_check!("manifests.tag-params", Manifests, "PUT by digest with 12 ?tag= parameters names every accepted tag in OCI-Tag", ["R078", "R079"], tag_params),
        harness_check!("manifests.size-limit", Manifests, "a 4 MB manifest is accepted; an oversized one is refused with 413", ["R081", "R082", "R083"], size_limit),
        harness_check!("manifests.invalid-reference", Manifests, "PUT to a malformed digest reference is refused with 400", ["R072"], invalid_reference),
        harness_check!("manifests.digest-mismatch", Manifests, "PUT by a digest that is not the body's is refused with a 4xx", ["R076"], digest_mismatch),
    ]
}

/// The fixture image's config and layer, described, for new manifests in its repository.
async fn parts(cx: &Ctx) -> Step<(String, Desc, Desc)> {
    let i = cx.image().await?;
    Ok((i.repo.clone(), i.config.1.clone(), i.layer.1.clone()))
}

/// A new image manifest in the fixture repository, unique to this call.
async fn fresh_manifest(cx: &Ctx) -> Step<(String, Bytes)> {
    let (repo, config, layer) = parts(cx).await?;
    let m = content::image_manifest(
        &config,
        &[layer],
        &Extras {
            annotations: vec![("marina.check".into(), cx.label("m"))],
            ..Extras::default()
        },
    );
    Ok((repo, m))
}

/// PUTs `body` to `reference` and checks 201, Location (pullable, same bytes) and digest.
async fn put_and_verify(
    cx: &Ctx,
    repo: &str,
    reference: &str,
    body: &Bytes,
    media_type: &str,
) -> Step<()> {
    let r = cx.put_manifest(repo, reference, body, media_type).await?;
    cx.expect_status(&r, &[201], "R075", "a valid manifest PUT")?;
    match reference.parse::<Digest>() {
        // Pushed by digest: the header must name exactly that digest.
        Ok(digest) => expect_digest_header(cx, &r, &digest, "R076", "the manifest PUT answer")?,
        // Pushed by tag there is no client digest to echo; a header, if sent,
        // must still be a digest of the body.
        Err(_) => {
            let header = r.header("docker-content-digest");
            let ok = header.is_none_or(|h| {
                h.parse::<Digest>()
                    .is_ok_and(|d| d.algorithm().digest_of(body) == d)
            });
            cx.ensure(ok, "R076", || {
                format!("Docker-Content-Digest of a manifest PUT is a digest of the body; got {header:?}")
            })?;
        }
    }
    let loc = cx.location(&r, "R075", "a manifest PUT")?;
    let g = cx
        .send(Request::get(loc).header("accept", content::manifest_accept()))
        .await?;
    cx.expect_status(
        &g,
        &[200],
        "R075",
        "GET of the Location of a pushed manifest",
    )?;
    cx.ensure(g.body == body, "R074", || {
        "the manifest comes back as the exact bytes pushed".into()
    })
}

async fn put_by_tag(cx: &Ctx) -> Step<Verdict> {
    let (repo, m) = fresh_manifest(cx).await?;
    put_and_verify(cx, &repo, "by-tag", &m, media_types::OCI_MANIFEST).await?;
    let g = cx.get_manifest(&repo, "by-tag").await?;
    cx.expect_status(&g, &[200], "R015", "GET by the tag just pushed")?;
    cx.ensure(g.body == m, "R074", || {
        "GET by tag answers the exact bytes pushed".into()
    })?;
    Ok(Verdict::Pass)
}

async fn put_by_digest(cx: &Ctx) -> Step<Verdict> {
    let (repo, m) = fresh_manifest(cx).await?;
    let digest = Algorithm::Sha256.digest_of(&m).to_string();
    put_and_verify(cx, &repo, &digest, &m, media_types::OCI_MANIFEST).await?;
    put_and_verify(cx, &repo, &digest, &m, media_types::OCI_MANIFEST).await?;
    Ok(Verdict::Pass)
}

async fn sha512(cx: &Ctx) -> Step<Verdict> {
    let (repo, m) = fresh_manifest(cx).await?;
    let digest = Algorithm::Sha512.digest_of(&m);
    let r = cx
        .put_manifest(&repo, &digest.to_string(), &m, media_types::OCI_MANIFEST)
        .await?;
    if r.status == 400 {
        return Ok(Verdict::unsupported(
            "manifests addressed by a sha512 digest are refused with 400",
        ));
    }
    cx.expect_status(&r, &[201], "R075", "PUT of a manifest by its sha512 digest")?;
    expect_digest_header(cx, &r, &digest, "R076", "the manifest PUT answer")?;
    let g = cx.get_manifest(&repo, &digest.to_string()).await?;
    cx.expect_status(&g, &[200], "R015", "GET of a manifest by its sha512 digest")?;
    cx.ensure(g.body == m, "R074", || {
        "the manifest comes back as the exact bytes pushed".into()
    })?;
    Ok(Verdict::Pass)
}

async fn byte_exact(cx: &Ctx) -> Step<Verdict> {
    let (repo, config, layer) = parts(cx).await?;
    let text = format!(
        "{{\n  \"schemaVersion\" :2,\t\"mediaType\": \"{}\",\n  \"zz-unknown\": {{\"nested\": [1, 2.50, true, null]}},\n  \"config\": {{ \"size\": {}, \"digest\": \"{}\", \"mediaType\": \"{}\" }},\n  \"layers\": [ {{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}} ],\n  \"annotations\": {{\"note\": \"caf\\u00e9 ☕ {}\"}}\n}}\n\n",
        media_types::OCI_MANIFEST, config.size, config.digest, config.media_type, layer.media_type, layer.digest, layer.size, cx.label("exact")
    );
    let body = Bytes::from(text);
    put_and_verify(cx, &repo, "byte-exact", &body, media_types::OCI_MANIFEST).await?;
    Ok(Verdict::Pass)
}

async fn index(cx: &Ctx) -> Step<Verdict> {
    let i = cx.image().await?;
    let idx = content::index_manifest(
        std::slice::from_ref(&i.desc),
        &Extras {
            annotations: vec![("marina.check".into(), cx.label("i"))],
            ..Extras::default()
        },
    );
    put_and_verify(cx, &i.repo, "index", &idx, media_types::OCI_INDEX).await?;
    let g = cx.get_manifest(&i.repo, "index").await?;
    let ct = g.header("content-type");
    cx.ensure(ct == Some(media_types::OCI_INDEX), "R013", || {
        format!(
            "an index is served as {}; got {}",
            media_types::OCI_INDEX,
            ct.unwrap_or("no Content-Type")
        )
    })?;
    Ok(Verdict::Pass)
}

async fn retag(cx: &Ctx) -> Step<Verdict> {
    let (repo, first) = fresh_manifest(cx).await?;
    let (_, second) = fresh_manifest(cx).await?;
    cx.push_manifest(&repo, "moving", &first, media_types::OCI_MANIFEST)
        .await?;
    cx.push_manifest(&repo, "moving", &second, media_types::OCI_MANIFEST)
        .await?;
    let g = cx.get_manifest(&repo, "moving").await?;
    cx.expect_status(&g, &[200], "R015", "GET of a re-pushed tag")?;
    cx.ensure(g.body == second, "R015", || {
        "a tag pushed twice serves the second manifest".into()
    })?;
    Ok(Verdict::Pass)
}

async fn content_type(cx: &Ctx) -> Step<Verdict> {
    let (repo, m) = fresh_manifest(cx).await?;
    let r = cx
        .put_manifest(
            &repo,
            "ct-params",
            &m,
            &format!("{}; charset=utf-8", media_types::OCI_MANIFEST),
        )
        .await?;
    cx.expect_status(
        &r,
        &[201],
        "R069",
        "a manifest PUT whose Content-Type has a parameter",
    )?;
    let g = cx.get_manifest(&repo, "ct-params").await?;
    cx.expect_status(&g, &[200], "R015", "GET of the manifest")?;
    let ct = g
        .header("content-type")
        .unwrap_or("no Content-Type")
        .to_string();
    cx.ensure(!ct.contains(';'), "R011", || {
        format!("the manifest Content-Type has no parameters; got {ct:?}")
    })?;
    cx.ensure(ct == media_types::OCI_MANIFEST, "R013", || {
        format!(
            "the manifest is served as the type it was pushed with, {}; got {ct:?}",
            media_types::OCI_MANIFEST
        )
    })?;
    Ok(Verdict::Pass)
}

async fn subject_missing(cx: &Ctx) -> Step<Verdict> {
    let (repo, config, _) = parts(cx).await?;
    let ghost = Desc::of(
        media_types::OCI_MANIFEST,
        cx.label("ghost-subject").as_bytes(),
    );
    let m = content::image_manifest(
        &config,
        &[],
        &Extras {
            artifact_type: Some("application/vnd.marina.check.ghost".into()),
            subject: Some(ghost),
            annotations: vec![],
        },
    );
    let digest = Algorithm::Sha256.digest_of(&m).to_string();
    let r = cx
        .put_manifest(&repo, &digest, &m, media_types::OCI_MANIFEST)
        .await?;
    cx.expect_status(
        &r,
        &[201],
        "R031",
        "a manifest whose subject does not exist",
    )?;
    Ok(Verdict::Pass)
}

async fn blob_unknown(cx: &Ctx) -> Step<Verdict> {
    let (repo, config, _) = parts(cx).await?;
    let missing = Desc::of(content::LAYER_TYPE, cx.label("missing-layer").as_bytes());
    let m = content::image_manifest(&config, &[missing], &Extras::default());
    let r = cx
        .put_manifest(&repo, "missing-layer", &m, media_types::OCI_MANIFEST)
        .await?;
    if r.status == 201 {
        return Ok(Verdict::unsupported(
            "a manifest with a missing layer was accepted (the registry allows sparse manifests)",
        ));
    }
    let env: Option<ErrorEnvelope> = serde_json::from_slice(&r.body).ok();
    let codes: Vec<String> = env
        .map(|e| e.errors.into_iter().map(|e| e.code).collect())
        .unwrap_or_default();
    cx.ensure(!codes.is_empty() && codes.iter().all(|c| c == "MANIFEST_BLOB_UNKNOWN"), "R032", || {
        format!("a manifest refused for a missing blob gets MANIFEST_BLOB_UNKNOWN errors; got status {} codes {codes:?}", r.status)
    })?;
    Ok(Verdict::Pass)
}

async fn tag_params(cx: &Ctx) -> Step<Verdict> {
    let (repo, m) = fresh_manifest(cx).await?;
    let digest = Algorithm::Sha256.digest_of(&m);
    let tags: Vec<String> = (0..12).map(|i| format!("tp-{i}")).collect();
    let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
    let r = cx
        .put_manifest(
            &repo,
            &format!("{digest}?{}", query.join("&")),
            &m,
            media_types::OCI_MANIFEST,
        )
        .await?;
    if matches!(r.status, 414 | 431) {
        return Ok(Verdict::unsupported(format!(
            "12 tag parameters answered {}",
            r.status
        )));
    }
    cx.expect_status(&r, &[201], "R075", "PUT by digest with tag parameters")?;
    let announced: Vec<String> = r
        .header_all("oci-tag")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let mut created = Vec::new();
    for t in &tags {
        if cx.get_manifest(&repo, t).await?.status == 200 {
            created.push(t.clone());
        }
    }
    if announced.is_empty() && created.is_empty() {
        return Ok(Verdict::unsupported(
            "tag parameters are ignored (no OCI-Tag, no tag created)",
        ));
    }
    let mut sorted = announced.clone();
    sorted.sort();
    created.sort();
    cx.ensure(sorted == created, "R079", || {
        format!(
            "OCI-Tag names exactly the tags created; announced {announced:?}, created {created:?}"
        )
    })?;
    cx.ensure(created.len() >= 10, "R078", || {
        format!(
            "at least 10 tags accepted in one request; {} were",
            created.len()
        )
    })?;
    Ok(Verdict::Pass)
}

/// An image manifest of about `size` bytes (padded with an annotation).
fn padded_manifest(config: &Desc, size: usize, label: &str) -> Bytes {
    let base = content::image_manifest(
        config,
        &[],
        &Extras {
            annotations: vec![
                ("pad".into(), String::new()),
                ("marina.check".into(), label.into()),
            ],
            ..Extras::default()
        },
    );
    let pad = "p".repeat(size.saturating_sub(base.len()));
    content::image_manifest(
        config,
        &[],
        &Extras {
            annotations: vec![("pad".into(), pad), ("marina.check".into(), label.into())],
            ..Extras::default()
        },
    )
}

async fn size_limit(cx: &Ctx) -> Step<Verdict> {
    let (repo, config, _) = parts(cx).await?;
    let four_mb = padded_manifest(&config, 4_000_000, &cx.label("4mb"));
    let r = cx
        .put_manifest(&repo, "four-megabytes", &four_mb, media_types::OCI_MANIFEST)
        .await?;
    cx.expect_status(&r, &[201], "R083", "a manifest of 4,000,000 bytes")?;
    let huge = padded_manifest(&config, 16 * 1024 * 1024 + 1, &cx.label("huge"));
    // Paced, so that a 413 sent before the body is read can still be received.
    let r = cx
        .send(
            Request::put(format!("/v2/{repo}/manifests/oversized"))
                .header("content-type", media_types::OCI_MANIFEST)
                .body(huge.clone())
                .paced(),
        )
        .await?;
    if r.status == 201 {
        cx.created(Created::Manifest(
            repo.clone(),
            Algorithm::Sha256.digest_of(&huge),
        ));
        return Ok(Verdict::unsupported(
            "a 16 MiB manifest was accepted; no size limit below that was observed",
        ));
    }
    cx.expect_status(
        &r,
        &[413],
        "R082",
        "a manifest over the registry's size limit",
    )?;
    Ok(Verdict::Pass)
}

async fn invalid_reference(cx: &Ctx) -> Step<Verdict> {
    let (repo, m) = fresh_manifest(cx).await?;
    let r = cx
        .put_manifest(
            &repo,
            "sha256:baddigeststring",
            &m,
            media_types::OCI_MANIFEST,
        )
        .await?;
    if r.status == 201 {
        cx.created(Created::Manifest(
            repo.clone(),
            Algorithm::Sha256.digest_of(&m),
        ));
    }
    cx.expect_status(
        &r,
        &[400],
        "R072",
        "PUT to the reference sha256:baddigeststring (neither a digest nor a tag)",
    )?;
    Ok(Verdict::Pass)
}

async fn digest_mismatch(cx: &Ctx) -> Step<Verdict> {
    let (repo, m) = fresh_manifest(cx).await?;
    let wrong = Algorithm::Sha256.digest_of(b"not this manifest");
    let r = cx
        .put_manifest(&repo, &wrong.to_string(), &m, media_types::OCI_MANIFEST)
        .await?;
    cx.ensure((400..500).contains(&r.status), "R076", || {
        format!(
            "a manifest PUT to a digest that is not the body's is refused with a 4xx (400); got {}",
            r.status
        )
    })?;
    Ok(Verdict::Pass)
}
