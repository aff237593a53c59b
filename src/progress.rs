//! Progress bars on stderr, drawn only when stderr is a terminal and the
//! user did not ask for quiet.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that may be hidden; cheap to `inc` from many threads.
#[derive(Clone)]
pub struct Bar(ProgressBar, Option<Arc<AtomicU64>>);

/// Work of at least this many bytes gets a bar even when it is one file.
const BIG_BYTES: u64 = 256 << 20;

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
        Bar(bar, None)
    }

    /// A bar over the bytes of `files` files, which shows both counts
    /// ("1.2 GiB/4.0 GiB 310/1000 files"): `inc` counts bytes as they are
    /// read, `file_done` a finished file. Drawn for 1000 files or more, or
    /// for fewer when they hold 256 MiB or more (one large file too).
    pub fn files(files: u64, bytes: u64, message: &str, quiet: bool) -> Bar {
        if !worth_a_bar(files, bytes, quiet) {
            return Bar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
        let done = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&done);
        let files_key = move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/{files} files", count.load(Ordering::Relaxed));
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {files} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.with_key("files", files_key).progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        Bar(bar, Some(done))
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
        Bar(bar, None)
    }

    pub fn hidden() -> Bar {
        Bar(ProgressBar::hidden(), None)
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// One more file done, on a bar made by `files`.
    pub fn file_done(&self) {
        if let Some(done) = &self.1 {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `r`, counting on this bar the bytes read from it.
    pub fn reading<R: Read>(&self, r: R) -> Reading<'_, R> {
        Reading {
            inner: r,
            bar: self,
        }
    }

    /// Runs `f` (which prints) with the bar cleared, then draws it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Whether work of `files` files and `bytes` bytes is long enough for a bar.
fn worth_a_bar(files: u64, bytes: u64, quiet: bool) -> bool {
    !quiet && (files >= 1000 || bytes >= BIG_BYTES)
}

/// A reader that counts what it yields on a bar (see `Bar::reading`).
pub struct Reading<'a, R> {
    inner: R,
    bar: &'a Bar,
}

impl<R: Read> Read for Reading<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_counts_every_byte_it_yields() {
        let bar = Bar(ProgressBar::hidden(), None);
        bar.0.set_length(10_000);
        let mut out = Vec::new();
        bar.reading(&[7u8; 5000][..]).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 5000);
        assert_eq!(bar.0.position(), 5000);
    }

    #[test]
    fn a_files_bar_counts_files_beside_bytes_and_shows_for_one_large_file() {
        assert!(!worth_a_bar(1, 100, false));
        assert!(worth_a_bar(1, BIG_BYTES, false));
        assert!(worth_a_bar(1000, 0, false));
        assert!(!worth_a_bar(1, BIG_BYTES, true));
        let bar = Bar(ProgressBar::hidden(), Some(Arc::new(AtomicU64::new(0))));
        bar.file_done();
        bar.file_done();
        assert_eq!(bar.1.as_ref().unwrap().load(Ordering::Relaxed), 2);
    }
}
