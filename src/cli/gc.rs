//! `bale gc [--dry-run]`: delete cache objects that no pointer file in the
//! workspace references (directly, or through a directory's manifest).

use std::collections::HashSet;
use std::fs;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::out;
use crate::repo::{Access, Repo};

use super::{Ctx, human_size};

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
    let repo = Repo::open(&ctx.cwd, Access::Write)?;
    if repo.settings.cache_dir.is_some() && !args.force && !args.dry_run {
        return Err(Error::SharedCache(repo.cache.dir().to_path_buf()).into());
    }
    let keep = referenced(&repo)?;
    let mut count = 0usize;
    let mut bytes = 0u64;
    for (hash, path) in repo.cache.list_objects()? {
        if keep.contains(&hash) {
            continue;
        }
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        if args.dry_run {
            if ctx.verbose {
                println!("would remove {hash}");
            }
        } else {
            fs::remove_file(&path).map_err(|e| Error::io("delete", &path, e))?;
        }
        count += 1;
        bytes += size;
    }
    // No other writer runs while we hold the lock: temp files are leftovers.
    if !args.dry_run {
        for t in repo.cache.temp_files() {
            let _ = fs::remove_file(t);
        }
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    ctx.say(format!(
        "{verb} {count} object{} ({}), kept {}",
        if count == 1 { "" } else { "s" },
        human_size(bytes),
        keep.len()
    ));
    Ok(())
}

/// Every hash that a pointer file under the repository root references.
/// An unreadable pointer file or a missing manifest stops gc: deleting on
/// partial knowledge could lose data.
fn referenced(repo: &Repo) -> Result<HashSet<Hash>> {
    let mut keep = HashSet::new();
    for o in out::resolve(repo, &repo.root, &[])? {
        keep.insert(o.record.hash);
        if o.is_dir() {
            // A missing manifest stops gc too: the objects it lists are
            // unknown, and may come back with it.
            let m = repo.cache.read_manifest(o.record.hash, &o.root)?;
            keep.extend(m.entries().iter().map(|e| e.hash));
        }
    }
    Ok(keep)
}
