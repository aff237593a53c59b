//! `bale gc [--dry-run]`: delete cache objects that no pointer file in the
//! workspace references (directly, or through a directory's manifest).

use crate::error::Error;
use crate::ops::gc::referenced;

use super::{Ctx, human_size, plural};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only say what would be deleted
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Collect even though cache.dir is set (only when no other repository
    /// shares this cache)
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = ctx.open(true)?;
    if repo.settings.cache_dir.is_some() && !args.force && !args.dry_run {
        return Err(Error::SharedCache(repo.cache.dir().to_path_buf()).into());
    }
    let keep = referenced(&repo)?;
    let doomed: Vec<_> = repo
        .cache
        .list()?
        .into_iter()
        .filter(|h| !keep.contains(h))
        .collect();
    if ctx.verbose {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for hash in &doomed {
            ctx.say(format!("  {verb} {hash}"));
        }
    }
    let mut rewritten = 0;
    let bytes = if args.dry_run {
        let mut bytes = 0;
        for &h in &doomed {
            bytes += repo.cache.size(h)?.unwrap_or(0);
        }
        bytes
    } else {
        let (bytes, packs) = repo.cache.remove(&doomed, ctx.wait)?;
        rewritten = packs;
        bytes
    };
    let count = doomed.len();
    // No other writer runs while we hold the lock: temp files are leftovers.
    if !args.dry_run {
        repo.cache.remove_temp_files();
    }
    ctx.say(format!(
        "{} {} ({}), kept {}",
        if args.dry_run {
            "would remove"
        } else {
            "removed"
        },
        plural(count, "object"),
        human_size(bytes),
        keep.len()
    ));
    if rewritten > 0 {
        ctx.say(format!(
            "rewrote {}, mostly dead",
            plural(rewritten, "pack")
        ));
    }
    Ok(())
}
