//! Fixtures for the access-control tests: htpasswd users, policies, a test CA and
//! server certificates (rcgen), HTTPS clients that trust it, and token requests.

use std::path::{Path, PathBuf};

use marina::config::Config;
use marina::config::TlsConfig;
use marina::config::{AuthConfig, AuthScheme};
use marina::config::{Rule, ThrottleConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::support::TestServer;

/// The users every access-control test knows: `admin` may do everything, `writer`
/// pulls and pushes `team/**`, `reader` only pulls everything, anonymous pulls `public/**`.
pub const USERS: [(&str, &str); 3] = [
    ("admin", "admin-pw"),
    ("writer", "writer-pw"),
    ("reader", "reader-pw"),
];

/// A rule.
pub fn rule(
    users: &[&str],
    groups: &[&str],
    anonymous: bool,
    repos: &[&str],
    actions: &[&str],
) -> Rule {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    Rule {
        users: s(users),
        groups: s(groups),
        anonymous,
        repositories: s(repos),
        actions: s(actions),
    }
}

/// Writes an htpasswd file (bcrypt cost 4, `$2y$` as `htpasswd -B` writes).
pub fn write_htpasswd(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("htpasswd");
    let text: String = users
        .iter()
        .map(|(u, p)| {
            format!(
                "{u}:{}\n",
                bcrypt::hash_with_result(p, 4)
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoY)
            )
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// The standard policy of these tests over [`USERS`].
pub fn standard_auth(dir: &Path, scheme: AuthScheme) -> AuthConfig {
    let mut auth = AuthConfig {
        htpasswd: Some(write_htpasswd(dir, &USERS)),
        scheme,
        rules: vec![
            rule(&[], &["admins"], false, &["**"], &["*"]),
            rule(&["writer"], &[], false, &["team/**"], &["pull", "push"]),
            rule(&["reader"], &[], false, &["**"], &["pull"]),
            rule(&[], &[], true, &["public/**"], &["pull"]),
        ],
        throttle: ThrottleConfig {
            max_failures: 1000,
            window_secs: 60,
            lockout_secs: 60,
        },
        ..AuthConfig::default()
    };
    auth.groups.insert("admins".into(), vec!["admin".into()]);
    auth
}

/// A test CA and a server certificate for `127.0.0.1` and `localhost`, as PEM files.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let mut ca = TestCa {
            ca_pem: ca_cert.pem(),
            cert: dir.path().join("server.crt"),
            key: dir.path().join("server.key"),
            dir,
            issuer,
        };
        ca.issue_server_cert();
        std::fs::write(ca.dir.path().join("ca.crt"), &ca.ca_pem).unwrap();
        ca
    }

    /// (Re)writes `server.crt`/`server.key` with a fresh certificate from this CA.
    pub fn issue_server_cert(&mut self) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "marina test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(&self.cert, cert.pem()).unwrap();
        std::fs::write(&self.key, key.serialize_pem()).unwrap();
    }

    /// Writes this CA's server certificate over another CA's files (renewal).
    pub fn issue_into(&self, cert: &Path, key: &Path) {
        let k = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let c = params.signed_by(&k, &self.issuer).unwrap();
        // Key first, then certificate: the reloader retries until the pair matches.
        std::fs::write(key, k.serialize_pem()).unwrap();
        std::fs::write(cert, c.pem()).unwrap();
    }

    /// A directory holding only `ca.crt`, for `--cert-dir` of containers tools.
    pub fn cert_dir(&self) -> PathBuf {
        let d = self.dir.path().join("certs.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("ca.crt"), &self.ca_pem).unwrap();
        d
    }

    pub fn tls_config(&self, reload_secs: u64) -> TlsConfig {
        TlsConfig {
            cert: self.cert.clone(),
            key: self.key.clone(),
            reload_secs,
        }
    }

    /// A client that trusts only this CA.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }
}

/// Starts a server with `auth` (and TLS from `ca`, if given); the returned server's
/// client trusts the CA.
pub async fn start_secure(
    auth: AuthConfig,
    ca: Option<&TestCa>,
    f: impl FnOnce(&mut Config),
) -> TestServer {
    let mut s = TestServer::start_with(|c| {
        c.auth = Some(auth);
        c.tls = ca.map(|ca| ca.tls_config(1));
        f(c);
    })
    .await;
    if let Some(ca) = ca {
        s.client = ca.client();
    }
    s
}

/// `Basic <base64(user:password)>`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Fetches a token from the server's `/token` for `scopes`; returns the response.
pub async fn token(
    s: &TestServer,
    creds: Option<(&str, &str)>,
    scopes: &[&str],
) -> crate::support::Resp {
    let mut q = vec!["service=marina".to_string()];
    q.extend(
        scopes
            .iter()
            .map(|sc| format!("scope={}", sc.replace(':', "%3A").replace('/', "%2F"))),
    );
    let mut r = s
        .req(reqwest::Method::GET, &format!("/token?{}", q.join("&")))
        .await;
    if let Some((u, p)) = creds {
        r = r.header("Authorization", &basic(u, p));
    }
    r.send().await
}

/// `Bearer <token>` for `scopes`, asserting the token endpoint says 200.
pub async fn bearer(s: &TestServer, creds: Option<(&str, &str)>, scopes: &[&str]) -> String {
    let r = token(s, creds, scopes).await;
    r.expect(200, None);
    format!("Bearer {}", r.json()["token"].as_str().unwrap())
}
