//! `bale gc [--workspace | --all-branches --all-tags --all-commits --rev REV]
//! [--dry-run] [--force]`: delete cache objects that neither the workspace's
//! pointer files nor those of the chosen git revisions reference (directly,
//! or through a directory's manifest). With no option, what every ref, stash
//! entry, worktree HEAD and git index holds is kept. It says what would go
//! first, and deletes only with `--force` or after a yes on a terminal.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::Error;
use crate::hash::Hash;
use crate::history::History;
use crate::ops::gc::{Scope, referenced};

use super::{Ctx, hint, human_size, plural, warn};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep only what the workspace's pointer files reference
    #[arg(long, conflicts_with_all = ["all_commits", "all_branches", "all_tags", "revs"])]
    pub workspace: bool,
    /// Also keep what every commit reachable from any reference references
    #[arg(long)]
    pub all_commits: bool,
    /// Also keep what every local branch tip references
    #[arg(long)]
    pub all_branches: bool,
    /// Also keep what every tag references
    #[arg(long)]
    pub all_tags: bool,
    /// Also keep what the revision REV references (repeatable)
    #[arg(long = "rev", value_name = "REV")]
    pub revs: Vec<String>,
    /// Only say what would be deleted
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Delete without asking; needed also when cache.dir is set (only when
    /// no other repository shares this cache)
    #[arg(long)]
    pub force: bool,
}

impl Args {
    /// The scope, and whether the user named revisions explicitly.
    fn scope(&self) -> (Scope, bool) {
        if self.workspace {
            return (Scope::default(), true);
        }
        let explicit = Scope {
            branches: self.all_branches,
            tags: self.all_tags,
            every_ref: false,
            all_commits: self.all_commits,
            revs: self.revs.clone(),
        };
        if explicit.reads_history() {
            (explicit, true)
        } else {
            (Scope::default_refs(), false)
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    // A shared cache holds objects of repositories gc cannot see: only an
    // explicit --force deletes there, never a yes at a prompt.
    let shared = repo.settings.cache_dir.is_some();
    if shared && !args.force && !args.dry_run {
        return Err(Error::SharedCache(repo.cache.dir().to_path_buf()).into());
    }
    let (scope, explicit) = args.scope();
    let mut history = if scope.reads_history() {
        History::open(&repo.root)?
    } else {
        None
    };
    let refs = referenced(&repo, history.as_mut(), &scope, explicit)?;
    for w in &refs.warnings {
        warn(w);
    }
    if ctx.verbose && refs.revisions > 0 {
        ctx.say(format!(
            "read {} ({} distinct pointer files)",
            plural(refs.revisions, "revision"),
            refs.pointer_blobs
        ));
    }
    let doomed: Vec<Hash> = repo
        .cache
        .list()?
        .into_iter()
        .filter(|h| !refs.keep.contains(h))
        .collect();
    let mut bytes = 0;
    for &h in &doomed {
        bytes += repo.cache.size(h)?.unwrap_or(0);
    }
    let kept = refs.keep.len();
    let summary = |verb: &str, bytes: u64| {
        format!(
            "{verb} {} ({}), kept {kept}",
            plural(doomed.len(), "object"),
            human_size(bytes)
        )
    };
    let delete = !args.dry_run && (args.force || doomed.is_empty() || confirm(&doomed, bytes));
    if !delete {
        if ctx.verbose {
            for hash in &doomed {
                ctx.say(format!("  would remove {hash}"));
            }
        }
        ctx.say(summary("would remove", bytes));
        if !args.dry_run {
            hint("nothing was deleted: run the same `bale gc` with --force to delete them");
        }
        return Ok(());
    }
    let removed = repo.cache.remove(&doomed, ctx.wait)?;
    // No other writer runs while we hold the lock: temp files are leftovers.
    repo.cache.remove_temp_files();
    if ctx.verbose {
        for hash in &doomed {
            ctx.say(format!("  removed {hash}"));
        }
    }
    ctx.say(format!(
        "removed {} from the cache, kept {kept}; freed {} on disk",
        plural(doomed.len(), "object"),
        human_size(removed.freed())
    ));
    if removed.packs_rewritten > 0 {
        ctx.say(format!(
            "rewrote {}, mostly dead",
            plural(removed.packs_rewritten, "pack")
        ));
    }
    if removed.packed_bytes > 0 && removed.packs_rewritten == 0 {
        ctx.say(format!(
            "{} of packed objects stay on disk in their packs until gc finds those packs mostly dead",
            human_size(removed.packed_bytes)
        ));
    }
    Ok(())
}

/// Asks on the terminal whether to delete; `false` when stdin is not a
/// terminal (a script gets the list and a hint, never a deletion).
fn confirm(doomed: &[Hash], bytes: u64) -> bool {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return false;
    }
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "delete {} ({}) from the cache? [y/N] ",
        plural(doomed.len(), "object"),
        human_size(bytes)
    );
    let _ = err.flush();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}
