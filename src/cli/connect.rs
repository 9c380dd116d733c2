//! How to reach and log in to a registry: the flags `marina check` and
//! `marina list*` share, and the credentials they give.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use crate::client::Credentials;

/// Credentials and TLS trust for a registry.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// Who to sign in as.
    #[command(flatten)]
    pub login: LoginArgs,
    /// PEM file of extra CA certificates for TLS, e.g. --ca-file ./ca.pem.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any TLS certificate (self-signed test registries only).
    #[arg(long)]
    pub insecure: bool,
}

impl ConnectArgs {
    /// The credentials given (see [`LoginArgs::credentials`]).
    pub fn credentials(&self) -> Result<Option<Credentials>, String> {
        self.login.credentials()
    }
}

/// Credentials for a registry: what `marina bench` takes too.
#[derive(Debug, Clone, Default, Args)]
pub struct LoginArgs {
    /// User name for Basic auth and for the token endpoint of a Bearer challenge, e.g. --username ci.
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// Password or access token, e.g. --password s3cret (prefer --password-stdin).
    #[arg(long, value_name = "SECRET", conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input, e.g. --password-stdin < token.txt.
    #[arg(long)]
    pub password_stdin: bool,
}

impl LoginArgs {
    /// The credentials given, reading standard input for `--password-stdin`.
    /// A user name without a password (or the reverse) is an error.
    pub fn credentials(&self) -> Result<Option<Credentials>, String> {
        let password = if self.password_stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            Some(s.trim_end_matches(['\n', '\r']).to_string())
        } else {
            self.password.clone()
        };
        match (&self.username, password) {
            (Some(u), Some(p)) => Ok(Some(Credentials {
                username: u.clone(),
                password: p,
            })),
            (None, None) => Ok(None),
            _ => {
                Err("--username and a password (--password or --password-stdin) go together".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_password_go_together() {
        let with = |u: Option<&str>, p: Option<&str>| LoginArgs {
            username: u.map(str::to_string),
            password: p.map(str::to_string),
            ..LoginArgs::default()
        };
        assert_eq!(with(None, None).credentials(), Ok(None));
        assert_eq!(
            with(Some("u"), Some("p")).credentials(),
            Ok(Some(Credentials {
                username: "u".into(),
                password: "p".into()
            }))
        );
        assert!(with(Some("u"), None).credentials().is_err());
        assert!(with(None, Some("p")).credentials().is_err());
    }
}
