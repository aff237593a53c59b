//! Record: the snapshot of an out's tree once add, commit or checkout has
//! made it match its manifest, built from the entries in path order.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{IoContext, Result};
use crate::fsutil::stat::content_stat;
use crate::paths;
use crate::state::{SnapshotEntries, SnapshotEntry};

/// Hardlinks to one object share one inode: making the second link changes
/// the ctime and link count of the first. Once files are placed, the entries
/// of files that share an inode with another entry are stat'ed again, so
/// that a snapshot holds the stats the tree ends with.
pub fn restat_shared_inodes(root: &Path, rows: &mut [SnapshotEntry<'_>]) -> Result<()> {
    let mut links: HashMap<(u64, u64), u32> = HashMap::new();
    for r in rows.iter().filter(|r| r.stat.nlink > 1) {
        *links.entry((r.stat.dev, r.stat.ino)).or_default() += 1;
    }
    if links.values().all(|&n| n < 2) {
        return Ok(());
    }
    rows.par_iter_mut()
        .filter(|r| r.stat.nlink > 1 && links.get(&(r.stat.dev, r.stat.ino)) > Some(&1))
        .try_for_each(|r| {
            let abs = paths::join(root, r.path);
            r.stat = content_stat(&abs).at("read", &abs)?;
            Ok(())
        })
}

/// Encodes entries (in path order) for a snapshot.
pub fn encode(rows: &[SnapshotEntry<'_>]) -> SnapshotEntries {
    let mut entries = SnapshotEntries::with_capacity(rows.len());
    for r in rows {
        entries.push(r);
    }
    entries
}

/// The link type every entry was made with, when they all agree: what a
/// user is told the files are linked as (not what the chain started with).
pub fn common_link(rows: &[SnapshotEntry<'_>]) -> Option<crate::fsutil::LinkType> {
    let first = rows.first()?.link?;
    rows.iter().all(|r| r.link == Some(first)).then_some(first)
}

/// Merges two path-sorted lists of entries with no path in both.
pub fn merge<'a>(
    a: impl Iterator<Item = SnapshotEntry<'a>>,
    b: impl Iterator<Item = SnapshotEntry<'a>>,
    capacity: usize,
) -> Vec<SnapshotEntry<'a>> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut rows = Vec::with_capacity(capacity);
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.path < y.path => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        rows.extend(next);
    }
    rows
}
