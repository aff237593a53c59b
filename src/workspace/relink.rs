//! `checkout --relink`: which files that already hold the right content are
//! linked with another type than the one `cache.type` now asks for.
//!
//! From the bulk stat pass: a symlink into the cache is a symlink; a file
//! whose inode is its object's is a hardlink (the object is stat'ed only for
//! files with more than one link); anything else is a private file, copy or
//! reflink. Those two cannot be told apart by a stat, so a private file
//! counts as right only when the snapshot recorded this very file (same inode
//! and ctime) as made with the wanted type; otherwise it is relinked.

use std::fs;
use std::os::unix::fs::MetadataExt;

use rayon::prelude::*;

use super::link::{LinkType, Linker};
use super::plan::Actual;
use super::stat::Kind;
use crate::cache::Cache;
use crate::manifest::ManifestEntry;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurrentLink {
    Hardlink,
    Symlink,
    /// A file of its own: a copy or a reflink.
    Private,
}

pub fn current_link(a: &Actual, cache: &Cache, expected: &ManifestEntry) -> CurrentLink {
    if a.stat.kind == Kind::Symlink {
        return CurrentLink::Symlink;
    }
    if a.stat.nlink > 1
        && let Ok(m) = fs::metadata(cache.object_path(expected.hash))
        && m.ino() == a.stat.ino
        && m.dev() == a.stat.dev
    {
        return CurrentLink::Hardlink;
    }
    CurrentLink::Private
}

/// Whether a file linked as `current` is what `wanted` asks for.
pub fn is_right(current: CurrentLink, wanted: LinkType, a: &Actual) -> bool {
    match (wanted, current) {
        (LinkType::Hardlink, CurrentLink::Hardlink) => true,
        (LinkType::Symlink, CurrentLink::Symlink) => true,
        (LinkType::Copy | LinkType::Reflink, CurrentLink::Private) => {
            a.recorded_link == Some(wanted)
        }
        _ => false,
    }
}

/// The kept files (pairs of indices into `actual` and `expected`) whose
/// link type is not the wanted one.
pub fn wrong_links(
    kept: &[(usize, usize)],
    actual: &[Actual],
    expected: &[ManifestEntry],
    cache: &Cache,
    linker: &Linker,
) -> Vec<(usize, usize)> {
    kept.par_iter()
        .copied()
        .filter(|&(i, j)| {
            let (a, e) = (&actual[i], &expected[j]);
            let Some(wanted) = linker.wanted(e.executable) else {
                return false;
            };
            !is_right(current_link(a, cache, e), wanted, a)
        })
        .collect()
}
