//! `marina passwd FILE USER`: add or change a user of an htpasswd file (bcrypt, as
//! `htpasswd -B` writes), or remove one. The file is replaced atomically and kept
//! readable by its owner only; a running server picks the change up by itself.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::auth::htpasswd::{self, Htpasswd};

/// Options of `marina passwd`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  marina passwd ./htpasswd alice\n  echo \"$PASSWORD\" | marina passwd --password-stdin ./htpasswd ci-bot\n  marina passwd --delete ./htpasswd alice"
)]
pub struct PasswdArgs {
    /// The htpasswd file (created when missing).
    pub file: PathBuf,
    /// The user name.
    pub user: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    /// bcrypt cost, 4 to 31.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub cost: u32,
    /// Remove the user instead.
    #[arg(long, conflicts_with = "password_stdin")]
    pub delete: bool,
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("New password: ")
        .map_err(|e| format!("cannot prompt for a password: {e} (use --password-stdin)"))?;
    let again = rpassword::prompt_password("Again: ").map_err(|e| format!("cannot prompt: {e}"))?;
    if first != again {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

/// Writes `text` to `path` through a temporary file and a rename, mode 0600.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `marina passwd`.
pub fn run(args: PasswdArgs) -> ExitCode {
    match update(&args) {
        Ok(msg) => {
            eprintln!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("marina passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn update(args: &PasswdArgs) -> Result<String, String> {
    if args.user.is_empty() || args.user.contains(':') || args.user.chars().any(char::is_whitespace)
    {
        return Err("the user name must be non-empty, without ':' or spaces".into());
    }
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !args.delete => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", args.file.display())),
    };
    Htpasswd::parse(&text).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let (new_text, msg) = if args.delete {
        let (t, found) = htpasswd::remove(&text, &args.user);
        if !found {
            return Err(format!("{} has no user {}", args.file.display(), args.user));
        }
        (
            t,
            format!("removed {} from {}", args.user, args.file.display()),
        )
    } else {
        let password = read_password(args.password_stdin)?;
        if password.is_empty() {
            return Err("the password is empty".into());
        }
        let hash = bcrypt::hash_with_result(&password, args.cost)
            .map_err(|e| format!("cannot hash: {e}"))?
            .format_for_version(bcrypt::Version::TwoY);
        let verb = if Htpasswd::parse(&text)
            .ok()
            .and_then(|h| h.get(&args.user).cloned())
            .is_some()
        {
            "updated"
        } else {
            "added"
        };
        (
            htpasswd::upsert(&text, &args.user, &hash),
            format!("{verb} {} in {}", args.user, args.file.display()),
        )
    };
    replace_file(&args.file, &new_text)
        .map_err(|e| format!("cannot write {}: {e}", args.file.display()))?;
    Ok(msg)
}
