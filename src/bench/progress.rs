//! Progress bars on stderr, one per phase and registry, drawn only when stderr is a
//! terminal (so logs, pipes and CI output stay clean).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes the bars of a run.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Bars when stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// No bars at all.
    pub fn hidden() -> Progress {
        Progress { enabled: false }
    }

    /// A bar labelled `label`; phases that know their count set its length, timed
    /// phases leave it open and show a count and rate.
    pub fn bar(&self, label: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("{prefix:>28} {wide_bar} {pos}/{len} {per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
