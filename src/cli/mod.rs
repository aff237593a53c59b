//! Command-line arguments and one file per command: each reads like the
//! paragraph of the spec that describes it.

mod add;
mod checkout;
mod commit;
mod config;
mod gc;
mod init;
mod status;
mod unprotect;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Error;

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
    /// Number of parallel jobs (default: all cores)
    #[arg(short, long, value_name = "N", global = true)]
    pub jobs: Option<usize>,
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
    /// Show how tracked outs differ from their pointer files
    Status(status::Args),
    /// Make the workspace match the pointer files
    Checkout(checkout::Args),
    /// Read or write configuration
    Config(config::Args),
    /// Turn linked files into private writable copies
    Unprotect(unprotect::Args),
    /// Delete cache objects that no pointer file references
    Gc(gc::Args),
}

/// What every command gets besides its own arguments.
pub struct Ctx {
    pub cwd: PathBuf,
    pub quiet: bool,
    pub verbose: bool,
}

impl Ctx {
    /// A line of human output (stdout), unless quiet.
    pub fn say(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            println!("{line}");
        }
    }
}

/// Prints an error as `error:` with its causes and hint, on stderr.
pub fn report(err: &(dyn std::error::Error + 'static)) {
    eprintln!("error: {err}");
    let mut source = err.source();
    let mut hint = err.downcast_ref::<Error>().and_then(Error::hint);
    while let Some(s) = source {
        eprintln!("  Caused by: {s}");
        if hint.is_none() {
            hint = s.downcast_ref::<Error>().and_then(Error::hint);
        }
        source = s.source();
    }
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
}

/// Saves the snapshots of the outs this command completed, in one
/// transaction, stamped with the file system's clock read now: after every
/// stat they hold was taken.
fn save_snapshots(
    repo: &crate::repo::Repo,
    state: &mut crate::state::StateDb,
    mut snapshots: Vec<(String, crate::state::Snapshot)>,
) -> crate::Result<()> {
    if snapshots.is_empty() {
        return Ok(());
    }
    let taken_ns = repo.fs_now()?;
    for (_, s) in &mut snapshots {
        s.taken_ns = taken_ns;
    }
    state.save(&snapshots, &[])
}

pub fn hint(text: impl std::fmt::Display) {
    eprintln!("hint: {text}");
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
    if let Some(n) = cli.jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()?;
    }
    let ctx = Ctx {
        cwd,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Add(a) => add::run(&ctx, a),
        Command::Commit(a) => commit::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Checkout(a) => checkout::run(&ctx, a),
        Command::Config(a) => config::run(&ctx, a),
        Command::Unprotect(a) => unprotect::run(&ctx, a),
        Command::Gc(a) => gc::run(&ctx, a),
    }
}

/// "1.5 MiB"
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
