//! Signing in for `marina bench --username/--password`: the registry's 401
//! challenge to `GET /v2/` picks the scheme. Basic sends the credentials with
//! every request; Bearer fetches one token per repository (scope
//! `repository:<name>:pull,push,delete`, plus pull on a mount's source) from
//! the challenge's realm, before the request, so timed requests never wait for
//! a 401 round trip. Tokens are reused for the whole run.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use reqwest::header::HeaderMap;
use reqwest::Url;
use tokio::sync::Mutex;

use crate::client::auth::{basic, scope_for};
use crate::client::headers::parse_www_authenticate;
use crate::client::Credentials;

/// How requests are signed.
#[derive(Debug)]
enum Scheme {
    /// `Authorization: Basic …` on every request.
    Basic(String),
    /// Tokens from `realm`, one per scope.
    Bearer {
        realm: Url,
        service: Option<String>,
        basic: String,
        tokens: Mutex<HashMap<String, String>>,
    },
}

/// Signs the requests of one registry.
#[derive(Debug)]
pub struct Signer {
    scheme: Scheme,
    http: reqwest::Client,
}

impl Signer {
    /// The signer the challenge in `headers` (of a 401 to `base`) asks for.
    pub fn from_challenge(
        http: reqwest::Client,
        base: &Url,
        headers: &HeaderMap,
        creds: &Credentials,
    ) -> Result<Signer> {
        let challenges: Vec<_> = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_www_authenticate)
            .collect();
        let basic = basic(&creds.username, &creds.password);
        let scheme = if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = c.param("realm") else {
                bail!("the registry's Bearer challenge names no realm to get a token from");
            };
            let realm = Url::parse(realm)
                .or_else(|_| base.join(realm))
                .with_context(|| format!("bad token realm {realm:?}"))?;
            if realm.origin() != base.origin() {
                // Tokens come only from the registry's own origin: the bench
                // contacts no other host.
                bail!("the token realm {realm} is not on {base}; marina bench contacts only the registry");
            }
            Scheme::Bearer {
                realm,
                service: c.param("service").map(str::to_string),
                basic,
                tokens: Mutex::new(HashMap::new()),
            }
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            Scheme::Basic(basic)
        } else {
            bail!("the registry asks for authentication with a scheme marina bench does not speak (neither Basic nor Bearer)");
        };
        Ok(Signer { scheme, http })
    }

    /// The `Authorization` value for a request to `url`.
    pub async fn authorization(&self, url: &Url) -> Result<String> {
        let (realm, service, basic, tokens) = match &self.scheme {
            Scheme::Basic(b) => return Ok(b.clone()),
            Scheme::Bearer {
                realm,
                service,
                basic,
                tokens,
            } => (realm, service, basic, tokens),
        };
        let scope = scope_for(url);
        let mut tokens = tokens.lock().await;
        if let Some(t) = tokens.get(&scope) {
            return Ok(t.clone());
        }
        let mut token_url = realm.clone();
        {
            let mut q = token_url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let resp = self
            .http
            .get(token_url.clone())
            .header(reqwest::header::AUTHORIZATION, basic)
            .send()
            .await
            .with_context(|| format!("cannot get a token from {realm}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("the token endpoint {realm} answered {status}: check --username and --password");
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .context("a token answer that is not JSON")?;
        let Some(token) = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
        else {
            bail!("the token endpoint {realm} answered without a token");
        };
        let value = format!("Bearer {token}");
        tokens.insert(scope, value.clone());
        Ok(value)
    }
}
