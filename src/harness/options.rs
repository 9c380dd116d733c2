//! What a harness run is told: where the registry is, how to authenticate, what it
//! may do there, and which checks to run.

use std::path::PathBuf;

use super::verdict::Section;
use crate::client::{ClientOptions, Credentials};

/// Options of a run. `Options::default()` runs every check with deletes and pushes on.
#[derive(Debug, Clone)]
pub struct Options {
    /// Repository prefix under which every repository of the run is created
    /// (`<prefix>/<run id>-<purpose>`). Default `marina-check`.
    pub repo_prefix: String,
    /// Basic credentials, if the registry needs them.
    pub credentials: Option<Credentials>,
    /// PEM file with extra root certificates.
    pub ca_file: Option<PathBuf>,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// The harness may push (off for read-only registries).
    pub push: bool,
    /// The harness may delete (and cleans up after itself when it may).
    pub delete: bool,
    /// Only these sections (empty = all).
    pub sections: Vec<Section>,
    /// Only checks whose id starts with one of these (empty = all).
    pub only: Vec<String>,
    /// Cases per property check.
    pub cases: u32,
    /// Seed of the property checks' random generator.
    pub seed: u64,
    /// Referrers pushed by the pagination check.
    pub referrers_count: usize,
    /// An existing image (`repository:tag`) the pull checks read instead of
    /// pushing their own when `push` is false (ignored otherwise).
    pub image: Option<String>,
    /// An upstream host the registry proxies (a pull-through cache): the
    /// `protocol.proxy` check pulls [`Options::ns_image`] with `?ns=<host>`.
    pub ns: Option<String>,
    /// The image (`repository:tag`, under the upstream's own name) that check pulls.
    pub ns_image: Option<String>,
    /// Timeout of one HTTP request, in seconds.
    pub request_timeout_secs: u64,
    /// Print a live progress line on stderr (only when it is a terminal).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            repo_prefix: "marina-check".to_string(),
            credentials: None,
            ca_file: None,
            insecure: false,
            push: true,
            delete: true,
            sections: Vec::new(),
            only: Vec::new(),
            cases: 16,
            seed: 0x6d61_7269_6e61,
            referrers_count: 260,
            image: None,
            ns: None,
            ns_image: None,
            request_timeout_secs: 60,
            progress: false,
        }
    }
}

impl Options {
    /// What the run's HTTP client is told.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            credentials: self.credentials.clone(),
            ca_file: self.ca_file.clone(),
            insecure: self.insecure,
            request_timeout_secs: self.request_timeout_secs,
            user_agent: concat!("marina-check/", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Whether a check with this id and section is selected.
    pub fn selects(&self, id: &str, section: Section) -> bool {
        (self.sections.is_empty() || self.sections.contains(&section))
            && (self.only.is_empty() || self.only.iter().any(|p| id.starts_with(p.as_str())))
    }
}
