//! The catalogue of the current suite's optional API and data tests, the version
//! profiles that set their defaults, and the `--on`/`--off` switches that change
//! them.
//!
//! The runner writes every option explicitly into the suite's YAML file instead
//! of relying on the suite's defaults, so what ran is always visible in the
//! copied configuration. The names are the suite's YAML paths; the equivalent
//! `OCI_*` variable names are accepted as aliases.

use std::collections::BTreeMap;
use std::fmt;

/// The suite's version profile: which spec version's defaults apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The released spec (`version: "1.1"`): upload cancel, digest headers and
    /// tag parameters are off.
    Stable,
    /// The development spec (`version: dev`): those features are on too.
    Dev,
}

impl Profile {
    /// The value written to the suite's `version` field.
    pub fn suite_version(self) -> &'static str {
        match self {
            Profile::Stable => "1.1",
            Profile::Dev => "dev",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Stable => "stable",
            Profile::Dev => "dev",
        })
    }
}

/// One optional test of the current suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuiteOption {
    /// The YAML path, e.g. `apis.blobs.uploadCancel`.
    pub path: &'static str,
    /// The environment variable the suite reads for it.
    pub env: &'static str,
    /// Its value in the stable profile.
    pub stable: bool,
    /// Its value in the dev profile.
    pub dev: bool,
}

const fn opt(path: &'static str, env: &'static str, stable: bool, dev: bool) -> SuiteOption {
    SuiteOption {
        path,
        env,
        stable,
        dev,
    }
}

/// Every optional API and data test of the current suite (distribution-spec
/// `conformance/config.go`), with its stable and dev defaults.
pub const CATALOGUE: &[SuiteOption] = &[
    opt("apis.ping", "OCI_API_PING", true, true),
    opt("apis.pull", "OCI_API_PULL", true, true),
    opt("apis.push", "OCI_API_PUSH", true, true),
    opt("apis.blobs.atomic", "OCI_API_BLOBS_ATOMIC", true, true),
    opt("apis.blobs.delete", "OCI_API_BLOBS_DELETE", true, true),
    opt(
        "apis.blobs.digestHeader",
        "OCI_API_BLOBS_DIGEST_HEADER",
        false,
        true,
    ),
    opt(
        "apis.blobs.mountAnonymous",
        "OCI_API_BLOBS_MOUNT_ANONYMOUS",
        true,
        true,
    ),
    opt(
        "apis.blobs.uploadCancel",
        "OCI_API_BLOBS_UPLOAD_CANCEL",
        false,
        true,
    ),
    opt(
        "apis.manifests.atomic",
        "OCI_API_MANIFESTS_ATOMIC",
        true,
        true,
    ),
    opt(
        "apis.manifests.delete",
        "OCI_API_MANIFESTS_DELETE",
        true,
        true,
    ),
    opt(
        "apis.manifests.digestHeader",
        "OCI_API_MANIFESTS_DIGEST_HEADER",
        false,
        true,
    ),
    opt(
        "apis.manifests.tagParam",
        "OCI_API_MANIFESTS_TAG_PARAM",
        false,
        true,
    ),
    opt("apis.tags.atomic", "OCI_API_TAGS_ATOMIC", true, true),
    opt("apis.tags.delete", "OCI_API_TAGS_DELETE", true, true),
    opt("apis.tags.list", "OCI_API_TAGS_LIST", true, true),
    opt("apis.referrer", "OCI_API_REFERRER", true, true),
    opt("data.image", "OCI_DATA_IMAGE", true, true),
    opt("data.index", "OCI_DATA_INDEX", true, true),
    opt("data.indexList", "OCI_DATA_INDEX_LIST", true, true),
    opt("data.sparse", "OCI_DATA_SPARSE", false, false),
    opt("data.artifact", "OCI_DATA_ARTIFACT", true, true),
    opt("data.subject", "OCI_DATA_SUBJECT", true, true),
    opt(
        "data.subjectMissing",
        "OCI_DATA_SUBJECT_MISSING",
        true,
        true,
    ),
    opt("data.artifactList", "OCI_DATA_ARTIFACT_LIST", true, true),
    opt("data.subjectList", "OCI_DATA_SUBJECT_LIST", true, true),
    opt("data.dataField", "OCI_DATA_DATA_FIELD", true, true),
    opt(
        "data.nondistributable",
        "OCI_DATA_NONDISTRIBUTABLE",
        true,
        true,
    ),
    opt("data.customFields", "OCI_DATA_CUSTOM_FIELDS", true, true),
    opt("data.noLayers", "OCI_DATA_NO_LAYERS", true, true),
    opt("data.emptyBlob", "OCI_DATA_EMPTY_BLOB", true, true),
    opt("data.sha512", "OCI_DATA_SHA512", true, true),
];

/// Finds an option by YAML path or `OCI_*` name, ignoring case.
pub fn lookup(name: &str) -> Option<&'static SuiteOption> {
    let name = name.trim();
    CATALOGUE
        .iter()
        .find(|o| o.path.eq_ignore_ascii_case(name) || o.env.eq_ignore_ascii_case(name))
}

/// A user's request to force one option on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The option switched.
    pub option: &'static SuiteOption,
    /// Its forced value.
    pub on: bool,
}

impl Switch {
    /// Parses `--on NAME` / `--off NAME`, listing the valid names on error.
    pub fn parse(name: &str, on: bool) -> Result<Switch, String> {
        lookup(name)
            .map(|option| Switch { option, on })
            .ok_or_else(|| {
                let names: Vec<&str> = CATALOGUE.iter().map(|o| o.path).collect();
                format!(
                    "unknown suite option {name:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// The value of every option for one run, keyed by YAML path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionSet {
    values: BTreeMap<&'static str, bool>,
}

impl OptionSet {
    /// The profile's defaults, with sparse manifests on when the target is known
    /// to accept them (the in-process reference server), then the switches.
    pub fn resolve(profile: Profile, sparse_supported: bool, switches: &[Switch]) -> OptionSet {
        let mut values: BTreeMap<&'static str, bool> = CATALOGUE
            .iter()
            .map(|o| {
                let base = match profile {
                    Profile::Stable => o.stable,
                    Profile::Dev => o.dev,
                };
                (o.path, base)
            })
            .collect();
        if sparse_supported {
            values.insert("data.sparse", true);
        }
        for s in switches {
            values.insert(s.option.path, s.on);
        }
        OptionSet { values }
    }

    /// The value of one option by YAML path; unknown paths are off.
    pub fn get(&self, path: &str) -> bool {
        self.values.get(path).copied().unwrap_or(false)
    }

    /// The YAML paths of the options that are off, for the summary.
    pub fn off(&self) -> Vec<&'static str> {
        CATALOGUE
            .iter()
            .filter(|o| !self.get(o.path))
            .map(|o| o.path)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_accepts_paths_and_env_names_in_any_case() {
        assert_eq!(
            lookup("apis.blobs.uploadCancel").unwrap().env,
            "OCI_API_BLOBS_UPLOAD_CANCEL"
        );
        assert_eq!(lookup("OCI_DATA_SPARSE").unwrap().path, "data.sparse");
        assert_eq!(lookup("oci_data_sparse").unwrap().path, "data.sparse");
        assert!(lookup("apis.nope").is_none());
    }

    #[test]
    fn unknown_switch_lists_valid_names() {
        let err = Switch::parse("apis.nope", false).unwrap_err();
        assert!(err.contains("apis.blobs.uploadCancel"), "{err}");
    }

    #[test]
    fn dev_profile_turns_on_the_post_1_1_features() {
        let stable = OptionSet::resolve(Profile::Stable, false, &[]);
        let dev = OptionSet::resolve(Profile::Dev, false, &[]);
        for path in [
            "apis.blobs.uploadCancel",
            "apis.blobs.digestHeader",
            "apis.manifests.digestHeader",
            "apis.manifests.tagParam",
        ] {
            assert!(!stable.get(path), "{path} should be off in stable");
            assert!(dev.get(path), "{path} should be on in dev");
        }
        assert_eq!(
            stable.off(),
            vec![
                "apis.blobs.digestHeader",
                "apis.blobs.uploadCancel",
                "apis.manifests.digestHeader",
                "apis.manifests.tagParam",
                "data.sparse"
            ]
        );
    }

    #[test]
    fn sparse_follows_the_target_and_switches_win() {
        assert!(!OptionSet::resolve(Profile::Dev, false, &[]).get("data.sparse"));
        assert!(OptionSet::resolve(Profile::Dev, true, &[]).get("data.sparse"));
        let off = Switch::parse("data.sparse", false).unwrap();
        assert!(!OptionSet::resolve(Profile::Dev, true, &[off]).get("data.sparse"));
        let on = Switch::parse("OCI_DATA_SPARSE", true).unwrap();
        assert!(OptionSet::resolve(Profile::Dev, false, &[on]).get("data.sparse"));
        assert!(OptionSet::resolve(Profile::Dev, true, &[]).off().is_empty());
    }
}
