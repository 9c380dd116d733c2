//! Bearer tokens of the registry token protocol: JWTs whose `access` claim lists
//! what they grant (`[{"type":"repository","name":"org/app","actions":["pull"]}]`).
//! Marina signs its own with ES256 (a P-256 key from a file, or a fresh one per
//! start), or trusts those of an external issuer given its public key.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};

use super::actions::Actions;
use super::config::{ExternalIssuer, TokenConfig};

/// One entry of the `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Repository name, or `catalog`.
    pub name: String,
    /// Granted actions (`pull`, `push`, `delete`, `*`).
    pub actions: Vec<String>,
}

/// A JWT audience: one string or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user name, empty for anonymous.
    #[serde(default)]
    pub sub: String,
    /// Audience: the registry's service name.
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before.
    #[serde(default)]
    pub nbf: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// Unique id.
    #[serde(default)]
    pub jti: String,
    /// What the token grants.
    #[serde(default)]
    pub access: Vec<Access>,
    /// Marina's own tokens: the tag of the user's htpasswd entry when it was
    /// issued (see `Users::entry_tag`); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entry: String,
}

impl Claims {
    /// What the token grants on `repo`.
    pub fn grants(&self, repo: &str) -> Actions {
        self.access
            .iter()
            .filter(|a| a.kind == "repository" && a.name == repo)
            .fold(Actions::NONE, |acc, a| {
                acc.union(Actions::parse_list(&a.actions.join(",")))
            })
    }

    /// The policy subject of the token: anonymous when `sub` is empty.
    pub fn subject(&self) -> super::Subject<'_> {
        if self.sub.is_empty() {
            super::Subject::Anonymous
        } else {
            super::Subject::User(&self.sub)
        }
    }
}

/// Signs Marina's own tokens.
pub struct Issuer {
    key: EncodingKey,
    issuer: String,
    service: String,
    ttl: u64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("service", &self.service)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A signed token and when it was made.
#[derive(Clone)]
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Issue time, seconds since the epoch.
    pub issued_at: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Issued(<redacted>, expires_in: {})", self.expires_in)
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Issuer {
    /// Signs a token for `subject` (None: anonymous) granting `access`, bound
    /// to `entry`, the tag of the subject's htpasswd entry (`Users::entry_tag`;
    /// empty for none).
    pub fn issue(
        &self,
        subject: Option<&str>,
        entry: &str,
        access: Vec<Access>,
        now: u64,
    ) -> Result<Issued, String> {
        let claims = Claims {
            entry: entry.to_string(),
            iss: self.issuer.clone(),
            sub: subject.unwrap_or("").to_string(),
            aud: Audience::One(self.service.clone()),
            exp: now + self.ttl,
            nbf: now.saturating_sub(5),
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)
            .map_err(|e| format!("cannot sign token: {e}"))?;
        Ok(Issued {
            token,
            expires_in: self.ttl,
            issued_at: now,
        })
    }
}

/// Checks tokens: Marina's own, or an external issuer's.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// Verifies signature, issuer, audience and lifetime; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| format!("{:?}", e.kind()))
    }
}

fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.leeway = 30;
    v.validate_nbf = true;
    v
}

/// The P-256 private key in `path` (PKCS#8 PEM), or a fresh one.
fn p256_key(path: Option<&Path>) -> Result<p256::SecretKey, String> {
    match path {
        Some(p) => {
            let pem = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read token signing key {}: {e}", p.display()))?;
            p256::SecretKey::from_pkcs8_pem(&pem).map_err(|e| {
                format!("token signing key {}: not a PKCS#8 PEM P-256 key ({e}); make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`", p.display())
            })
        }
        None => (0..16)
            .find_map(|_| p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()).ok())
            .ok_or_else(|| "cannot generate a token signing key".to_string()),
    }
}

/// Marina's own issuer and the matching verifier.
pub fn own(config: &TokenConfig) -> Result<(Issuer, Verifier), String> {
    let secret = p256_key(config.signing_key.as_deref())?;
    let private = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode signing key: {e}"))?;
    let public = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode public key: {e}"))?;
    let key =
        EncodingKey::from_ec_pem(private.as_bytes()).map_err(|e| format!("signing key: {e}"))?;
    let dkey =
        DecodingKey::from_ec_pem(public.as_bytes()).map_err(|e| format!("public key: {e}"))?;
    Ok((
        Issuer {
            key,
            issuer: config.issuer.clone(),
            service: config.service.clone(),
            ttl: config.ttl_secs,
        },
        Verifier {
            key: dkey,
            validation: validation(Algorithm::ES256, &config.issuer, &config.service),
        },
    ))
}

/// A verifier for an external issuer's tokens.
pub fn external(ext: &ExternalIssuer, service: &str) -> Result<Verifier, String> {
    let pem = std::fs::read(&ext.public_key)
        .map_err(|e| format!("cannot read issuer key {}: {e}", ext.public_key.display()))?;
    let alg: Algorithm = ext
        .algorithm
        .parse()
        .map_err(|_| format!("unknown algorithm {}", ext.algorithm))?;
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
        _ => DecodingKey::from_rsa_pem(&pem),
    }
    .map_err(|e| format!("issuer key {}: {e}", ext.public_key.display()))?;
    let audience = ext.audience.as_deref().unwrap_or(service);
    Ok(Verifier {
        key,
        validation: validation(alg, &ext.issuer, audience),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_access(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_grants() {
        let (issuer, verifier) = own(&TokenConfig::default()).unwrap();
        let t = issuer
            .issue(
                Some("alice"),
                "0123456789abcdef",
                vec![repo_access("org/app", &["pull", "push"])],
                now(),
            )
            .unwrap();
        let c = verifier.verify(&t.token).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.entry, "0123456789abcdef");
        assert_eq!(c.grants("org/app").to_string(), "pull,push");
        assert!(c.grants("org/other").is_empty());
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let config = TokenConfig::default();
        let (issuer, verifier) = own(&config).unwrap();
        let old = issuer.issue(Some("a"), "", vec![], now() - 3600).unwrap();
        assert!(verifier.verify(&old.token).unwrap_err().contains("Expired"));
        let (other, _) = own(&config).unwrap();
        let forged = other.issue(Some("a"), "", vec![], now()).unwrap();
        assert!(verifier
            .verify(&forged.token)
            .unwrap_err()
            .contains("Signature"));
        let (elsewhere, _) = own(&TokenConfig {
            service: "another-registry".into(),
            ..TokenConfig::default()
        })
        .unwrap();
        let foreign = elsewhere.issue(Some("a"), "", vec![], now()).unwrap();
        assert!(verifier.verify(&foreign.token).is_err());
        let good = issuer.issue(Some("a"), "", vec![], now()).unwrap();
        let mut tampered = good.token.clone();
        tampered.insert(tampered.find('.').unwrap() + 3, 'x');
        assert!(verifier.verify(&tampered).is_err());
        assert!(verifier.verify("not-a-jwt").is_err());
    }

    #[test]
    fn a_key_file_signs_across_restarts_and_external_keys_verify() {
        let dir = tempfile::tempdir().unwrap();
        let key = p256_key(None).unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        let config = TokenConfig {
            signing_key: Some(path),
            issuer: "idp".into(),
            ..TokenConfig::default()
        };
        let (first, _) = own(&config).unwrap();
        let (_, second) = own(&config).unwrap();
        let t = first.issue(None, "", vec![], now()).unwrap();
        assert_eq!(second.verify(&t.token).unwrap().sub, "");
        let public = dir.path().join("pub.pem");
        std::fs::write(
            &public,
            key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        )
        .unwrap();
        let ext = ExternalIssuer {
            realm: "https://idp/token".into(),
            public_key: public,
            issuer: "idp".into(),
            audience: None,
            algorithm: "ES256".into(),
        };
        assert!(external(&ext, "marina").unwrap().verify(&t.token).is_ok());
        let wrong_iss = ExternalIssuer {
            issuer: "other".into(),
            ..ext
        };
        assert!(external(&wrong_iss, "marina")
            .unwrap()
            .verify(&t.token)
            .is_err());
    }

    #[test]
    fn debug_hides_tokens() {
        let (issuer, _) = own(&TokenConfig::default()).unwrap();
        let t = issuer.issue(None, "", vec![], now()).unwrap();
        assert!(!format!("{t:?}").contains(&t.token[..10]));
    }
}
