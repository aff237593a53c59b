//! Command-line arguments and one file per command: each parses, opens the
//! repository, calls the library and prints what it did.

mod add;
mod checkout;
mod commit;
mod config;
mod diff;
mod fetch;
mod fsck;
mod gc;
mod get;
mod import;
mod init;
mod meta;
mod pack;
mod push;
mod remote;
mod status;
mod unprotect;

use std::cell::RefCell;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::Error;
pub use crate::human::{human_size, plural};
pub use crate::ops::{capped_lines, corrupt_found};
use crate::repo::{Access, DEFAULT_LOCK_WAIT, Repo};

/// Concurrent transfers to or from a remote without `-j`: each holds a
/// pack of a few MiB in memory.
pub const DEFAULT_TRANSFERS: usize = 4;

/// The most parallel jobs `-j` accepts.
pub const MAX_JOBS: u16 = 1024;

#[derive(Parser, Debug)]
#[command(name = "bale", version, about = "Fast data versioning beside git", long_about = None)]
pub struct Cli {
    /// Run as if bale was started in DIR
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// Print only errors and hints
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail (each changed path)
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Number of parallel jobs, 1 to 1024 (default: all cores; at most 4 per
    /// core are used)
    #[arg(short, long, value_name = "N", global = true,
          value_parser = clap::value_parser!(u16).range(1..=MAX_JOBS as i64))]
    pub jobs: Option<u16>,
    /// Seconds a writer waits for another bale command to finish (default 10)
    #[arg(long, value_name = "SECS", global = true)]
    pub wait: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a bale repository (.bale/) in the current folder
    Init(init::Args),
    /// Track files or folders: store them in the cache and write PATH.bale
    Add(add::Args),
    /// Record the current content of tracked outs
    Commit(commit::Args),
    /// Track a zip or tar archive's content as a folder, without unpacking it
    Import(import::Args),
    /// Show how tracked outs differ from their pointer files
    Status(status::Args),
    /// Make the workspace match the pointer files
    Checkout(checkout::Args),
    /// Read or write configuration
    Config(config::Args),
    /// List files added, modified, deleted and renamed between versions
    Diff(diff::Args),
    /// Make an out as a git revision records it, in another folder
    Get(get::Args),
    /// Turn linked files into private writable copies
    Unprotect(unprotect::Args),
    /// Delete cache objects that no pointer file references
    Gc(gc::Args),
    /// Re-hash every cache object and name the corrupt ones
    Fsck(fsck::Args),
    /// Move small loose cache objects into packs
    Pack(pack::Args),
    /// Manage remotes: where the cache's objects are pushed and fetched
    Remote(remote::Args),
    /// Upload what the remote lacks of the tracked outs
    Push(push::Args),
    /// Download what the cache lacks of the tracked outs
    Fetch(fetch::Args),
    /// Fetch, then check out
    Pull(fetch::PullArgs),
    /// Print a shell completion script
    Completions(meta::CompletionsArgs),
    /// Print the man page (roff)
    Man,
}

/// What every command gets besides its own arguments.
pub struct Ctx {
    pub cwd: PathBuf,
    pub quiet: bool,
    pub verbose: bool,
    pub wait: Duration,
    /// `-j`, when given.
    pub jobs: Option<u16>,
    /// The first error writing stdout: the command ends on it.
    stdout_error: RefCell<Option<io::Error>>,
    /// The warnings of every repository opened, printed at the end.
    warnings: RefCell<Vec<crate::warnings::Warnings>>,
}

impl Ctx {
    /// A line of human output (stdout), unless quiet.
    pub fn say(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            self.print(line);
        }
    }

    /// A line on stdout whatever `-q` says (status, config reads). A closed
    /// or full stdout is remembered, and the command ends with it.
    pub fn print(&self, line: impl std::fmt::Display) {
        let mut failed = self.stdout_error.borrow_mut();
        if failed.is_some() {
            return;
        }
        if let Err(e) = writeln!(io::stdout().lock(), "{line}") {
            *failed = Some(e);
        }
    }

    /// Concurrent transfers to or from a remote: `-j`, else 4.
    pub fn transfers(&self) -> usize {
        self.jobs.map_or(DEFAULT_TRANSFERS, usize::from)
    }

    /// The repository, for a command that uses the cache. A configured
    /// cache that is not there is on a disk that is not mounted, or was
    /// moved: it is never made anew silently.
    pub fn open(&self, write: bool) -> crate::Result<Repo> {
        let repo = self.open_config(write)?;
        if !repo.cache.exists() && repo.settings.cache_dir.is_some() {
            return Err(Error::CacheMissing(repo.cache.dir().to_path_buf()));
        }
        Ok(repo)
    }

    /// The repository, for a command that may not need the cache.
    pub fn open_config(&self, write: bool) -> crate::Result<Repo> {
        let access = if write {
            Access::Write(self.wait)
        } else {
            Access::Read
        };
        let repo = Repo::open(&self.cwd, access)?;
        self.warnings.borrow_mut().push(repo.warnings().clone());
        Ok(repo)
    }

    /// Prints the warnings the library handed up, as `warning: ...` lines.
    fn print_warnings(&self) {
        for w in self.warnings.borrow().iter() {
            for message in w.take() {
                let _ = writeln!(io::stderr(), "warning: {message}");
            }
        }
    }

    fn finish(&self) -> anyhow::Result<()> {
        let failed = self
            .stdout_error
            .borrow_mut()
            .take()
            .or_else(|| io::stdout().flush().err());
        match failed {
            None => Ok(()),
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(BrokenPipe.into()),
            Some(e) => Err(Error::io("write", "standard output", e).into()),
        }
    }
}

/// stdout was closed by its reader (`bale status | head`): the command ends
/// quietly, with exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct BrokenPipe;

/// Prints an error as `error:` with its causes and hint, on stderr.
/// Reports errors of one out: the first ten, then how many more there are.
pub fn report_all(errors: &[Error]) {
    const SHOWN: usize = 10;
    errors.iter().take(SHOWN).for_each(|e| report(e));
    if errors.len() > SHOWN {
        let _ = writeln!(
            io::stderr(),
            "error: ... and {} more errors like these",
            errors.len() - SHOWN
        );
    }
}

pub fn report(err: &(dyn std::error::Error + 'static)) {
    let mut s = format!("error: {err}\n");
    let mut source = err.source();
    let mut hint = err.downcast_ref::<Error>().and_then(Error::hint);
    while let Some(c) = source {
        s.push_str(&format!("  Caused by: {c}\n"));
        if hint.is_none() {
            hint = c.downcast_ref::<Error>().and_then(Error::hint);
        }
        source = c.source();
    }
    if let Some(h) = hint {
        s.push_str(&format!("hint: {h}\n"));
    }
    let _ = io::stderr().write_all(relative_paths(&s).as_bytes());
}

pub fn hint(text: impl std::fmt::Display) {
    let _ = writeln!(io::stderr(), "hint: {}", relative_paths(&text.to_string()));
}

pub fn warn(text: impl std::fmt::Display) {
    let _ = writeln!(
        io::stderr(),
        "warning: {}",
        relative_paths(&text.to_string())
    );
}

/// The folders whose absolute paths messages show relative to the current
/// folder: the current folder and its parents up to the repository root,
/// deepest first, each with the relative form that replaces it.
static RELATIVE_TO: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Sets what `relative_paths` rewrites: the paths at or above `cwd`, up to
/// the repository root when there is one (none above it: a path outside the
/// repository stays absolute).
fn set_relative_to(cwd: &std::path::Path) {
    let Ok(root) = crate::repo::find_root(cwd) else {
        return;
    };
    let mut prefixes = Vec::new();
    let mut up = String::new();
    for dir in cwd.ancestors() {
        if let Some(d) = dir.to_str().filter(|d| *d != "/") {
            prefixes.push((format!("{d}/"), up.clone()));
        }
        if dir == root {
            break;
        }
        up.push_str("../");
    }
    let _ = RELATIVE_TO.set(prefixes);
}

/// A message with the absolute paths in the repository written relative to
/// the current folder, as the user names them (`data/a`, `../data/a`).
pub fn relative_paths(text: &str) -> String {
    let mut s = text.to_owned();
    for (abs, rel) in RELATIVE_TO.get().into_iter().flatten() {
        if s.contains(abs.as_str()) {
            s = s.replace(abs.as_str(), rel);
        }
    }
    s
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let cwd = match &cli.dir {
        Some(d) => crate::paths::normalize(&cwd.join(d)),
        None => cwd,
    };
    if !cwd.is_dir() {
        return Err(Error::NotFound(cwd).into());
    }
    set_relative_to(&cwd);
    if let Some(n) = cli.jobs {
        // More threads than this only thrash: I/O work gains little past a
        // few per core.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(n).min(4 * cores))
            .build_global()?;
    }
    let ctx = Ctx {
        cwd,
        quiet: cli.quiet,
        verbose: cli.verbose,
        wait: cli.wait.map_or(DEFAULT_LOCK_WAIT, Duration::from_secs),
        jobs: cli.jobs,
        stdout_error: RefCell::new(None),
        warnings: RefCell::new(Vec::new()),
    };
    let result = match cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Add(a) => add::run(&ctx, a),
        Command::Commit(a) => commit::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Checkout(a) => checkout::run(&ctx, a),
        Command::Config(a) => config::run(&ctx, a),
        Command::Diff(a) => diff::run(&ctx, a),
        Command::Get(a) => get::run(&ctx, a),
        Command::Unprotect(a) => unprotect::run(&ctx, a),
        Command::Gc(a) => gc::run(&ctx, a),
        Command::Fsck(a) => fsck::run(&ctx, a),
        Command::Import(a) => import::run(&ctx, a),
        Command::Pack(a) => pack::run(&ctx, a),
        Command::Remote(a) => remote::run(&ctx, a),
        Command::Push(a) => push::run(&ctx, a),
        Command::Fetch(a) => fetch::run(&ctx, a),
        Command::Pull(a) => fetch::pull(&ctx, a),
        Command::Completions(a) => meta::completions(&ctx, a),
        Command::Man => meta::man(&ctx),
    };
    ctx.print_warnings();
    // A failed stdout ends the command whatever else happened.
    ctx.finish()?;
    result
}
