//! Bad input never breaks the server: random invalid names, references, digests,
//! ranges, pagination parameters, Content-Range and Content-Type headers, and
//! manifest bodies must get an answer below 500.

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proptest::prelude::*;

use super::run_property_cases;
use crate::client::Request;
use crate::harness::checks::push::open_session;
use crate::harness::checks::CheckDef;
use crate::harness::content;
use crate::harness::context::{Created, Ctx, Step};
use crate::harness::verdict::Verdict;
use crate::harness_check;
use crate::oci::Algorithm;

/// The bad-input property checks. Each case costs one to three requests, so this
/// property runs eight times the run's `--cases`.
pub fn checks() -> Vec<CheckDef> {
    vec![harness_check!(
        "properties.no-5xx",
        Properties,
        "random invalid names, tags, digests, ranges, query parameters, headers and bodies never get a 5xx",
        ["R143"],
        no_5xx
    )]
}

/// Characters kept literal in generated path segments (the rest is percent-encoded).
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b':')
    .remove(b'~');

/// One bad request.
#[derive(Debug, Clone)]
enum Probe {
    ManifestGet(String),
    ManifestHead(String),
    BlobGet(String),
    BlobHead(String),
    Referrers(String),
    Name(String),
    TagList(String, String),
    Range(String),
    ManifestPut {
        reference: String,
        content_type: String,
        body: Vec<u8>,
    },
    UploadPost(String),
    Patch(String),
    PutDigest(String),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[a-zA-Z0-9._-]{129,140}",
        "[.-][a-z0-9]{1,8}",
        "[A-Z][A-Za-z0-9]{0,8}",
        Just("..".to_string()),
        Just(String::new()),
    ]
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof![
        "sha256:[0-9a-f]{0,70}",
        "sha256:[0-9A-F]{64}",
        "sha512:[0-9a-f]{0,130}",
        "[a-z0-9+._-]{1,12}:[a-zA-Z0-9=_-]{0,24}",
        "[ -~]{0,30}",
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z][a-zA-Z0-9]{0,10}",
        "[a-z0-9]{1,5}(__|\\.\\.|--_|_-|/\\.|//)[a-z0-9]{1,5}",
        "[-._][a-z0-9]{1,8}",
        "[a-z]{256,260}",
        "[a-z0-9]{1,5}[ !#$%&'()*+,;=@\\[\\]^`{|}]{1,3}[a-z0-9]{0,5}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,30}",
        "bytes=[0-9-]{0,12}",
        "[0-9]{1,20}-[0-9]{1,20}",
        "bytes=[0-9]{1,3}-[0-9]{1,3},[0-9]{0,3}-"
    ]
}

fn probe() -> impl Strategy<Value = Probe> {
    let content_type = prop_oneof![
        Just("application/vnd.oci.image.manifest.v1+json".to_string()),
        Just("application/vnd.oci.image.index.v1+json".to_string()),
        "[ -~]{0,30}",
    ];
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "\\{\"schemaVersion\": ?(2|1|\"2\"|null|-1), ?\"mediaType\": ?\"[ -~]{0,20}\"(, ?\"layers\": ?(null|\\[\\]|\\{\\}|3))?\\}".prop_map(String::into_bytes),
        "\\{\"schemaVersion\":2,\"config\":\\{\"digest\":\"[ -~]{0,20}\",\"size\":-?[0-9]{1,3}\\}\\}".prop_map(String::into_bytes),
    ];
    prop_oneof![
        text().prop_map(Probe::ManifestGet),
        text().prop_map(Probe::ManifestHead),
        digest().prop_map(Probe::BlobGet),
        digest().prop_map(Probe::BlobHead),
        digest().prop_map(Probe::Referrers),
        name().prop_map(Probe::Name),
        (text(), text()).prop_map(|(n, l)| Probe::TagList(n, l)),
        header_value().prop_map(Probe::Range),
        (prop_oneof![text(), digest()], content_type, body).prop_map(
            |(reference, content_type, body)| Probe::ManifestPut {
                reference,
                content_type,
                body
            }
        ),
        digest().prop_map(Probe::UploadPost),
        header_value().prop_map(Probe::Patch),
        digest().prop_map(Probe::PutDigest),
    ]
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

fn q(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

async fn no_5xx(cx: &Ctx) -> Step<Verdict> {
    let image = cx.image().await?;
    let push = cx.options().push;
    run_property_cases(
        cx,
        "no-5xx",
        cx.options().cases.saturating_mul(8),
        probe,
        move |cx, p: Probe| {
            let (repo, layer) = (image.repo.clone(), image.layer.1.digest.to_string());
            async move {
                let accept = content::manifest_accept();
                let req = match p {
                    Probe::ManifestGet(r) => {
                        Request::get(format!("/v2/{repo}/manifests/{}", enc(&r)))
                            .header("accept", accept)
                    }
                    Probe::ManifestHead(r) => {
                        Request::head(format!("/v2/{repo}/manifests/{}", enc(&r)))
                            .header("accept", accept)
                    }
                    Probe::BlobGet(d) => Request::get(format!("/v2/{repo}/blobs/{}", enc(&d))),
                    Probe::BlobHead(d) => Request::head(format!("/v2/{repo}/blobs/{}", enc(&d))),
                    Probe::Referrers(d) => {
                        Request::get(format!("/v2/{repo}/referrers/{}", enc(&d)))
                    }
                    Probe::Name(n) => Request::get(format!(
                        "/v2/{}/manifests/latest",
                        n.split('/').map(enc).collect::<Vec<_>>().join("/")
                    ))
                    .header("accept", accept),
                    Probe::TagList(n, l) => {
                        Request::get(format!("/v2/{repo}/tags/list?n={}&last={}", q(&n), q(&l)))
                    }
                    Probe::Range(r) => {
                        Request::get(format!("/v2/{repo}/blobs/{layer}")).header("range", r)
                    }
                    Probe::ManifestPut { .. }
                    | Probe::UploadPost(_)
                    | Probe::Patch(_)
                    | Probe::PutDigest(_)
                        if !push =>
                    {
                        return Ok(())
                    }
                    Probe::ManifestPut {
                        reference,
                        content_type,
                        body,
                    } => {
                        let r = cx
                            .send(
                                Request::put(format!("/v2/{repo}/manifests/{}", enc(&reference)))
                                    .header("content-type", content_type)
                                    .body(Bytes::from(body.clone())),
                            )
                            .await?;
                        if r.status == 201 {
                            cx.created(Created::Manifest(
                                repo.clone(),
                                Algorithm::Sha256.digest_of(&body),
                            ));
                        }
                        return cx.ensure(r.status < 500, "R143", || {
                            format!("bad input gets a 4xx, never a 5xx; got {}", r.status)
                        });
                    }
                    Probe::UploadPost(d) => {
                        Request::post(format!("/v2/{repo}/blobs/uploads/?digest={}", q(&d)))
                            .body(Bytes::from_static(b"abc"))
                    }
                    Probe::Patch(range) => {
                        let (_, loc) = open_session(&cx, &repo, "").await?;
                        let r = cx
                            .send(
                                Request::patch(loc.clone())
                                    .header("content-type", "application/octet-stream")
                                    .header("content-range", range)
                                    .body(Bytes::from_static(b"abcd")),
                            )
                            .await?;
                        let _ = cx.send(Request::delete(loc)).await?;
                        return cx.ensure(r.status < 500, "R143", || {
                            format!("bad input gets a 4xx, never a 5xx; got {}", r.status)
                        });
                    }
                    Probe::PutDigest(d) => {
                        let (_, loc) = open_session(&cx, &repo, "").await?;
                        let r = cx
                            .send(
                                Request::put(format!(
                                    "{loc}{}digest={}",
                                    if loc.contains('?') { '&' } else { '?' },
                                    q(&d)
                                ))
                                .body(Bytes::from_static(b"abcd")),
                            )
                            .await?;
                        let _ = cx.send(Request::delete(loc)).await?;
                        if r.status == 201 {
                            if let Ok(dg) = d.parse() {
                                cx.created(Created::Blob(repo.clone(), dg));
                            }
                        }
                        return cx.ensure(r.status < 500, "R143", || {
                            format!("bad input gets a 4xx, never a 5xx; got {}", r.status)
                        });
                    }
                };
                let r = cx.send(req).await?;
                cx.ensure(r.status < 500, "R143", || {
                    format!("bad input gets a 4xx, never a 5xx; got {}", r.status)
                })
            }
        },
    )
    .await
}
