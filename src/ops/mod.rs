//! The library side of each command that works on outs: what `cli/` calls
//! once it has parsed the arguments and opened the repository.

pub mod checkout;
pub mod diff;
pub mod gc;
pub mod get;
pub mod pack;
pub mod status;
pub mod track;

use crate::error::Result;
use crate::manifest::Manifest;
use crate::out::Out;
use crate::repo::Repo;

/// The manifest an out's pointer names (for a file out, its one entry).
pub fn expected_of(repo: &Repo, o: &Out) -> Result<Manifest> {
    if o.is_dir() {
        repo.cache.read_manifest(o.record.hash, &o.root)
    } else {
        Ok(Manifest::single_file(
            o.record.hash,
            o.record.size,
            o.record.executable,
        ))
    }
}

/// `key/rel`, or `key` for the out's root: a path relative to the
/// repository ('/'-separated, as it is: quote it for a line of text).
pub fn display_path(key: &str, rel: &str) -> String {
    if rel.is_empty() {
        key.to_owned()
    } else {
        format!("{key}/{rel}")
    }
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
