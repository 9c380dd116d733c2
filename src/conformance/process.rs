//! Runs a prepared suite process with a bounded lifetime.
//!
//! The suite starts from an empty environment plus exactly the variables the
//! invocation lists, in its own process group, with its output streamed to
//! files (and to an observer, for the progress indicator). When the time limit
//! passes, or the user interrupts the runner, the whole process group is killed
//! so no suite outlives the runner.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::plan::Invocation;

/// How the suite process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (not by the runner).
    Signal(i32),
    /// It ran past the time limit and the runner killed it.
    TimedOut(Duration),
    /// The user interrupted the runner, which killed it.
    Interrupted,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::TimedOut(d) => write!(f, "timed out after {}s and was killed", d.as_secs()),
            Exit::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives the suite's output as it arrives.
pub type Observer = Arc<dyn Fn(Stream, &[u8]) + Send + Sync>;

/// The end of a suite process.
#[derive(Clone, Debug)]
pub struct Finished {
    /// How it ended.
    pub exit: Exit,
    /// How long it ran.
    pub elapsed: Duration,
    /// The file holding its standard error.
    pub stderr: PathBuf,
}

/// How long to wait for output pipes to drain after the process ended.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Runs `inv`, writing its output to `stdout.txt` and `stderr.txt` in
/// `log_dir`, and kills it after `timeout`.
pub async fn run(
    inv: &Invocation,
    timeout: Duration,
    log_dir: &Path,
    observer: Observer,
) -> anyhow::Result<Finished> {
    let stdout_path = log_dir.join("stdout.txt");
    let stderr_path = log_dir.join("stderr.txt");
    let mut cmd = tokio::process::Command::new(&inv.program);
    cmd.args(&inv.args)
        .env_clear()
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&inv.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting the suite {}", inv.program.display()))?;
    let out = pump(
        child.stdout.take(),
        stdout_path.clone(),
        Stream::Stdout,
        observer.clone(),
    );
    let err = pump(
        child.stderr.take(),
        stderr_path.clone(),
        Stream::Stderr,
        observer,
    );

    let exit = tokio::select! {
        status = child.wait() => {
            let status = status.context("waiting for the suite")?;
            exit_of(status)
        }
        _ = tokio::time::sleep(timeout) => {
            kill_group(&mut child).await;
            Exit::TimedOut(timeout)
        }
        // A failed handler registration resolves to Err and disables the branch.
        Ok(()) = tokio::signal::ctrl_c() => {
            kill_group(&mut child).await;
            Exit::Interrupted
        }
    };
    let elapsed = started.elapsed();
    for task in [out, err] {
        // A grandchild that escaped the group could keep a pipe open; never
        // wait for it longer than the drain limit.
        if tokio::time::timeout(DRAIN_LIMIT, task).await.is_err() {
            tracing::warn!("suite output did not close within {DRAIN_LIMIT:?}");
        }
    }
    Ok(Finished {
        exit,
        elapsed,
        stderr: stderr_path,
    })
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    if let Some(code) = status.code() {
        return Exit::Code(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Exit::Signal(signal);
        }
    }
    Exit::Code(-1)
}

/// Kills the child's whole process group, then reaps the child.
async fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) takes no pointers; a negative pid addresses the
        // process group the child leads (it was spawned with process_group(0)).
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

/// Copies one output stream to a file and to the observer until it closes.
fn pump<R>(
    source: Option<R>,
    path: PathBuf,
    stream: Stream,
    observer: Observer,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let Some(mut source) = source else { return };
        let mut file = match tokio::fs::File::create(&path).await {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("cannot write {}: {e}", path.display());
                None
            }
        };
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match source.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(f) = file.as_mut() {
                if f.write_all(&buf[..n]).await.is_err() {
                    file = None;
                }
            }
            observer(stream, &buf[..n]);
        }
        if let Some(mut f) = file {
            let _ = f.flush().await;
        }
    })
}
