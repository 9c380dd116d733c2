//! The harness's extension checks against deliberately wrong registries: Marina's
//! own endpoint behind a middleware that breaks one rule. Each break turns the
//! checks that look at that rule into failures of the right requirement and leaves
//! the others passing; read-only runs skip what needs pushes.

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response};
use serde_json::Value;

use marina::harness::{self, report, Options, Report, Section, Verdict};

/// The one rule a [`Wrong`] registry breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// Drops the last entry of every manifest or referrer page followed by a Link.
    DropLastOfLinkedPages,
    /// Ignores the listing extension's `artifactType` filter.
    IgnoreArtifactType,
    /// Answers the registry-level discover with a malformed extension name.
    MalformedName,
    /// Serves listings as `application/json` instead of their versioned type.
    PlainJson,
    /// Sends the tag list's `Link` without its `rel="next"`.
    LinkWithoutRel,
    /// Pages tag lists by offset (`next=<index>`) over the list as it is when
    /// each page is served, the classic way to skip items when content changes.
    OffsetPaging,
    /// Sends upload progress as `Range: bytes=0-<end>` instead of `0-<end>`.
    BytesUnitInUploadRange,
    /// Drops the last tag of every tag list page.
    DropLastTag,
    /// Answers `GET /v2/` with 401 and a Bearer challenge that names no realm.
    BearerWithoutRealm,
}

/// Marina behind a middleware that breaks one rule; the server stops on drop.
struct Wrong {
    url: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Wrong {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Drops the last entry of the `manifests` array of a JSON body.
async fn drop_last(resp: Response) -> poem::Result<Response> {
    let (mut parts, body) = resp.into_parts();
    let bytes = body.into_bytes().await?;
    let mut v: Value = serde_json::from_slice(&bytes).expect("a JSON listing");
    for key in ["manifests", "tags"] {
        if let Some(a) = v.get_mut(key).and_then(Value::as_array_mut) {
            a.pop();
        }
    }
    parts.headers.remove("content-length");
    Ok(Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&v).expect("json")),
    ))
}

/// One page of tags by offset, cut from the whole list the real endpoint serves now.
async fn offset_page<E: Endpoint>(ep: &E, path: &str, query: &str) -> poem::Result<Response> {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let (n, offset) = (param("n").unwrap_or(100), param("next").unwrap_or(0));
    let whole = Request::builder()
        .uri(format!("{path}?n=1000").parse().expect("a URI"))
        .finish();
    let resp = ep.call(whole).await?.into_response();
    let mut v: Value = serde_json::from_slice(&resp.into_body().into_bytes().await?).expect("json");
    let tags = v["tags"].as_array().cloned().unwrap_or_default();
    let end = tags.len().min(offset + n);
    v["tags"] = Value::Array(tags[offset.min(end)..end].to_vec());
    let mut out = Response::builder().content_type("application/vnd.marina.list.tags.v1+json");
    if end < tags.len() {
        out = out.header("link", format!("<{path}?n={n}&next={end}>; rel=\"next\""));
    }
    Ok(out.body(serde_json::to_vec(&v).expect("json")))
}

fn app(registry: &marina::Registry, brk: Break) -> impl Endpoint<Output = Response> {
    registry.endpoint().around(move |ep, mut req: Request| async move {
        let path = req.uri().path().to_string();
        let listing = path.contains("/_marina/list/");
        if brk == Break::IgnoreArtifactType && listing {
            if let Some(q) = req.uri().query() {
                let kept: Vec<&str> = q
                    .split('&')
                    .filter(|p| !p.starts_with("artifactType="))
                    .collect();
                let uri = format!("{path}?{}", kept.join("&"))
                    .parse()
                    .expect("a URI");
                *req.uri_mut() = uri;
            }
        }
        if brk == Break::MalformedName && path == "/v2/_oci/ext/discover" {
            return Ok(Response::builder()
                .content_type("application/json")
                .body(r#"{"extensions":[{"name":"_Marina!","url":"/docs","endpoints":["/v2/_Marina!/list/repositories"]}]}"#));
        }
        if brk == Break::BearerWithoutRealm && path == "/v2/" {
            return Ok(Response::builder()
                .status(poem::http::StatusCode::UNAUTHORIZED)
                .header("www-authenticate", r#"Bearer service="registry""#)
                .content_type("application/json")
                .body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"sign in"}]}"#));
        }
        if brk == Break::OffsetPaging && path.ends_with("/_marina/list/tags") {
            let query = req.uri().query().unwrap_or("").to_string();
            return offset_page(&*ep, &path, &query).await;
        }
        let resp = ep.call(req).await?.into_response();
        let paged_manifests = path.ends_with("/list/manifests") || path.ends_with("/list/referrers");
        match brk {
            Break::DropLastOfLinkedPages
                if paged_manifests && resp.headers().contains_key("link") =>
            {
                drop_last(resp).await
            }
            Break::LinkWithoutRel if path.ends_with("/tags/list") => {
                let mut resp = resp;
                let bare = resp
                    .headers()
                    .get("link")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .map(str::to_string);
                if let Some(bare) = bare {
                    resp.headers_mut()
                        .insert("link", bare.parse().expect("header"));
                }
                Ok(resp)
            }
            Break::DropLastTag if path.ends_with("/tags/list") && resp.status().is_success() => {
                drop_last(resp).await
            }
            Break::BytesUnitInUploadRange if path.contains("/blobs/uploads/") => {
                let mut resp = resp;
                let range = resp
                    .headers()
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| format!("bytes={v}"));
                if let Some(range) = range {
                    resp.headers_mut()
                        .insert("range", range.parse().expect("header"));
                }
                Ok(resp)
            }
            Break::PlainJson if listing && resp.status().is_success() => {
                let mut resp = resp;
                resp.headers_mut()
                    .insert("content-type", "application/json".parse().expect("header"));
                Ok(resp)
            }
            _ => Ok(resp),
        }
    })
}

async fn wrong(brk: Break) -> Wrong {
    let registry = marina::Registry::builder()
        .in_memory()
        .build()
        .expect("registry");
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = *acceptor.local_addr()[0]
        .as_socket_addr()
        .expect("a socket address");
    let server = tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app(&registry, brk)));
    Wrong {
        url: format!("http://{addr}"),
        server,
    }
}

async fn run(url: &str, options: Options) -> Report {
    harness::check(
        url,
        Options {
            sections: vec![Section::Extensions],
            ..options
        },
    )
    .await
    .expect("the harness runs")
}

/// The verdict of each check, as `id kind [requirement]`.
fn verdicts(report: &Report) -> Vec<String> {
    report
        .outcomes
        .iter()
        .map(|o| match &o.verdict {
            Verdict::Fail(f) => format!("{} fail {}", o.id, f.requirement),
            v => format!("{} {}", o.id, v.kind()),
        })
        .collect()
}

fn assert_verdicts(report: &Report, want: &[&str]) {
    let got = verdicts(report);
    assert_eq!(got, want, "{}", report::render_terminal(report, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_dropped_from_full_pages_fail_the_listing_checks() {
    let w = wrong(Break::DropLastOfLinkedPages).await;
    let report = run(&w.url, Options::default()).await;
    assert_verdicts(
        &report,
        &[
            "extensions.discover pass",
            "extensions.discover-repository pass",
            "extensions.marina-discover pass",
            "extensions.marina-repositories pass",
            "extensions.marina-tags pass",
            // Pages of 2 become pages of 1 before a full last page of 2.
            "extensions.marina-manifests fail M019",
            // Pages of 2, 2, 1 become 1, 1, 1: a valid cut, but two referrers short.
            "extensions.marina-filters fail M014",
            "extensions.marina-referrers fail M013",
            "extensions.marina-live-paging pass",
            "extensions.marina-versioning pass",
            "extensions.marina-errors pass",
        ],
    );
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_artifact_type_filter_fails_the_filter_checks() {
    let w = wrong(Break::IgnoreArtifactType).await;
    let report = run(
        &w.url,
        Options {
            only: vec![
                "extensions.marina-filters".into(),
                "extensions.marina-referrers".into(),
                "extensions.marina-manifests".into(),
            ],
            ..Options::default()
        },
    )
    .await;
    assert_verdicts(
        &report,
        &[
            "extensions.marina-manifests pass",
            "extensions.marina-filters fail M014",
            "extensions.marina-referrers fail M014",
        ],
    );
    let Verdict::Fail(f) = &report.outcomes[1].verdict else {
        unreachable!("asserted above")
    };
    assert!(
        f.expected.contains("artifactType") && f.transcript.contains("GET"),
        "the failure says which filter and shows the exchanges: {f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_extension_name_fails_discover_and_skips_the_extension() {
    let w = wrong(Break::MalformedName).await;
    let report = run(
        &w.url,
        Options {
            only: vec![
                "extensions.discover".into(),
                "extensions.marina-repositories".into(),
                "extensions.marina-errors".into(),
            ],
            ..Options::default()
        },
    )
    .await;
    assert_verdicts(
        &report,
        &[
            "extensions.discover fail X004",
            "extensions.discover-repository pass",
            "extensions.marina-repositories skipped",
            "extensions.marina-errors skipped",
        ],
    );
    let Verdict::Fail(f) = &report.outcomes[0].verdict else {
        unreachable!("asserted above")
    };
    assert!(f.expected.contains("_Marina!"), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_without_their_media_type_fail_versioning() {
    let w = wrong(Break::PlainJson).await;
    let report = run(
        &w.url,
        Options {
            only: vec![
                "extensions.marina-versioning".into(),
                "extensions.marina-tags".into(),
            ],
            ..Options::default()
        },
    )
    .await;
    assert_verdicts(
        &report,
        &[
            "extensions.marina-tags fail M004",
            "extensions.marina-versioning fail M004",
        ],
    );
}

/// Offset pages look right while nothing changes, and skip a tag that was
/// there all along once tags before the cursor are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_paging_fails_the_live_paging_check() {
    let w = wrong(Break::OffsetPaging).await;
    let report = run(
        &w.url,
        Options {
            only: vec!["extensions.marina-live-paging".into()],
            ..Options::default()
        },
    )
    .await;
    assert_verdicts(&report, &["extensions.marina-live-paging fail M022"]);
    let Verdict::Fail(f) = &report.outcomes[0].verdict else {
        unreachable!("asserted above")
    };
    assert!(f.expected.contains("missing [\"t03\"]"), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_runs_check_what_needs_no_push() {
    let reg = marina::testing::TestRegistry::start_in_memory().await;
    reg.push_image("seed/app", "v1").await;
    let report = run(
        reg.url(),
        Options {
            push: false,
            delete: false,
            image: Some("seed/app:v1".into()),
            ..Options::default()
        },
    )
    .await;
    assert_verdicts(
        &report,
        &[
            "extensions.discover pass",
            "extensions.discover-repository pass",
            "extensions.marina-discover pass",
            "extensions.marina-repositories skipped",
            "extensions.marina-tags skipped",
            "extensions.marina-manifests skipped",
            "extensions.marina-filters skipped",
            "extensions.marina-referrers skipped",
            "extensions.marina-live-paging skipped",
            "extensions.marina-versioning pass",
            "extensions.marina-errors pass",
        ],
    );
}

/// A tag list `Link` without `rel="next"` breaks R096, though the pages it names
/// are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_list_link_without_rel_next_fails_r096() {
    let w = wrong(Break::LinkWithoutRel).await;
    let report = harness::check(
        &w.url,
        Options {
            only: vec!["tags.link".into()],
            ..Options::default()
        },
    )
    .await
    .expect("the harness runs");
    assert_verdicts(&report, &["tags.link fail R096"]);
}

/// The other header grammars the spec fixes (issue 18 item 15's audit): an
/// upload `Range` is `0-<end>` (no `bytes=` unit), and a Bearer challenge
/// names its realm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_range_with_a_unit_and_a_bearer_challenge_without_realm_fail() {
    for (brk, id, want) in [
        (
            Break::BytesUnitInUploadRange,
            "push.chunked",
            "push.chunked fail R050",
        ),
        (
            Break::BearerWithoutRealm,
            "protocol.ping",
            "protocol.ping fail R143",
        ),
    ] {
        let w = wrong(brk).await;
        let report = harness::check(
            &w.url,
            Options {
                only: vec![id.into()],
                ..Options::default()
            },
        )
        .await;
        match report {
            Ok(report) => {
                let o = report
                    .outcomes
                    .iter()
                    .find(|o| o.id == id)
                    .expect("the check ran");
                let got = match &o.verdict {
                    Verdict::Fail(f) => format!("{id} fail {}", f.requirement),
                    v => format!("{id} {}", v.kind()),
                };
                assert_eq!(got, want);
            }
            // A registry whose /v2/ demands a realm-less Bearer login is refused
            // before any check, naming the challenge.
            Err(e) => assert!(
                brk == Break::BearerWithoutRealm
                    && e.to_string().contains("names its realm")
                    && e.to_string().contains("Bearer service"),
                "{e}"
            ),
        }
    }
}

/// A failing property prints its minimal case once, in the report, and
/// proptest's own notices ("proptest: Aborting shrinking …") never reach
/// stderr (issue 18 item 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_property_reports_its_case_without_proptest_noise() {
    let w = wrong(Break::DropLastTag).await;
    let url = w.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_marina"))
            .args([
                "check",
                &url,
                "--only",
                "properties.tags-model",
                "--verbose",
            ])
            // A seed whose case takes more than proptest's automatic 64 shrink steps.
            .args(["--seed", "2"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (code, stdout, stderr) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("minimal failing case"), "{stdout}");
    assert!(
        !stderr.contains("proptest"),
        "proptest's noise on stderr:\n{stderr}"
    );
    assert!(!stdout.contains("proptest:"), "{stdout}");
}
