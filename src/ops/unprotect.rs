//! unprotect: turn linked (read-only, shared with the cache) files into
//! private writable copies, so they can be edited in place.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::cache::create_private;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{Kind, temp};
use crate::paths;
use crate::repo::Repo;
use crate::workspace::walk;

/// Makes every linked file at or under `abs` (named `given` by the user) a
/// private writable copy, and returns how many there were.
pub fn run(repo: &Repo, abs: &Path, given: &Path) -> Result<usize> {
    repo.relative(abs)?;
    crate::out::check_no_symlink_on_the_way(&repo.root, abs)?;
    let w = walk::walk(abs, 0)?.ok_or_else(|| Error::NotFound(given.to_path_buf()))?;
    let linked: Vec<(PathBuf, bool)> = w
        .entries
        .iter()
        .filter_map(|e| {
            let is_cache_link = e.stat.kind == Kind::Symlink
                && e.link_target()
                    .and_then(|t| repo.cache.symlink_object(t))
                    .is_some();
            let is_read_only_file = e.stat.kind == Kind::File && e.stat.mode & 0o200 == 0;
            (is_cache_link || is_read_only_file).then(|| {
                (
                    paths::join(abs, &e.path),
                    e.stat.kind == Kind::File && e.stat.is_executable(),
                )
            })
        })
        .collect();
    linked
        .par_iter()
        .map(|(path, exec)| private_copy(path, *exec))
        .collect::<Result<Vec<()>>>()?;
    Ok(linked.len())
}

/// Replaces `path` (a link to a cache object) by a private copy of its
/// content, atomically.
fn private_copy(path: &Path, executable: bool) -> Result<()> {
    let tmp = temp::name_in(path.parent().unwrap_or(Path::new(".")));
    let copied = (|| {
        let mut src = File::open(path).at("read", path)?;
        let mut out = create_private(&tmp, executable).at("create", &tmp)?;
        std::io::copy(&mut src, &mut out).at("copy", path)?;
        fs::rename(&tmp, path).at("replace", path)
    })();
    if copied.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    copied
}
