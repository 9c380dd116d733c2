//! The `[auth]` section of the configuration: who the users are (htpasswd), how
//! clients are challenged (basic or token), the token issuer, groups, rules and
//! login throttling. Validation here checks shapes only; files are read when the
//! server starts ([`super::Auth::load`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::actions::Actions;

/// How clients are asked for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// `WWW-Authenticate: Basic`: credentials on every request.
    #[default]
    Basic,
    /// `WWW-Authenticate: Bearer`: clients fetch a short-lived token from the realm.
    Token,
}

/// Access control. Without this section the registry is open to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// htpasswd file of bcrypt entries (`htpasswd -B`, `marina passwd`); re-read
    /// when it changes. Default: none (only anonymous rules and external tokens).
    pub htpasswd: Option<PathBuf>,
    /// `basic` or `token` [default: basic].
    pub scheme: AuthScheme,
    /// Token issuing and checking (used when `scheme = "token"`).
    pub token: TokenConfig,
    /// Group name → member user names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Grants; a caller may do what any matching rule allows. Default: every
    /// authenticated user may pull, push and delete everywhere; anonymous nothing.
    pub rules: Vec<Rule>,
    /// Failed-login throttling per client address.
    pub throttle: ThrottleConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            htpasswd: None,
            scheme: AuthScheme::Basic,
            token: TokenConfig::default(),
            groups: BTreeMap::new(),
            rules: vec![Rule {
                users: vec!["*".into()],
                groups: vec![],
                anonymous: false,
                repositories: vec!["**".into()],
                actions: vec!["*".into()],
            }],
            throttle: ThrottleConfig::default(),
        }
    }
}

/// One grant: these callers may do these actions on these repositories.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// User names; `*` means every authenticated user.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names (see `groups`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether the rule applies to callers without credentials (and so to everyone).
    #[serde(default)]
    pub anonymous: bool,
    /// Globs over repository names: `*` stays within a path segment, `**` crosses
    /// segments (`org2/team-a/*`, `public/**`, `**`).
    pub repositories: Vec<String>,
    /// `pull`, `push`, `delete`, or `*` for all three.
    pub actions: Vec<String>,
}

/// Token issuing (Marina's own `/token` endpoint) or trusting an external issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// The realm clients are sent to \[default: `<scheme>://<host>/token` of the request\].
    pub realm: Option<String>,
    /// The `service` of challenges and the tokens' audience [default: marina].
    pub service: String,
    /// The tokens' `iss` [default: marina].
    pub issuer: String,
    /// Lifetime of issued tokens in seconds [default: 300].
    pub ttl_secs: u64,
    /// PKCS#8 PEM file of an EC P-256 private key to sign tokens with (ES256);
    /// share it between replicas. Default: a fresh key at each start.
    pub signing_key: Option<PathBuf>,
    /// Trust tokens from this issuer instead of issuing them (no `/token` endpoint).
    pub external: Option<ExternalIssuer>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            realm: None,
            service: "marina".into(),
            issuer: "marina".into(),
            ttl_secs: 300,
            signing_key: None,
            external: None,
        }
    }
}

/// An external token issuer whose JWTs are trusted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuer {
    /// Its token endpoint, sent to clients as the challenge's realm.
    pub realm: String,
    /// PEM file of its public key (EC, RSA or Ed25519).
    pub public_key: PathBuf,
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens carry [default: the `service`].
    #[serde(default)]
    pub audience: Option<String>,
    /// JWS algorithm: ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512 or EdDSA.
    pub algorithm: String,
}

/// Failed-login throttling per client address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Failures tolerated within `window_secs` [default: 5].
    pub max_failures: u32,
    /// Window over which failures are counted, in seconds [default: 60].
    pub window_secs: u64,
    /// How long an address is refused (429) once over the limit, in seconds [default: 60].
    pub lockout_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            window_secs: 60,
            lockout_secs: 60,
        }
    }
}

/// JWS algorithms accepted from external issuers.
pub const EXTERNAL_ALGORITHMS: [&str; 9] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

impl AuthConfig {
    /// Checks what the types cannot: globs, action names, group references, token settings.
    pub fn validate(&self) -> Result<(), String> {
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("auth rule {}", i + 1);
            if rule.users.is_empty() && rule.groups.is_empty() && !rule.anonymous {
                return Err(format!(
                    "{at} applies to nobody: give users, groups or anonymous = true"
                ));
            }
            for g in &rule.groups {
                if !self.groups.contains_key(g) {
                    return Err(format!(
                        "{at} names group {g:?}, which [auth.groups] does not define"
                    ));
                }
            }
            if rule.repositories.is_empty() {
                return Err(format!("{at} has no repositories"));
            }
            for r in &rule.repositories {
                super::policy::compile_glob(r).map_err(|e| format!("{at}: {e}"))?;
            }
            for a in &rule.actions {
                if a != "*" && Actions::parse_list(a).is_empty() {
                    return Err(format!(
                        "{at}: unknown action {a:?} (pull, push, delete or *)"
                    ));
                }
            }
        }
        if self.token.ttl_secs == 0 || self.token.ttl_secs > 86_400 {
            return Err("auth.token.ttl_secs must be between 1 and 86400".into());
        }
        if self.token.service.is_empty() || self.token.service.contains('"') {
            return Err("auth.token.service must be non-empty and contain no quote".into());
        }
        if let Some(realm) = &self.token.realm {
            check_realm(realm)?;
        }
        if let Some(ext) = &self.token.external {
            check_realm(&ext.realm)?;
            if !EXTERNAL_ALGORITHMS.contains(&ext.algorithm.as_str()) {
                return Err(format!(
                    "auth.token.external.algorithm {:?} is not one of {}",
                    ext.algorithm,
                    EXTERNAL_ALGORITHMS.join(", ")
                ));
            }
            if self.scheme != AuthScheme::Token {
                return Err("auth.token.external needs scheme = \"token\"".into());
            }
        }
        if self.throttle.max_failures == 0 || self.throttle.window_secs == 0 {
            return Err("auth.throttle.max_failures and window_secs must be at least 1".into());
        }
        Ok(())
    }
}

fn check_realm(realm: &str) -> Result<(), String> {
    if !(realm.starts_with("https://") || realm.starts_with("http://")) || realm.contains('"') {
        return Err(format!(
            "token realm {realm:?} must be an http(s) URL without quotes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> AuthConfig {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn defaults_grant_authenticated_users_everything() {
        let c = parse("htpasswd = \"/x\"");
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].users, vec!["*"]);
        c.validate().unwrap();
    }

    #[test]
    fn validation_names_the_broken_rule() {
        let bad = [
            ("[[rules]]\nusers=[\"a\"]\nrepositories=[\"x\"]\nactions=[\"fly\"]", "unknown action"),
            ("[[rules]]\ngroups=[\"g\"]\nrepositories=[\"x\"]\nactions=[\"pull\"]", "does not define"),
            ("[[rules]]\nrepositories=[\"x\"]\nactions=[\"pull\"]", "applies to nobody"),
            ("[[rules]]\nanonymous=true\nrepositories=[\"a/[\"]\nactions=[\"pull\"]", "rule 1"),
            ("[token]\nttl_secs = 0", "ttl_secs"),
            ("scheme=\"basic\"\n[token.external]\nrealm=\"https://i/t\"\npublic_key=\"k\"\nissuer=\"i\"\nalgorithm=\"RS256\"", "needs scheme"),
            ("scheme=\"token\"\n[token.external]\nrealm=\"https://i/t\"\npublic_key=\"k\"\nissuer=\"i\"\nalgorithm=\"HS256\"", "HS256"),
        ];
        for (text, needle) in bad {
            let err = parse(text).validate().unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
