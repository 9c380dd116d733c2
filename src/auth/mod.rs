//! Access control, pure: who the caller is (htpasswd users over Basic auth, or
//! bearer tokens), what the policy lets them do, and the tokens of token mode. No
//! HTTP and no registry here.
//!
//! Contract: the api layer's guard asks the route table what a request needs
//! ([`Need`]) and this module whether the caller has it; the registry never sees
//! identities. Handlers whose answer depends on the caller (`_catalog`, the listing
//! extension, anonymous mounts) find an [`Access`] in the request's extensions and
//! hand the registry a visibility predicate built from it.

pub(crate) mod actions;
pub mod config;
pub(crate) mod credentials;
pub(crate) mod htpasswd;
pub(crate) mod login;
pub(crate) mod need;
pub(crate) mod policy;
pub(crate) mod scope;
pub(crate) mod throttle;
pub(crate) mod token;
pub(crate) mod users;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

pub use actions::{Action, Actions};
pub use config::{AuthConfig, AuthScheme};
pub use login::LoginRefused;
pub use need::{MountFrom, Need};

pub use credentials::Credentials;
use policy::Policy;
pub use policy::Subject;
pub use scope::{Challenge, Scope};
use throttle::Throttle;
use token::{Claims, Issuer, Verifier};
use users::Users;

/// The loaded access-control state: policy, users, token keys, throttle.
#[derive(Debug)]
pub struct Auth {
    config: AuthConfig,
    policy: Policy,
    users: Users,
    throttle: Throttle,
    issuer: Option<Issuer>,
    verifier: Option<Verifier>,
}

/// Who a request comes from, once its credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// A user whose password was checked.
    User(String),
    /// A valid bearer token.
    Token(Box<Claims>),
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Wrong, unknown or malformed credentials, or an invalid token.
    Credentials,
    /// Too many failures from this address: retry after this many seconds.
    Throttled(u64),
}

impl Caller {
    /// The user name for logs, `None` for an anonymous caller.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::User(u) => Some(u),
            Caller::Token(c) if c.sub.is_empty() => None,
            Caller::Token(c) => Some(&c.sub),
        }
    }
}

/// Who made a request and why access control refused it, if it did: left in the
/// response's extensions for the access log and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The authenticated user; `None` for anonymous callers.
    pub user: Option<String>,
    /// Why the request was refused: `credentials` (wrong or unusable
    /// credentials), `unauthenticated` (credentials needed), `denied` (no grant),
    /// `throttled` (locked out after failed logins).
    pub refusal: Option<&'static str>,
}

/// The caller of a request and what it may do, for handlers (in the request's
/// extensions when access control is on).
#[derive(Debug, Clone)]
pub struct Access {
    auth: Arc<Auth>,
    caller: Caller,
}

impl Access {
    /// The access of `caller` under `auth`.
    pub fn new(auth: Arc<Auth>, caller: Caller) -> Access {
        Access { auth, caller }
    }

    /// Whether the caller may pull every repository: listings and anonymous
    /// mounts then need no filtering.
    pub fn reads_everything(&self) -> bool {
        let policy = &self.auth.policy;
        match &self.caller {
            Caller::Anonymous => policy.pulls_everything(Subject::Anonymous),
            Caller::User(u) => policy.pulls_everything(Subject::User(u)),
            Caller::Token(c) if self.auth.issuer.is_some() => policy.pulls_everything(c.subject()),
            Caller::Token(_) => false,
        }
    }

    /// Whether `repo` may be shown to the caller in listings.
    pub fn may_list(&self, repo: &str) -> bool {
        self.auth.visible(&self.caller, repo)
    }
}

impl Auth {
    /// Loads the configuration's files (htpasswd, keys). Blocking: call at startup.
    pub fn load(config: &AuthConfig) -> Result<Auth, String> {
        config.validate()?;
        let policy = Policy::new(config)?;
        let users = Users::load(config.htpasswd.as_deref())?;
        let (issuer, verifier) = match (config.scheme, &config.token.external) {
            (AuthScheme::Basic, _) => (None, None),
            (AuthScheme::Token, Some(ext)) => {
                (None, Some(token::external(ext, &config.token.service)?))
            }
            (AuthScheme::Token, None) => {
                let (i, v) = token::own(&config.token)?;
                (Some(i), Some(v))
            }
        };
        Ok(Auth {
            config: config.clone(),
            policy,
            users,
            throttle: Throttle::new(&config.throttle),
            issuer,
            verifier,
        })
    }

    /// Whether anonymous callers may do anything at all (otherwise registry-level
    /// listings challenge them).
    pub fn anonymous_may_act(&self) -> bool {
        self.policy.grants_anything(Subject::Anonymous)
    }

    /// Whether a refusal of `caller` should ask for a wider token rather than
    /// deny: an external issuer's token lacks the scope, or an anonymous token
    /// should log in.
    pub fn refusal_asks_for_token(&self, caller: &Caller) -> Option<bool> {
        match caller {
            Caller::Token(c) if c.sub.is_empty() => Some(false),
            Caller::Token(_) if self.issuer.is_none() => Some(true),
            _ => None,
        }
    }

    /// The configuration this was loaded from.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Checks the request's credentials. Failed Basic logins count towards the
    /// address's throttle; a throttled address is refused before any check.
    pub async fn identify(
        &self,
        creds: &Credentials,
        ip: Option<IpAddr>,
    ) -> Result<Caller, Rejected> {
        match creds {
            Credentials::None => Ok(Caller::Anonymous),
            Credentials::Malformed => Err(Rejected::Credentials),
            Credentials::Bearer(t) => {
                let claims = match &self.verifier {
                    Some(v) => v.verify(t.expose()).map_err(|_| Rejected::Credentials)?,
                    None => return Err(Rejected::Credentials),
                };
                // An own token names a user of the htpasswd file, as the
                // file was when it was issued: once that user is removed or
                // their password changed, it proves nothing any more. (Tokens
                // of builds before the tag carry none, and end at expiry.)
                if self.issuer.is_some() && !claims.sub.is_empty() {
                    match self.users.entry_tag(&claims.sub).await {
                        None => return Err(Rejected::Credentials),
                        Some(tag) if !claims.entry.is_empty() && tag != claims.entry => {
                            return Err(Rejected::Credentials)
                        }
                        Some(_) => {}
                    }
                }
                Ok(Caller::Token(Box::new(claims)))
            }
            Credentials::Basic { user, password } => {
                if let Some(ip) = ip {
                    self.throttle
                        .check(ip, Instant::now())
                        .map_err(Rejected::Throttled)?;
                }
                if self.users.verify(user, password).await {
                    if let Some(ip) = ip {
                        self.throttle.succeed(ip);
                    }
                    Ok(Caller::User(user.clone()))
                } else {
                    let client = ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
                    tracing::info!(%client, user = %user, "failed login");
                    match ip.map(|ip| self.throttle.fail(ip, Instant::now())) {
                        Some(Err(secs)) => {
                            tracing::warn!(%client, user = %user, retry_after_secs = secs, "login throttle: address locked out after repeated failed logins");
                            Err(Rejected::Throttled(secs))
                        }
                        _ => Err(Rejected::Credentials),
                    }
                }
            }
        }
    }

    /// What `caller` may do on `repo`. For users, anonymous callers and Marina's own
    /// tokens, the live policy of the subject decides: an own token proves who the
    /// caller is, its `access` claim records what was asked for. (Clients disagree
    /// on how to widen a token: oras-py fetches a new one only after a 403, the
    /// conformance suite only after a 401; so no answer to "this token lacks a scope
    /// the policy grants" works for both, and none is needed. A revoked grant also
    /// takes effect at once instead of when the token expires.) For an external
    /// issuer's tokens, their `access` claim decides.
    pub fn grants(&self, caller: &Caller, repo: &str) -> Actions {
        match caller {
            Caller::Anonymous => self.policy.grants(Subject::Anonymous, repo),
            Caller::User(u) => self.policy.grants(Subject::User(u), repo),
            Caller::Token(c) if self.issuer.is_some() => self.policy.grants(c.subject(), repo),
            Caller::Token(c) => c.grants(repo),
        }
    }

    /// Whether `repo` is listed for `caller` (and may be the source of a mount): it
    /// may pull there.
    pub fn visible(&self, caller: &Caller, repo: &str) -> bool {
        self.grants(caller, repo).contains(Action::Pull)
    }

    /// The challenge for a refused request.
    pub fn challenge(
        &self,
        default_realm: &str,
        scope: Option<Scope>,
        insufficient: bool,
    ) -> Challenge {
        let t = &self.config.token;
        match self.config.scheme {
            AuthScheme::Basic => Challenge::Basic {
                realm: t.service.clone(),
            },
            AuthScheme::Token => Challenge::Bearer {
                realm: t
                    .external
                    .as_ref()
                    .map(|e| e.realm.clone())
                    .or_else(|| t.realm.clone())
                    .unwrap_or_else(|| default_realm.to_string()),
                service: t.service.clone(),
                scope,
                insufficient,
            },
        }
    }
}
