//! How requests authenticate, as the OpenAPI document declares it: HTTP Basic,
//! a Bearer token (from the registry's token endpoint or an external issuer), or
//! nothing. The declaration only documents; `crate::auth` decides every request
//! before routing, and a registry without access control ignores credentials.

// The extracted credentials are never read here: `crate::auth` reads them.
#![allow(dead_code)]

use poem_openapi::auth::{Basic, Bearer};
use poem_openapi::SecurityScheme;

/// HTTP Basic with a user of the registry's htpasswd file.
#[derive(SecurityScheme)]
#[oai(rename = "basic", ty = "basic")]
pub struct BasicLogin(
    /// The credentials sent.
    pub Basic,
);

/// A Bearer token, as issued by the realm of a `WWW-Authenticate: Bearer` challenge.
#[derive(SecurityScheme)]
#[oai(rename = "bearer", ty = "bearer", bearer_format = "JWT")]
pub struct BearerToken(
    /// The token sent.
    pub Bearer,
);

/// The ways a request may authenticate; anonymous requests are allowed as far as
/// the registry's policy lets anonymous callers act.
#[derive(SecurityScheme)]
pub enum Login {
    /// HTTP Basic.
    Basic(BasicLogin),
    /// A Bearer token.
    Bearer(BearerToken),
    /// No credentials.
    #[oai(fallback)]
    Anonymous,
}
