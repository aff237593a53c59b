//! The library side of each command that works on outs: what `cli/` calls
//! once it has parsed the arguments and opened the repository.

pub mod add;
pub mod checkout;
pub mod commit;
pub mod config;
pub mod diff;
pub mod fetch;
pub mod fsck;
pub mod gc;
pub mod get;
pub mod import;
pub mod pack;
pub mod push;
pub mod remote;
pub mod status;
pub mod track;
pub mod unprotect;

use crate::error::{Error, Result};
use crate::fsutil::Kind;
use crate::out::Out;
pub use crate::out::{display_path, expected_of};
use crate::repo::Repo;
use crate::workspace::{link::Linker, walk};

/// The link chain `cache.type` configures: how every command makes
/// workspace files from cache objects.
pub fn linker(repo: &Repo) -> Linker {
    Linker::new(repo.settings.cache_types.clone())
}

/// An out's stat walk as its pointer asks for it: with `skip_symlinks`,
/// the symlinks `add --skip-symlinks` left out (all but links into the
/// cache) are left out again, so that status, commit and checkout never see
/// them.
pub fn walk_out(repo: &Repo, o: &Out, expected: usize) -> Result<Option<walk::Walk>> {
    let mut walked = walk::walk(&o.root, expected)?;
    if o.record.skip_symlinks
        && let Some(w) = walked.as_mut()
    {
        w.entries.retain(|e| {
            e.stat.kind != Kind::Symlink
                || e.link_target().is_some_and(|t| {
                    repo.cache.symlink_object(t).is_some() || repo.cache.moved_object(t).is_some()
                })
        });
    }
    Ok(walked)
}

/// What a command changed, file by file, for `-v`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub deleted: Vec<String>,
}

impl Changes {
    /// The lines `-v` prints, one per path (a name holding a newline is
    /// quoted, so each path stays one line).
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        let q = |p: &String| crate::paths::quoted_str(p);
        self.added
            .iter()
            .map(move |p| format!("  added:    {}", q(p)))
            .chain(
                self.modified
                    .iter()
                    .map(move |p| format!("  modified: {}", q(p))),
            )
            .chain(
                self.deleted
                    .iter()
                    .map(move |p| format!("  deleted:  {}", q(p))),
            )
    }
}

/// Lines of a list shown in a message before "... and N more".
pub const SHOWN: usize = 20;

/// `items` as the indented lines of a message, at most `SHOWN` of them.
pub fn capped_lines<T: std::fmt::Display>(items: &[T]) -> String {
    let mut lines: Vec<String> = items.iter().take(SHOWN).map(|i| format!("  {i}")).collect();
    if items.len() > SHOWN {
        lines.push(format!("  ... and {} more", items.len() - SHOWN));
    }
    lines.join("\n")
}

/// The one error for cache objects found corrupt (each already set aside).
pub fn corrupt_found(cache: &crate::cache::Cache, hashes: &[crate::hash::Hash]) -> Error {
    Error::CorruptFound {
        count: hashes.len(),
        cache: cache.dir().to_path_buf(),
        list: capped_lines(hashes),
    }
}
