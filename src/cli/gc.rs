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
    let mut count = 0usize;
    let mut bytes = 0u64;
    for hash in repo.cache.list()? {
        if keep.contains(&hash) {
            continue;
        }
        if args.dry_run {
            bytes += repo.cache.stat(hash)?.map_or(0, |s| s.size);
        } else {
            bytes += repo.cache.remove(hash)?;
        }
        if ctx.verbose {
            ctx.say(format!(
                "  {} {hash}",
                if args.dry_run {
                    "would remove"
                } else {
                    "removed"
                }
            ));
        }
        count += 1;
    }
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
    Ok(())
}
