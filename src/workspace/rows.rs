//! Rows: the snapshot rows of an out's tree once add, commit or checkout has
//! made it match its manifest, built from the entries in path order.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use super::observe::Actual;
use crate::error::{IoContext, Result};
use crate::fsutil::{FileStat, LinkType, stat::content_stat};
use crate::paths;
use crate::state::{SnapshotEntries, SnapshotEntry};

/// The snapshot row of an observed file whose content is known (`None`:
/// not known, or a dangling symlink).
pub fn row_of(a: &Actual) -> Option<SnapshotEntry<'_>> {
    Some(SnapshotEntry {
        path: &a.path,
        stat: a.content_stat()?,
        hash: a.known.hash()?,
        link: a.known.recorded_link,
    })
}

/// A snapshot's entries, encoded, and the link type they all share.
pub struct Encoded {
    pub entries: SnapshotEntries,
    /// The link type every entry was made with, when they all agree: what a
    /// user is told the files are linked as (not what the chain started
    /// with).
    pub common_link: Option<LinkType>,
}

/// Encodes entries for a snapshot as `rows()` yields them (in path order;
/// called twice, so each pass streams and nothing per file is collected
/// but the inodes of hard-linked entries).
///
/// Hardlinks to one object share one inode: making the second link changes
/// the ctime and link count of the first. The entries of files that share
/// an inode with another entry are stat'ed again (in parallel), so that a
/// snapshot holds the stats the tree ends with.
///
/// `made`: the inodes of the entries made now, sorted, when only some were (a
/// checkout): a file left alone can only have been changed by a link made
/// to its inode, so only those inodes are looked at. `None`: all entries.
pub fn encode<'a, I>(
    root: &Path,
    rows: impl Fn() -> I,
    capacity: usize,
    made: Option<&[(u64, u64)]>,
) -> Result<Encoded>
where
    I: Iterator<Item = SnapshotEntry<'a>>,
{
    let mut inodes: Vec<(u64, u64)> = rows()
        .filter(|r| r.stat.nlink > 1)
        .map(|r| (r.stat.dev, r.stat.ino))
        .filter(|i| made.is_none_or(|m| m.binary_search(i).is_ok()))
        .collect();
    inodes.par_sort_unstable();
    let shared: HashSet<(u64, u64)> = inodes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(inodes);
    let fresh: HashMap<&str, FileStat> = if shared.is_empty() {
        HashMap::new()
    } else {
        let paths: Vec<&str> = rows()
            .filter(|r| r.stat.nlink > 1 && shared.contains(&(r.stat.dev, r.stat.ino)))
            .map(|r| r.path)
            .collect();
        paths
            .par_iter()
            .map(|&p| {
                let abs = paths::join(root, p);
                content_stat(&abs).at("read", &abs).map(|s| (p, s))
            })
            .collect::<Result<_>>()?
    };
    let mut entries = SnapshotEntries::with_capacity(capacity);
    let mut common: Option<Option<LinkType>> = None;
    for mut r in rows() {
        if let Some(s) = fresh.get(r.path) {
            r.stat = *s;
        }
        common = match common {
            None => Some(r.link),
            Some(c) if c == r.link => Some(c),
            Some(_) => Some(None),
        };
        entries.push(&r);
    }
    Ok(Encoded {
        entries,
        common_link: common.flatten(),
    })
}

/// Encodes entries (in path order) whose stats are already the tree's.
pub fn encode_as_walked<'a>(
    rows: impl Iterator<Item = SnapshotEntry<'a>>,
    capacity: usize,
) -> SnapshotEntries {
    let mut entries = SnapshotEntries::with_capacity(capacity);
    for r in rows {
        entries.push(&r);
    }
    entries
}

/// Merges two path-sorted lists of entries with no path in both.
pub fn merge<'a>(
    a: impl Iterator<Item = SnapshotEntry<'a>>,
    b: impl Iterator<Item = SnapshotEntry<'a>>,
) -> impl Iterator<Item = SnapshotEntry<'a>> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x.path < y.path => a.next(),
        (Some(_), Some(_)) | (None, Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, None) => None,
    })
}
