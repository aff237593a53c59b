//! `bale unprotect PATH...`: turn linked (read-only, shared with the cache)
//! files into private writable copies, so they can be edited in place.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::paths;
use crate::repo::{Access, Repo};
use crate::workspace::apply::temp_beside;
use crate::workspace::link;
use crate::workspace::stat::Kind;
use crate::workspace::walk;

use super::Ctx;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tracked outs, or files and folders inside them
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write)?;
    for p in &args.paths {
        let abs = paths::normalize(&ctx.cwd.join(p));
        repo.relative(&abs)?;
        let w = walk::walk(&abs, 0)?.ok_or_else(|| Error::NotFound(p.clone()))?;
        let linked: Vec<(PathBuf, bool)> = w
            .entries
            .iter()
            .filter_map(|e| {
                let is_cache_link = e.stat.kind == Kind::Symlink
                    && e.link_target
                        .as_deref()
                        .and_then(|t| repo.cache.hash_of_object_path(t))
                        .is_some();
                let is_read_only_file = e.stat.kind == Kind::File && e.stat.mode & 0o200 == 0;
                (is_cache_link || is_read_only_file).then(|| {
                    (
                        paths::join(&abs, &e.path),
                        e.stat.kind == Kind::File && e.stat.is_executable(),
                    )
                })
            })
            .collect();
        linked
            .par_iter()
            .map(|(path, exec)| private_copy(path, *exec))
            .collect::<Result<Vec<()>>>()?;
        ctx.say(format!(
            "{}: {} file{} made writable",
            p.display(),
            linked.len(),
            if linked.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// Replaces `path` (a link to a cache object) by a private copy of its
/// content, atomically.
fn private_copy(path: &Path, executable: bool) -> Result<()> {
    let tmp = temp_beside(path);
    let copied = link::copy_private(path, &tmp, executable)
        .at("copy", path)
        .and_then(|_| fs::rename(&tmp, path).at("replace", path));
    if copied.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    copied
}
