//! Token mode's login: credentials, a `service` and the requested scopes in; a
//! short-lived signed token granting the requested actions that the policy allows
//! out. No HTTP here: the api layer reads the request and writes the answer.

use std::net::IpAddr;

use super::credentials::Credentials;
use super::scope::Scope;
use super::token::{now, Access as Grant, Issued};
use super::{Actions, Auth, Caller, Rejected, Subject};
use crate::oci::RepoName;

/// Why a token was not issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    /// This registry does not sign tokens (no access control, Basic mode, or an
    /// external issuer).
    NoIssuer,
    /// The request names another registry's service.
    UnknownService {
        /// What the request named.
        asked: String,
        /// This registry's service name.
        ours: String,
    },
    /// A bearer token was presented: the endpoint takes Basic credentials.
    BearerGiven,
    /// Wrong credentials, or none while anonymous callers may do nothing.
    Credentials,
    /// Too many failed logins from this address: retry after this many seconds.
    Throttled(u64),
    /// The token could not be signed (logged).
    Signing,
}

impl Auth {
    /// This registry's service name (`service` of challenges and tokens).
    pub fn service(&self) -> &str {
        &self.config.token.service
    }

    /// Issues a token for `creds`, granting of `scopes` what the policy allows.
    pub async fn login(
        &self,
        creds: &Credentials,
        service: Option<&str>,
        scopes: Vec<Scope>,
        ip: Option<IpAddr>,
    ) -> Result<Issued, LoginRefused> {
        let Some(issuer) = &self.issuer else {
            return Err(LoginRefused::NoIssuer);
        };
        if let Some(s) = service {
            if s != self.service() {
                return Err(LoginRefused::UnknownService {
                    asked: s.to_string(),
                    ours: self.service().to_string(),
                });
            }
        }
        if matches!(creds, Credentials::Bearer(_)) {
            return Err(LoginRefused::BearerGiven);
        }
        let subject = match self.identify(creds, ip).await {
            Ok(Caller::User(u)) => Some(u),
            Ok(_) => None,
            Err(Rejected::Credentials) => return Err(LoginRefused::Credentials),
            Err(Rejected::Throttled(secs)) => return Err(LoginRefused::Throttled(secs)),
        };
        let who = subject.as_deref().map_or(Subject::Anonymous, Subject::User);
        if subject.is_none() && !self.policy.grants_anything(Subject::Anonymous) {
            return Err(LoginRefused::Credentials);
        }
        let access = self.grants_of(who, scopes);
        let entry = match subject.as_deref() {
            Some(u) => self.users.entry_tag(u).await.unwrap_or_default(),
            None => String::new(),
        };
        issuer
            .issue(subject.as_deref(), &entry, access, now())
            .map_err(|e| {
                tracing::error!(error = %e, "cannot sign a token");
                LoginRefused::Signing
            })
    }

    /// The grants a token for `who` carries: each requested scope narrowed to what
    /// the policy allows, one entry per repository.
    fn grants_of(&self, who: Subject<'_>, scopes: Vec<Scope>) -> Vec<Grant> {
        let mut access: Vec<Grant> = Vec::new();
        for scope in scopes {
            match scope {
                Scope::Repository { name, actions } => {
                    if name.parse::<RepoName>().is_err() {
                        continue;
                    }
                    let granted = actions.intersect(self.policy.grants(who, &name));
                    let held = access
                        .iter_mut()
                        .find(|a| a.kind == "repository" && a.name == name);
                    match held {
                        Some(a) => {
                            let merged = granted.union(Actions::parse_list(&a.actions.join(",")));
                            a.actions = merged.iter().map(|a| a.as_str().to_string()).collect();
                        }
                        None if !granted.is_empty() => access.push(Grant {
                            kind: "repository".into(),
                            name,
                            actions: granted.iter().map(|a| a.as_str().to_string()).collect(),
                        }),
                        None => {}
                    }
                }
                Scope::Catalog => {
                    if !access.iter().any(|a| a.kind == "registry") {
                        access.push(Grant {
                            kind: "registry".into(),
                            name: "catalog".into(),
                            actions: vec!["*".into()],
                        });
                    }
                }
            }
        }
        access
    }
}
