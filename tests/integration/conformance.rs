//! `marina conformance` as a user runs it: flags, exit codes and the
//! environment reach the suite. A shell script stands in for the current suite;
//! the runner's own behaviour is tested in `src/conformance/tests.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A loopback port nothing listens on: the double never connects to it.
const NOWHERE: &str = "http://127.0.0.1:9";

/// A stand-in for the current suite: answers the runner's kind probe as the
/// real binary does, records its environment and configuration file, then
/// copies a recorded report from `tests/fixtures/conformance/<report>`.
struct Double {
    dir: TempDir,
    path: PathBuf,
}

impl Double {
    fn current(report: &str, exit: u8) -> Double {
        let dir = tempfile::Builder::new()
            .prefix("marina-double-")
            .tempdir()
            .unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/conformance")
            .join(report);
        let script = format!(
            "#!/bin/bash\n\
             if [ \"$OCI_VERSION\" = marina-kind-probe ]; then\n  \
             echo \"failed to load config: unsupported config version $OCI_VERSION\" >&2\n  exit 0\nfi\n\
             env | sort > '{rec}/env.txt'\n\
             cp \"$OCI_CONFIGURATION\" '{rec}/config.yaml'\n\
             cp '{fix}/results.yaml' '{fix}/junit.xml' \"$OCI_RESULTS_DIR/\"\n\
             echo '<html></html>' > \"$OCI_RESULTS_DIR/report.html\"\nexit {exit}\n",
            rec = dir.path().display(),
            fix = fixtures.display(),
        );
        let path = dir.path().join("oci-conformance");
        // Written by `cp`, so this process never holds a writable handle on an
        // executable another test may fork while it is open ("text file busy").
        let src = dir.path().join("script.src");
        fs::write(&src, script).unwrap();
        assert!(Command::new("cp")
            .arg(&src)
            .arg(&path)
            .status()
            .unwrap()
            .success());
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Double { dir, path }
    }

    fn recorded(&self, file: &str) -> String {
        fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_else(|e| panic!("the double recorded no {file}: {e}"))
    }

    fn env_has(&self, name: &str) -> bool {
        self.recorded("env.txt")
            .lines()
            .any(|l| l.starts_with(&format!("{name}=")))
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

fn marina(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_marina"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_wires_flags_exit_codes_and_the_environment() {
    let double = Double::current("current-docker-registry", 1);
    let out = double.out_dir();
    let suite = double.path.to_str().unwrap();
    let (code, stdout, stderr) = marina(
        &[
            "conformance",
            "--suite",
            suite,
            "--registry",
            NOWHERE,
            "--out",
            out.to_str().unwrap(),
            "--off",
            "data.sha512",
        ],
        &[("OCI_VERSION", "1.0")],
    );
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("FAIL      Blob chunked"), "{stdout}");
    assert!(stdout.contains("inherited OCI_VERSION"), "{stdout}");
    assert!(!double.env_has("OCI_VERSION"));
    let config = double.recorded("config.yaml");
    assert!(config.contains("sha512: false"), "{config}");

    let (code, _, stderr) = marina(
        &["conformance", "--suite", suite, "--off", "apis.nope"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("apis.blobs.uploadCancel"), "{stderr}");
    let (code, _, stderr) = marina(
        &[
            "conformance",
            "--suite",
            suite,
            "--registry",
            "http://127.0.0.1:5000/prefix",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("would be ignored"), "{stderr}");
    let (code, _, _) = marina(&["conformance", "--suite", suite, "--username", "u"], &[]);
    assert_eq!(code, 2, "--username needs --password");

    let clean = Double::current("current-clean", 0);
    let (code, stdout, _) = marina(
        &[
            "conformance",
            "--suite",
            clean.path.to_str().unwrap(),
            "--registry",
            NOWHERE,
            "--strict",
            "--out",
            clean.out_dir().to_str().unwrap(),
            "--timeout",
            "30s",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("Result: PASS (exit 0)"), "{stdout}");
}
