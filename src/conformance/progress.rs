//! The progress indicator shown while a suite runs: a spinner with the elapsed
//! time and what the suite's live output reveals (failures so far, and for the
//! ginkgo suite the number of finished specs).
//!
//! It draws only on an interactive terminal; when stdout is a pipe or a file
//! (CI logs), nothing is drawn and the summary alone is printed.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::kind::SuiteKind;
use super::process::{Observer, Stream};

/// Counts progress markers in a suite's live output.
#[derive(Debug, Default)]
pub struct Counter {
    kind: Option<SuiteKind>,
    failures: AtomicUsize,
    finished: AtomicUsize,
    buffers: Mutex<Buffers>,
}

/// Output not inspected yet: an incomplete UTF-8 sequence and an unfinished line.
#[derive(Debug, Default)]
struct Buffers {
    utf8: Vec<u8>,
    line: String,
}

/// The ginkgo reporter prints one bullet per finished spec (U+2022).
const BULLET: char = '\u{2022}';
/// An unfinished line longer than this is inspected no further.
const MAX_LINE: usize = 64 * 1024;

impl Counter {
    /// A counter for one suite kind.
    pub fn new(kind: SuiteKind) -> Counter {
        Counter {
            kind: Some(kind),
            ..Counter::default()
        }
    }

    /// Failures seen so far.
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::Relaxed)
    }

    /// Finished specs seen so far (ginkgo suite only).
    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::Relaxed)
    }

    /// Feeds a chunk of output. Chunks may split lines and UTF-8 sequences.
    /// Bullets are counted as soon as they arrive (ginkgo prints them without
    /// newlines); failures are recognised on complete lines.
    pub fn feed(&self, stream: Stream, chunk: &[u8]) {
        let watched = match self.kind {
            Some(SuiteKind::Current) => Stream::Stderr,
            Some(SuiteKind::V111) => Stream::Stdout,
            None => return,
        };
        if stream != watched {
            return;
        }
        let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        buffers.utf8.extend_from_slice(chunk);
        let complete = match std::str::from_utf8(&buffers.utf8) {
            Ok(_) => buffers.utf8.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => buffers.utf8.len(),
        };
        let text = String::from_utf8_lossy(&buffers.utf8[..complete]).into_owned();
        buffers.utf8.drain(..complete);

        if self.kind == Some(SuiteKind::V111) {
            let bullets = text.chars().filter(|c| *c == BULLET).count();
            self.finished.fetch_add(bullets, Ordering::Relaxed);
        }
        buffers.line.push_str(&text);
        while let Some(end) = buffers.line.find('\n') {
            if self.is_failure_line(&buffers.line[..end]) {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            buffers.line.drain(..=end);
        }
        if buffers.line.len() > MAX_LINE {
            buffers.line.clear();
        }
    }

    fn is_failure_line(&self, line: &str) -> bool {
        match self.kind {
            Some(SuiteKind::Current) => line.contains("msg=\"failed test\""),
            Some(SuiteKind::V111) => {
                let line = line.trim_start();
                line.starts_with("\u{2022} [FAILED]") || line.starts_with("\u{2022} [PANICKED]")
            }
            None => false,
        }
    }

    /// One line describing the progress.
    pub fn describe(&self) -> String {
        let failures = match self.failures() {
            0 => "no failure so far".to_string(),
            1 => "1 failure so far".to_string(),
            n => format!("{n} failures so far"),
        };
        match self.kind {
            Some(SuiteKind::V111) => format!("{} specs finished, {failures}", self.finished()),
            _ => failures,
        }
    }
}

/// The spinner plus the counter feeding it.
pub struct Progress {
    bar: ProgressBar,
    counter: Arc<Counter>,
}

impl Progress {
    /// Starts a spinner for a suite run; hidden unless `enabled` and stdout is
    /// a terminal.
    pub fn start(kind: SuiteKind, target: &str, enabled: bool) -> Progress {
        let draw = if enabled && std::io::stdout().is_terminal() {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, draw);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {prefix} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(format!("{kind} suite against {target}:"));
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress {
            bar,
            counter: Arc::new(Counter::new(kind)),
        }
    }

    /// The observer to hand to the process runner.
    pub fn observer(&self) -> Observer {
        let counter = self.counter.clone();
        let bar = self.bar.clone();
        Arc::new(move |stream, chunk| {
            counter.feed(stream, chunk);
            bar.set_message(counter.describe());
        })
    }

    /// Removes the spinner from the terminal.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_current_suite_failures_on_stderr_only() {
        let c = Counter::new(SuiteKind::Current);
        c.feed(
            Stream::Stderr,
            b"level=WARN msg=\"failed test\" name=a\nlevel=WARN msg=\"fai",
        );
        c.feed(Stream::Stderr, b"led test\" name=b\n");
        c.feed(Stream::Stdout, b"msg=\"failed test\"\n");
        assert_eq!(c.failures(), 2);
        assert_eq!(c.describe(), "2 failures so far");
    }

    #[test]
    fn counts_ginkgo_bullets_across_split_utf8() {
        let c = Counter::new(SuiteKind::V111);
        let text =
            "\u{2022}\u{2022}S\u{2022}\n\u{2022} [FAILED] [0.001 seconds]\n  [FAILED] Expected\n"
                .as_bytes();
        let (a, b) = text.split_at(4); // splits the second bullet
        c.feed(Stream::Stdout, a);
        c.feed(Stream::Stdout, b);
        assert_eq!(c.finished(), 4);
        assert_eq!(c.failures(), 1);
        assert_eq!(c.describe(), "4 specs finished, 1 failure so far");
    }
}
