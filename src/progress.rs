//! Progress bars on stderr, drawn only when stderr is a terminal and the
//! user did not ask for quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that may be hidden; cheap to `inc` from many threads.
#[derive(Clone)]
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(len: u64, message: &str, quiet: bool) -> Bar {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            // Hidden by indicatif itself when stderr is not a terminal.
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        };
        // A whole number of files a second ("26132/s"), not a float with
        // four decimals.
        let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", s.per_sec());
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {human_pos}/{human_len} {rate} eta {eta}",
        ) {
            bar.set_style(style.with_key("rate", rate).progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        Bar(bar)
    }

    /// A bar over bytes (`len` 0: the total is not known).
    pub fn bytes(len: u64, message: &str, quiet: bool) -> Bar {
        let bar = if quiet {
            ProgressBar::hidden()
        } else if len == 0 {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        };
        let template = if len == 0 {
            "{msg:>12} {bytes} {binary_bytes_per_sec}"
        } else {
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        Bar(bar)
    }

    pub fn hidden() -> Bar {
        Bar(ProgressBar::hidden())
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// Runs `f` (which prints) with the bar cleared, then draws it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
