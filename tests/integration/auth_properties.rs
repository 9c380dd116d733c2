//! Property: for random policies and random requests with random credentials, the
//! server's decision matches a simple model of the policy, and no refused request
//! changes stored state (tag lists and blob presence compared before and after).

use std::collections::BTreeMap;

use marina::config::ThrottleConfig;
use marina::config::{AuthConfig, AuthScheme};
use marina::oci::Algorithm;
use proptest::prelude::*;
use reqwest::Method;

use crate::auth_api::send;
use crate::auth_support::{basic, rule, write_htpasswd};
use crate::support::{image_manifest, TestServer};

const REPOS: [&str; 3] = ["a", "org/x", "org/y/z"];
const PATTERNS: [&str; 5] = ["a", "org/*", "org/**", "**", "org/y/*"];
const USERS: [(&str, &str); 2] = [("alice", "alice-pw"), ("bob", "bob-pw")];

#[derive(Debug, Clone)]
struct ModelRule {
    who: Who,
    pattern: &'static str,
    actions: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    User(usize),
    Everyone,
}

#[derive(Debug, Clone, Copy)]
enum Cred {
    None,
    Good(usize),
    WrongPassword(usize),
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    PullManifest,
    PushBlob,
    PushManifest,
    DeleteTag,
    DeleteBlob,
    MountFrom(usize),
}

/// The model: glob matching written out for the generator's few patterns.
fn matches(pattern: &str, repo: &str) -> bool {
    match pattern {
        "**" => true,
        "org/**" => repo.starts_with("org/"),
        "org/*" => repo.starts_with("org/") && repo.matches('/').count() == 1,
        "org/y/*" => repo.starts_with("org/y/") && repo.matches('/').count() == 2,
        p => p == repo,
    }
}

fn model_grants(rules: &[ModelRule], user: Option<usize>, repo: &str, action: &str) -> bool {
    rules.iter().any(|r| {
        let applies = match (r.who, user) {
            (Who::Anonymous, _) => true,
            (Who::Everyone, Some(_)) => true,
            (Who::User(u), Some(v)) => u == v,
            _ => false,
        };
        applies && matches(r.pattern, repo) && r.actions.iter().any(|a| *a == action || *a == "*")
    })
}

fn arb_rule() -> impl Strategy<Value = ModelRule> {
    (
        prop_oneof![
            Just(Who::Anonymous),
            Just(Who::User(0)),
            Just(Who::User(1)),
            Just(Who::Everyone)
        ],
        proptest::sample::select(PATTERNS.to_vec()),
        proptest::sample::subsequence(vec!["pull", "push", "delete", "*"], 1..=2),
    )
        .prop_map(|(who, pattern, actions)| ModelRule {
            who,
            pattern,
            actions,
        })
}

fn arb_request() -> impl Strategy<Value = (Cred, Op, usize)> {
    (
        prop_oneof![
            Just(Cred::None),
            (0..2usize).prop_map(Cred::Good),
            (0..2usize).prop_map(Cred::WrongPassword),
            Just(Cred::Unknown)
        ],
        prop_oneof![
            Just(Op::PullManifest),
            Just(Op::PushBlob),
            Just(Op::PushManifest),
            Just(Op::DeleteTag),
            Just(Op::DeleteBlob),
            (0..3usize).prop_map(Op::MountFrom)
        ],
        0..3usize,
    )
}

/// Everything a request could change: each repository's tags and which of the
/// seeded and new blobs it links.
async fn state(
    s: &TestServer,
    admin: &str,
    blobs: &[String],
) -> BTreeMap<String, (String, Vec<bool>)> {
    let mut out = BTreeMap::new();
    for repo in REPOS {
        let tags = send(
            s,
            Method::GET,
            &format!("/v2/{repo}/tags/list"),
            Some(admin),
            None,
        )
        .await;
        let mut present = vec![];
        for b in blobs {
            present.push(
                send(
                    s,
                    Method::HEAD,
                    &format!("/v2/{repo}/blobs/{b}"),
                    Some(admin),
                    None,
                )
                .await
                .status
                    == 200,
            );
        }
        out.insert(
            repo.to_string(),
            (String::from_utf8_lossy(&tags.body).into_owned(), present),
        );
    }
    out
}

async fn run_case(
    rules: Vec<ModelRule>,
    requests: Vec<(Cred, Op, usize)>,
) -> Result<(), TestCaseError> {
    // Seed an open server, then restart the same data directory with the policy
    // (plus an `admin` who may read everything, to observe the state).
    let dir = tempfile::tempdir().unwrap();
    let mut config = marina::config::Config::ephemeral(dir.path());
    config.registry.sparse_manifests = false;
    let open = TestServer::start_in(dir, config.clone()).await;
    let mut layers = vec![];
    for repo in REPOS {
        let (_, _) = open.push_image(repo, "v1", repo).await;
        layers.push(
            Algorithm::Sha256
                .digest_of(format!("layer of {repo}").as_bytes())
                .to_string(),
        );
    }
    let dir = open.stop().await;
    let fresh = b"a blob nobody has yet".to_vec();
    let fresh_digest = Algorithm::Sha256.digest_of(&fresh).to_string();
    let mut blobs = layers.clone();
    blobs.push(fresh_digest.clone());

    let mut all_users: Vec<(&str, &str)> = USERS.to_vec();
    all_users.push(("observer", "observer-pw"));
    let mut auth = AuthConfig {
        htpasswd: Some(write_htpasswd(dir.path(), &all_users)),
        scheme: AuthScheme::Basic,
        rules: vec![rule(&["observer"], &[], false, &["**"], &["pull"])],
        throttle: ThrottleConfig {
            max_failures: 10_000,
            window_secs: 60,
            lockout_secs: 1,
        },
        ..AuthConfig::default()
    };
    for r in &rules {
        let (users, anonymous): (Vec<&str>, bool) = match r.who {
            Who::Anonymous => (vec![], true),
            Who::User(u) => (vec![USERS[u].0], false),
            Who::Everyone => (vec!["*"], false),
        };
        auth.rules
            .push(rule(&users, &[], anonymous, &[r.pattern], &r.actions));
    }
    config.auth = Some(auth);
    let s = TestServer::start_in(dir, config).await;
    let observer = basic("observer", "observer-pw");

    for (cred, op, target) in requests {
        let repo = REPOS[target];
        let (header, user, authenticated) = match cred {
            Cred::None => (None, None, true),
            Cred::Good(u) => (Some(basic(USERS[u].0, USERS[u].1)), Some(u), true),
            Cred::WrongPassword(u) => (Some(basic(USERS[u].0, "wrong")), Some(u), false),
            Cred::Unknown => (Some(basic("mallory", "x")), None, false),
        };
        let (method, path, body, action, source) = match op {
            Op::PullManifest => (
                Method::GET,
                format!("/v2/{repo}/manifests/v1"),
                None,
                "pull",
                None,
            ),
            Op::PushBlob => (
                Method::POST,
                format!("/v2/{repo}/blobs/uploads/?digest={fresh_digest}"),
                Some(fresh.clone()),
                "push",
                None,
            ),
            Op::PushManifest => {
                let config = format!("{{\"seed\":\"{repo}\"}}");
                let c = Algorithm::Sha256.digest_of(config.as_bytes());
                let l: marina::oci::Digest = layers[target].parse().unwrap();
                let m = image_manifest(
                    &c,
                    config.len(),
                    &[(&l, format!("layer of {repo}").len())],
                    Some("application/x-prop"),
                    None,
                );
                (
                    Method::PUT,
                    format!("/v2/{repo}/manifests/v2"),
                    Some(m),
                    "push",
                    None,
                )
            }
            Op::DeleteTag => (
                Method::DELETE,
                format!("/v2/{repo}/manifests/v1"),
                None,
                "delete",
                None,
            ),
            Op::DeleteBlob => (
                Method::DELETE,
                format!("/v2/{repo}/blobs/{}", layers[target]),
                None,
                "delete",
                None,
            ),
            Op::MountFrom(src) => (
                Method::POST,
                format!(
                    "/v2/{repo}/blobs/uploads/?mount={}&from={}",
                    layers[src], REPOS[src]
                ),
                None,
                "push",
                Some(src),
            ),
        };
        let granted = authenticated && model_grants(&rules, user, repo, action);
        let before = state(&s, &observer, &blobs).await;
        let r = send(&s, method.clone(), &path, header.as_deref(), body).await;
        let after = state(&s, &observer, &blobs).await;
        let status = r.status.as_u16();
        if !granted {
            let expected = if !authenticated || user.is_none() {
                401
            } else {
                403
            };
            prop_assert_eq!(
                status,
                expected,
                "{} {:?} refused wrongly: {}",
                method,
                cred,
                r.describe()
            );
            prop_assert_eq!(
                &before,
                &after,
                "a refused request changed state: {}",
                r.describe()
            );
        } else {
            // 404: already deleted; 400: a manifest whose layer was deleted.
            let tolerated = status == 404 || (status == 400 && matches!(op, Op::PushManifest));
            prop_assert!(
                status < 400 || tolerated,
                "granted request failed: {}",
                r.describe()
            );
            if let Some(src) = source {
                // Pull on the source is needed even when it is the target itself.
                let readable = model_grants(&rules, user, REPOS[src], "pull");
                let there = before[REPOS[src]].1[src];
                prop_assert_eq!(
                    status == 201,
                    readable && there,
                    "mount decided wrongly: {}",
                    r.describe()
                );
            }
        }
    }
    s.stop().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]
    /// For random policies and requests: allowed exactly when the model says so
    /// (401 without valid credentials, 403 with), and refusals leave no trace.
    #[test]
    fn decisions_match_the_model_and_refusals_change_nothing(
        rules in proptest::collection::vec(arb_rule(), 0..4),
        requests in proptest::collection::vec(arb_request(), 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_case(rules, requests))?;
    }
}
