//! `marina passwd` and htpasswd files written by Apache's `htpasswd -B`: the entries
//! they write are the ones the server accepts.

use std::io::Write;
use std::process::{Command, Stdio};

use marina::config::AuthScheme;
use reqwest::Method;

use crate::auth_api::send;
use crate::auth_support::{basic, standard_auth, start_secure};

fn passwd(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_marina"))
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("marina runs");
    // A run that refuses its arguments exits without reading stdin; what it
    // printed and its status are what the callers check.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn marina_passwd_adds_changes_and_removes_users_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let f = file.to_str().unwrap();
    let out = passwd(&["--password-stdin", "--cost", "4", f, "dave"], "first\n");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("dave:$2y$04$") && !text.contains("first"),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        passwd(&["--password-stdin", "--cost", "4", f, "erin"], "e-pw\n")
            .status
            .success()
    );
    assert!(
        passwd(&["--password-stdin", "--cost", "4", f, "dave"], "second\n")
            .status
            .success()
    );

    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    auth.htpasswd = Some(file.clone());
    let s = start_secure(auth, None, |_| {}).await;
    send(
        &s,
        Method::GET,
        "/v2/",
        Some(&basic("dave", "second")),
        None,
    )
    .await
    .expect(200, None);
    send(&s, Method::GET, "/v2/", Some(&basic("dave", "first")), None)
        .await
        .expect(401, None);
    send(&s, Method::GET, "/v2/", Some(&basic("erin", "e-pw")), None)
        .await
        .expect(200, None);

    assert!(passwd(&["--delete", f, "erin"], "").status.success());
    assert!(!std::fs::read_to_string(&file).unwrap().contains("erin:"));
    let out = passwd(&["--delete", f, "erin"], "");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no user erin"),
        "{out:?}"
    );
    let out = passwd(&["--password-stdin", f, "bad:name"], "x\n");
    assert!(!out.status.success(), "{out:?}");
    let out = passwd(&["--password-stdin", f, "frank"], "\n");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("empty"),
        "{out:?}"
    );
}

#[tokio::test]
async fn entries_written_by_apache_htpasswd_are_accepted() {
    let Ok(out) = Command::new("htpasswd")
        .args(["-nbB", "-C", "5", "carol", "carol-pw"])
        .output()
    else {
        crate::support::missing_tool("`htpasswd`", "apt-get install apache2-utils");
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apache");
    std::fs::write(&file, &out.stdout).unwrap();
    let mut auth = standard_auth(dir.path(), AuthScheme::Basic);
    auth.htpasswd = Some(file);
    let s = start_secure(auth, None, |_| {}).await;
    send(
        &s,
        Method::GET,
        "/v2/",
        Some(&basic("carol", "carol-pw")),
        None,
    )
    .await
    .expect(200, None);
    send(
        &s,
        Method::GET,
        "/v2/",
        Some(&basic("carol", "carol-px")),
        None,
    )
    .await
    .expect(401, None);
}

/// Regression: `marina passwd --help` said `[default: 12] [default: 12]`.
#[test]
fn passwd_help_names_each_default_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_marina"))
        .args(["passwd", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert_eq!(help.matches("[default: 12]").count(), 1, "{help}");
}
