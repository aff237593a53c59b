//! `checkout --relink`: which files that already hold the right content are
//! linked with another type than the one `cache.type` now asks for.
//!
//! From the bulk stat pass: a symlink into the cache is a symlink; a file
//! that is a hard link of its object is a hardlink (the cache is asked only
//! for files with more than one link); anything else is a private file, copy
//! or reflink. Those two cannot be told apart by a stat, so a private file
//! counts as right only when the snapshot recorded this very file (same inode
//! and ctime) as made with the wanted type; otherwise it is relinked.

use rayon::prelude::*;

use super::link::Linker;
use super::observe::Actual;
use crate::cache::Cache;
use crate::fsutil::{Kind, LinkType};
use crate::manifest::{Entry, Manifest};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurrentLink {
    Hardlink,
    Symlink,
    /// A file of its own: a copy or a reflink.
    Private,
}

pub fn current_link(a: &Actual, cache: &Cache, expected: Entry<'_>) -> CurrentLink {
    if a.stat.kind == Kind::Symlink {
        CurrentLink::Symlink
    } else if cache.is_hardlink_of(expected.hash, &a.stat) {
        CurrentLink::Hardlink
    } else {
        CurrentLink::Private
    }
}

/// Whether a file linked as `current` is what `wanted` asks for.
pub fn is_right(current: CurrentLink, wanted: LinkType, a: &Actual) -> bool {
    match (wanted, current) {
        (LinkType::Hardlink, CurrentLink::Hardlink) => true,
        (LinkType::Symlink, CurrentLink::Symlink) => true,
        (LinkType::Copy | LinkType::Reflink, CurrentLink::Private) => {
            a.known.recorded_link == Some(wanted)
        }
        _ => false,
    }
}

/// The kept files (pairs of indices into `actual` and `expected`) whose
/// link type is not the wanted one, in the order of `kept`.
pub fn wrong_links(
    kept: &[(usize, usize)],
    actual: &[Actual],
    expected: &Manifest,
    cache: &Cache,
    linker: &Linker,
) -> Vec<(usize, usize)> {
    kept.par_iter()
        .copied()
        .filter(|&(i, j)| {
            let (a, e) = (&actual[i], expected.get(j));
            let Some(wanted) = linker.wanted(e.executable) else {
                return false;
            };
            !is_right(current_link(a, cache, e), wanted, a)
        })
        .collect()
}
