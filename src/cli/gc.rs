//! `bale gc [--workspace | --all-branches --all-tags --all-commits --rev REV]
//! [--dry-run] [--force]`: delete cache objects that neither the workspace's
//! pointer files nor those of the chosen git revisions reference (directly,
//! or through a directory's manifest). With no option, what every ref, stash
//! entry, worktree HEAD and git index holds is kept. It says what would go
//! first, and deletes only with `--force` or after a yes on a terminal.

use std::io::{BufRead, IsTerminal, Write};

use crate::hash::Hash;
use crate::ops::gc::{self, Scope};

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
    let (scope, explicit) = args.scope();
    let opts = gc::Options {
        scope,
        explicit,
        force: args.force,
        dry_run: args.dry_run,
    };
    let plan = gc::plan(&repo, &opts)?;
    for w in &plan.warnings {
        warn(w);
    }
    if ctx.verbose && plan.revisions > 0 {
        ctx.say(format!(
            "read {} ({} distinct pointer files)",
            plural(plan.revisions, "revision"),
            plan.pointer_blobs
        ));
    }
    let (doomed, kept) = (&plan.doomed, plan.kept);
    let delete = !args.dry_run && (args.force || doomed.is_empty() || confirm(doomed, plan.bytes));
    if !delete {
        if ctx.verbose {
            for hash in doomed {
                ctx.say(format!("  would remove {hash}"));
            }
        }
        ctx.say(format!(
            "would remove {} ({}), kept {kept}",
            plural(doomed.len(), "object"),
            human_size(plan.bytes)
        ));
        if !args.dry_run {
            hint("nothing was deleted: run the same `bale gc` with --force to delete them");
        }
        return Ok(());
    }
    let removed = gc::delete(&repo, &plan, ctx.wait)?;
    if ctx.verbose {
        for hash in doomed {
            ctx.say(format!("  removed {hash}"));
        }
    }
    ctx.say(format!(
        "removed {} from the cache, kept {kept}; freed {} on disk",
        plural(doomed.len(), "object"),
        human_size(removed.freed)
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
