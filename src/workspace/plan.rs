//! From "what the workspace holds" and "what the manifest lists" to the
//! actions that make the first match the second. Pure: no file system here.

use std::collections::HashSet;

pub use super::observe::{Actual, Root};
use crate::hash::Hash;
use crate::manifest::Manifest;

/// How the workspace differs from the manifest, as indices into both.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the workspace only (indices into `actual`).
    pub added: Vec<usize>,
    /// In the manifest only (indices into `expected`).
    pub deleted: Vec<usize>,
    /// In both, with other content or executable bit: (actual, expected).
    pub modified: Vec<(usize, usize)>,
    /// In both, equal: (actual, expected).
    pub unchanged: Vec<(usize, usize)>,
}

impl Diff {
    pub fn is_clean(&self) -> bool {
        self.added.is_empty() && self.deleted.is_empty() && self.modified.is_empty()
    }
}

/// Merge-joins the manifest with the workspace's files (both path-sorted).
pub fn diff(expected: &Manifest, actual: &[Actual]) -> Diff {
    diff_by(expected, actual.len(), |i| {
        let a = &actual[i];
        (&*a.path, a.known.hash(), a.executable())
    })
}

/// Merge-joins `expected` with any path-sorted list of `n` items that
/// `key` turns, by index, into (path, content hash, executable bit).
pub fn diff_by<'a>(
    expected: &Manifest,
    n: usize,
    key: impl Fn(usize) -> (&'a str, Option<Hash>, bool),
) -> Diff {
    let mut d = Diff::default();
    let (mut i, mut j) = (0, 0);
    while i < n || j < expected.len() {
        let ord = if i < n && j < expected.len() {
            key(i).0.cmp(expected.get(j).path)
        } else if i < n {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        };
        match ord {
            std::cmp::Ordering::Less => {
                d.added.push(i);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                d.deleted.push(j);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (_, hash, executable) = key(i);
                let e = expected.get(j);
                if hash == Some(e.hash) && executable == e.executable {
                    d.unchanged.push((i, j));
                } else {
                    d.modified.push((i, j));
                }
                i += 1;
                j += 1;
            }
        }
    }
    d
}

/// A workspace file to (re)make from its cache object: an entry of the
/// expected manifest, by index. Its path, hash and size are read from the
/// manifest when the file is made, not copied: a full checkout of 10^6
/// files holds them once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// Index into the expected manifest.
    pub entry: usize,
    /// A workspace file stands at the entry's path now: writing replaces it.
    pub replaces: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckoutPlan {
    /// Files and symlinks to remove.
    pub deletes: Vec<String>,
    /// Folders to remove, deepest first: those where a file must go, and
    /// those that the deletes empty. A folder the user made and left empty
    /// stays.
    pub remove_dirs: Vec<String>,
    /// Folders to create, parents first ("" is the out's root).
    pub create_dirs: Vec<String>,
    /// Files to create or replace.
    pub writes: Vec<Write>,
    /// Paths whose content is not in the cache and would be lost.
    pub conflicts: Vec<String>,
    /// Files already right, left alone: (index into `actual`, into `expected`).
    pub kept: Vec<(usize, usize)>,
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
}

impl CheckoutPlan {
    pub fn is_empty(&self) -> bool {
        self.deletes.is_empty()
            && self.remove_dirs.is_empty()
            && self.create_dirs.is_empty()
            && self.writes.is_empty()
    }

    /// The bytes the writes make (`expected`: the manifest planned for).
    pub fn write_bytes(&self, expected: &Manifest) -> u64 {
        self.writes.iter().map(|w| expected.get(w.entry).size).sum()
    }
}

/// Builds the checkout plan. `expected` is the manifest (for a file out, one
/// entry with path ""), `actual` the workspace's non-directory entries and
/// `actual_dirs` its folders (both sorted). `in_cache` tells whether content
/// is safe to drop. With `force`, content not in the cache is dropped too.
pub fn plan(
    expected: &Manifest,
    is_dir_out: bool,
    actual: &[Actual],
    actual_dirs: &[String],
    root: Root,
    in_cache: impl Fn(Hash) -> bool,
    force: bool,
) -> CheckoutPlan {
    let d = diff(expected, actual);
    let mut p = CheckoutPlan {
        added: d.added.len(),
        modified: d.modified.len(),
        deleted: d.deleted.len(),
        ..Default::default()
    };
    p.writes.reserve_exact(d.modified.len() + d.deleted.len());
    let safe = |a: &Actual| force || a.known.cache_link || a.known.hash().is_some_and(&in_cache);
    for &i in &d.added {
        let a = &actual[i];
        if safe(a) {
            p.deletes.push(a.path.to_string());
        } else {
            p.conflicts.push(a.path.to_string());
        }
    }
    for &(i, j) in &d.modified {
        let a = &actual[i];
        if safe(a) {
            p.writes.push(Write {
                entry: j,
                replaces: true,
            });
        } else {
            p.conflicts.push(a.path.to_string());
        }
    }
    for &j in &d.deleted {
        p.writes.push(Write {
            entry: j,
            replaces: false,
        });
    }
    p.conflicts.sort_unstable();

    let mut needed: HashSet<&str> = HashSet::new();
    if is_dir_out {
        needed.insert("");
        // Each folder's chain of parents is added once, not once per file.
        needed.extend(expected.folder_chains());
    }
    let present: HashSet<&str> = actual_dirs.iter().map(String::as_str).collect();
    p.remove_dirs = dirs_to_remove(
        &p,
        expected,
        actual,
        actual_dirs,
        &needed,
        is_dir_out && root == Root::Dir,
    );
    if !is_dir_out && root == Root::Dir {
        p.remove_dirs.push(String::new());
    }
    let mut create: Vec<String> = needed
        .into_iter()
        .filter(|d| !(present.contains(d) || (d.is_empty() && root == Root::Dir)))
        .map(str::to_owned)
        .collect();
    create.sort_unstable();
    p.create_dirs = create;
    p.kept = d.unchanged;
    p
}

/// The folders (deepest first) that are not needed and either stand where
/// a file must be written (with everything in them), or hold deleted files
/// and nothing else once the deletes are done.
fn dirs_to_remove(
    p: &CheckoutPlan,
    expected: &Manifest,
    actual: &[Actual],
    actual_dirs: &[String],
    needed: &HashSet<&str>,
    root_stays: bool,
) -> Vec<String> {
    let candidates: Vec<&String> = actual_dirs
        .iter()
        .rev()
        .filter(|d| !needed.contains(d.as_str()))
        .collect();
    if candidates.is_empty() {
        // The usual case (every folder still needed): no sets of paths.
        return Vec::new();
    }
    let deleted: HashSet<&str> = p.deletes.iter().map(String::as_str).collect();
    let written: HashSet<&str> = p
        .writes
        .iter()
        .map(|w| expected.get(w.entry).path)
        .collect();
    // Where paths under `dir` start and end in a sorted list of paths.
    fn under<'a, T>(list: &'a [T], dir: &str, path: impl Fn(&T) -> &str) -> &'a [T] {
        let start = list.partition_point(|x| path(x) <= dir);
        let len = list[start..].partition_point(|x| {
            let x = path(x);
            x.len() > dir.len() && x.starts_with(dir) && x.as_bytes()[dir.len()] == b'/'
        });
        &list[start..start + len]
    }
    let blocking = |d: &str| {
        !root_stays
            || written.contains(d)
            || d.match_indices('/').any(|(k, _)| written.contains(&d[..k]))
    };
    let mut removed: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for d in candidates {
        let files = under(actual, d, |a| &*a.path);
        let subdirs = under(actual_dirs, d, |s| s.as_str());
        let emptied = files.iter().any(|a| deleted.contains(&*a.path))
            && files.iter().all(|a| deleted.contains(&*a.path))
            && subdirs.iter().all(|s| removed.contains(s.as_str()));
        if emptied || blocking(d) {
            removed.insert(d);
            out.push(d.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::{FileStat, Kind};
    use crate::manifest::ManifestEntry;

    fn stat(kind: Kind, mode: u32) -> FileStat {
        FileStat {
            kind,
            mode,
            size: 1,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 1,
            dev: 0,
            nlink: 1,
        }
    }

    fn file(path: &str, h: u128) -> Actual {
        Actual {
            path: path.into(),
            stat: stat(Kind::File, 0o644),
            symlink: None,
            known: {
                let mut k = crate::workspace::observe::Known::default();
                k.set_hash(Some(Hash(h)));
                k
            },
        }
    }

    fn manifest(e: Vec<ManifestEntry>) -> Manifest {
        match e.as_slice() {
            [one] if one.path.is_empty() => {
                Manifest::single_file(one.hash, one.size, one.executable)
            }
            _ => Manifest::new(e).unwrap(),
        }
    }

    fn want(path: &str, h: u128) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            hash: Hash(h),
            size: 1,
            executable: false,
        }
    }

    fn dirs(d: &[&str]) -> Vec<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_clean_tree_plans_nothing() {
        let e = manifest(vec![want("a", 1), want("d/b", 2)]);
        let a = [file("a", 1), file("d/b", 2)];
        let p = plan(&e, true, &a, &dirs(&["d"]), Root::Dir, |_| true, false);
        assert!(p.is_empty(), "{p:?}");
        assert!(diff(&e, &a).is_clean());
    }

    #[test]
    fn missing_files_and_folders_are_created_parents_first() {
        let e = manifest(vec![want("x/y/z", 1), want("x/w", 2)]);
        let p = plan(&e, true, &[], &[], Root::Missing, |_| true, false);
        assert_eq!(p.create_dirs, ["", "x", "x/y"]);
        assert_eq!(p.writes.len(), 2);
        assert_eq!(p.deleted, 2);
    }

    #[test]
    fn an_edit_not_in_the_cache_is_a_conflict_unless_forced() {
        let e = manifest(vec![want("a", 1)]);
        let a = [file("a", 9), file("new", 8)];
        let p = plan(&e, true, &a, &[], Root::Dir, |h| h == Hash(1), false);
        assert_eq!(p.conflicts, ["a", "new"]);
        let p = plan(&e, true, &a, &[], Root::Dir, |h| h == Hash(1), true);
        assert!(p.conflicts.is_empty());
        assert_eq!(p.deletes, ["new"]);
        assert_eq!(e.get(p.writes[0].entry).path, "a");
        let p = plan(&e, true, &a, &[], Root::Dir, |_| true, false);
        assert!(
            p.conflicts.is_empty(),
            "content in the cache may be replaced"
        );
    }

    #[test]
    fn a_foreign_symlink_is_never_safe_but_a_cache_link_is() {
        let e = manifest(vec![want("a", 1)]);
        let mut foreign = file("a", 0);
        foreign.stat.kind = Kind::Symlink;
        foreign.known.set_hash(None);
        let p = plan(
            &e,
            true,
            &[foreign.clone()],
            &[],
            Root::Dir,
            |_| true,
            false,
        );
        assert_eq!(p.conflicts, ["a"]);
        foreign.known.cache_link = true;
        foreign.known.set_hash(Some(Hash(3)));
        let p = plan(&e, true, &[foreign], &[], Root::Dir, |_| false, false);
        assert!(p.conflicts.is_empty());
        assert_eq!(p.writes.len(), 1);
    }

    #[test]
    fn executable_bit_change_is_a_modification() {
        let e = manifest(vec![ManifestEntry {
            executable: true,
            ..want("run.sh", 1)
        }]);
        let p = plan(
            &e,
            true,
            &[file("run.sh", 1)],
            &[],
            Root::Dir,
            |_| true,
            false,
        );
        assert_eq!(p.modified, 1);
        assert_eq!(p.writes.len(), 1);
    }

    #[test]
    fn a_folder_where_a_file_belongs_is_emptied_and_removed() {
        let e = manifest(vec![want("a", 1), want("keep/k", 2)]);
        let a = [file("a/x", 5), file("a/y/z", 6), file("keep/k", 2)];
        let p = plan(
            &e,
            true,
            &a,
            &dirs(&["a", "a/y", "keep"]),
            Root::Dir,
            |_| true,
            false,
        );
        assert_eq!(p.deletes, ["a/x", "a/y/z"]);
        assert_eq!(p.remove_dirs, ["a/y", "a"]);
        assert!(p.create_dirs.is_empty());
        assert_eq!(e.get(p.writes[0].entry).path, "a");
    }

    #[test]
    fn a_file_where_a_folder_belongs_is_replaced_by_the_folder() {
        let e = manifest(vec![want("d/f", 1)]);
        let p = plan(&e, true, &[file("d", 1)], &[], Root::Dir, |_| true, false);
        assert_eq!(p.deletes, ["d"]);
        assert_eq!(p.create_dirs, ["d"]);
    }

    #[test]
    fn only_folders_the_deletes_empty_are_removed() {
        let e = manifest(vec![want("keep/k", 2)]);
        let a = [
            file("gone/x", 5),
            file("gone/y/z", 6),
            file("keep/k", 2),
            file("mixed/m", 7),
        ];
        let d = dirs(&[
            "gone",
            "gone/y",
            "keep",
            "keep/mine",
            "mixed",
            "mixed/mine",
            "user",
        ]);
        let p = plan(&e, true, &a, &d, Root::Dir, |_| true, false);
        assert_eq!(p.deletes, ["gone/x", "gone/y/z", "mixed/m"]);
        assert_eq!(p.remove_dirs, ["gone/y", "gone"]);
    }

    #[test]
    fn file_outs_replace_a_folder_root_and_dir_outs_a_file_root() {
        let e = manifest(vec![want("", 1)]);
        let p = plan(&e, false, &[file("x", 1)], &[], Root::Dir, |_| true, false);
        assert_eq!(p.deletes, ["x"]);
        assert_eq!(p.remove_dirs, [""]);
        assert_eq!(e.get(p.writes[0].entry).path, "");
        let e = manifest(vec![want("f", 1)]);
        let p = plan(&e, true, &[file("", 1)], &[], Root::NotDir, |_| true, false);
        assert_eq!(p.deletes, [""]);
        assert_eq!(p.create_dirs, [""]);
    }
}
