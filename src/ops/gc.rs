//! gc's knowledge of what is referenced: every object that a pointer file
//! under the repository root names, directly or through a manifest.

use std::collections::HashSet;

use crate::error::Result;
use crate::hash::Hash;
use crate::out::{self, Inside};
use crate::repo::Repo;

/// Every hash that a pointer file under the repository root references.
/// An unreadable pointer file or a missing manifest stops gc: deleting on
/// partial knowledge could lose data (the objects a lost manifest lists are
/// unknown, and may come back with it).
pub fn referenced(repo: &Repo) -> Result<HashSet<Hash>> {
    let mut keep = HashSet::new();
    for o in out::resolve(repo, &repo.root, &[], Inside::Refuse)? {
        keep.insert(o.record.hash);
        if o.is_dir() {
            let m = repo.cache.read_manifest(o.record.hash, &o.root)?;
            keep.extend(m.entries().iter().map(|e| e.hash));
        }
    }
    Ok(keep)
}
