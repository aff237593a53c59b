//! The manifest of a tracked directory: every file's path, hash, size and
//! executable bit, sorted by path, in one canonical text encoding. Its
//! xxh3-128 is the directory's hash.
//!
//! `codec.rs` is the text encoding (write, decode in parallel pieces, decode
//! only some lines); `builder.rs` gathers entries in any order and sorts
//! them once; this module holds the compact list and its checks.

mod builder;
mod codec;

pub use builder::Builder;
pub use codec::HEADER;

use crate::hash::Hash;
use crate::paths;

/// An entry to build a manifest from (`Manifest::new`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    pub hash: Hash,
    pub size: u64,
    pub executable: bool,
}

/// An entry of a manifest, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub hash: Hash,
    pub size: u64,
    pub executable: bool,
}

/// One entry's fixed fields; its path ends at `end` in `Manifest::paths`
/// and starts where the one before it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub(super) hash: Hash,
    pub(super) size: u64,
    pub(super) end: u32,
    pub(super) executable: bool,
}

/// The entries of a directory, sorted by path. Held compactly: every path
/// in one string, 32 bytes of fixed fields per entry, so a manifest of
/// 10^6 files costs about 32 bytes plus its path per file, with no
/// allocation per entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub(super) paths: String,
    pub(super) slots: Vec<Slot>,
}

/// The entries of a manifest in path order.
#[derive(Clone)]
pub struct Entries<'a> {
    m: &'a Manifest,
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        let j = self.range.next()?;
        Some(self.m.get(j))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl ExactSizeIterator for Entries<'_> {}

impl<'a> DoubleEndedIterator for Entries<'a> {
    fn next_back(&mut self) -> Option<Entry<'a>> {
        let j = self.range.next_back()?;
        Some(self.m.get(j))
    }
}

/// Paths past this many bytes in all do not fit the offsets.
pub(super) const MAX_PATH_BYTES: usize = u32::MAX as usize;

impl Manifest {
    /// Builds a directory's manifest from entries in any order, checking them
    /// as the decoder does: every path safe, none twice, none both a file and
    /// a folder. The error says what is wrong.
    pub fn new(entries: Vec<ManifestEntry>) -> Result<Manifest, String> {
        let mut b = Builder::default();
        for e in &entries {
            b.push(&e.path, e.hash, e.size, e.executable)?;
        }
        drop(entries);
        b.finish()
    }

    /// Builds a directory's manifest from entries already in path order,
    /// checking them as `new` does; `capacity` and `path_bytes` are how
    /// many there are and their paths' total length, to allocate once.
    pub fn from_sorted<'a>(
        entries: impl Iterator<Item = Entry<'a>>,
        capacity: usize,
        path_bytes: usize,
    ) -> Result<Manifest, String> {
        let mut m = Manifest {
            paths: String::with_capacity(path_bytes),
            slots: Vec::with_capacity(capacity),
        };
        for e in entries {
            paths::check_relative(e.path).map_err(|r| format!("path {:?}: {r}", e.path))?;
            if !m.is_empty() && m.get(m.len() - 1).path >= e.path {
                return Err(format!("{:?} is listed twice or out of order", e.path));
            }
            m.push(e.path, e.hash, e.size, e.executable)?;
        }
        check_no_file_is_a_folder(&m)?;
        Ok(m)
    }

    fn push(&mut self, path: &str, hash: Hash, size: u64, executable: bool) -> Result<(), String> {
        if self.paths.len() + path.len() > MAX_PATH_BYTES {
            return Err("the paths of the folder's files add up to more than 4 GiB".into());
        }
        self.paths.push_str(path);
        self.slots.push(Slot {
            hash,
            size,
            end: self.paths.len() as u32,
            executable,
        });
        Ok(())
    }

    /// Every folder that holds an entry, at any depth: for each run of
    /// entries in one folder (files of one folder are neighbours in path
    /// order), that folder's chain of parents, outermost first. A folder
    /// comes again where the runs of its subfolders interleave; the root ""
    /// is not named.
    pub fn folder_chains(&self) -> impl Iterator<Item = &str> + '_ {
        let mut last_parent = None;
        self.entries().flat_map(move |e| {
            let parent = e.path.rfind('/').map(|k| &e.path[..k]);
            let chain = (parent.is_some() && parent != last_parent).then(|| {
                last_parent = parent;
                e.path
            });
            chain
                .into_iter()
                .flat_map(|p| p.match_indices('/').map(move |(k, _)| &p[..k]))
        })
    }

    /// The one-entry list that stands for a file out (path "").
    pub fn single_file(hash: Hash, size: u64, executable: bool) -> Manifest {
        Manifest {
            paths: String::new(),
            slots: vec![Slot {
                hash,
                size,
                end: 0,
                executable,
            }],
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The entry at `j` (panics past the end, as indexing does).
    pub fn get(&self, j: usize) -> Entry<'_> {
        let s = self.slots[j];
        let start = if j == 0 {
            0
        } else {
            self.slots[j - 1].end as usize
        };
        Entry {
            path: &self.paths[start..s.end as usize],
            hash: s.hash,
            size: s.size,
            executable: s.executable,
        }
    }

    /// The entries in path order.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            m: self,
            range: 0..self.slots.len(),
        }
    }

    /// The entries at `indices` (strictly increasing), as a manifest of
    /// their own: a subset of a valid manifest is valid, so nothing is
    /// checked again. Panics if an index is past the end or out of order.
    pub fn subset(&self, indices: &[usize]) -> Manifest {
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "subset indices must be strictly increasing"
        );
        let mut m = Manifest {
            paths: String::with_capacity(indices.iter().map(|&j| self.get(j).path.len()).sum()),
            slots: Vec::with_capacity(indices.len()),
        };
        for &j in indices {
            let e = self.get(j);
            m.paths.push_str(e.path);
            m.slots.push(Slot {
                hash: e.hash,
                size: e.size,
                end: m.paths.len() as u32,
                executable: e.executable,
            });
        }
        m
    }

    /// The index of the entry at `path`, if any (binary search).
    pub fn find(&self, path: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.slots.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).path.cmp(path) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// A path that is a file must not also be a folder of another path.
pub(super) fn check_no_file_is_a_folder(m: &Manifest) -> std::result::Result<(), String> {
    // The entries are sorted: a folder is looked up by binary search, and
    // only when an entry's folder differs from the one before it (files of
    // one folder are neighbours), so no set of all paths is built.
    match m.folder_chains().find(|folder| m.find(folder).is_some()) {
        Some(folder) => Err(format!("{folder:?} is both a file and a folder")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn entry(path: &str, n: u128) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            hash: Hash(n),
            size: n as u64,
            executable: n % 2 == 1,
        }
    }

    proptest::proptest! {
        /// A lookup by binary search finds exactly what a whole decode
        /// does: every wanted path's entry, or `None` when one is absent.
        #[test]
        fn a_lookup_agrees_with_a_whole_decode(
            names in proptest::collection::btree_set("[ab\\\\\n.é]{1,3}(/[ab]{1,2})?", 1..60),
            picks in proptest::collection::vec(0usize..80, 0..12),
            absent in "[ab]{4}",
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let built: Vec<ManifestEntry> = names
                .iter()
                .enumerate()
                .map(|(i, p)| entry(p, i as u128 + 1))
                .collect();
            // Names that are both a file and a folder are not a manifest.
            let Ok(m) = Manifest::new(built) else { return Ok(()) };
            let bytes = m.encode();
            let mut wanted: Vec<&str> = picks
                .iter()
                .filter_map(|&k| m.entries().nth(k).map(|e| e.path))
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let found = Manifest::decode_at(&bytes, m.hash(), &wanted).unwrap().unwrap();
            let expected: Vec<Entry> = wanted.iter().map(|p| m.get(m.find(p).unwrap())).collect();
            proptest::prop_assert_eq!(found.entries().collect::<Vec<_>>(), expected);
            if m.find(&absent).is_none() {
                let mut with_absent = wanted.clone();
                with_absent.push(&absent);
                with_absent.sort_unstable();
                proptest::prop_assert!(
                    Manifest::decode_at(&bytes, m.hash(), &with_absent).unwrap().is_none()
                );
            }
        }
    }

    proptest::proptest! {
        /// A builder fed entries in any order makes what building them
        /// sorted, one by one, makes, or refuses what that refuses.
        #[test]
        fn a_builder_equals_new(
            paths in proptest::collection::vec("[ab.]{1,2}(/[ab]{1,2})?", 0..40),
            exec in proptest::collection::vec(proptest::bool::ANY, 40),
        ) {
            let entries: Vec<ManifestEntry> = paths
                .iter()
                .zip(&exec)
                .enumerate()
                .map(|(i, (p, x))| ManifestEntry {
                    path: p.clone(),
                    hash: Hash(i as u128 * 7),
                    size: i as u64,
                    executable: *x,
                })
                .collect();
            let mut b = Builder::default();
            for e in &entries {
                b.push(&e.path, e.hash, e.size, e.executable).unwrap();
            }
            proptest::prop_assert_eq!(b.len(), entries.len());
            proptest::prop_assert_eq!(b.size(), entries.iter().map(|e| e.size).sum::<u64>());
            let built = b.finish();
            // The oracle: the same entries sorted, checked one by one.
            let mut sorted = entries.clone();
            sorted.sort_by(|a, b| a.path.cmp(&b.path));
            let one_by_one = Manifest::from_sorted(
                sorted.iter().map(|e| Entry {
                    path: &e.path,
                    hash: e.hash,
                    size: e.size,
                    executable: e.executable,
                }),
                sorted.len(),
                0,
            );
            proptest::prop_assert_eq!(built.is_ok(), one_by_one.is_ok(), "{:?} {:?}", built, one_by_one);
            if let (Ok(b), Ok(n)) = (built, one_by_one) {
                proptest::prop_assert_eq!(b, n);
            }
        }
    }

    #[test]
    fn construction_checks_what_it_is_given() {
        for bad in [
            vec![entry("a", 1), entry("a", 2)],
            vec![entry("a", 1), entry("a/b", 2)],
            vec![entry("../x", 1)],
            vec![entry("", 1)],
            vec![entry("x/.git/y", 1)],
        ] {
            assert!(Manifest::new(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_subset_holds_exactly_the_chosen_entries_in_order() {
        let m = Manifest::new(vec![
            entry("a", 1),
            entry("b/c", 2),
            entry("b/d", 3),
            entry("e", 4),
        ])
        .unwrap();
        let sub = m.subset(&[1, 3]);
        let got: Vec<Entry> = sub.entries().collect();
        assert_eq!(got, vec![m.get(1), m.get(3)]);
        assert_eq!(sub.find("e"), Some(1));
        assert_eq!(sub.find("a"), None);
        assert!(m.subset(&[]).is_empty());
    }

    #[test]
    fn round_trip_is_canonical_and_sorted() {
        let m = Manifest::new(vec![
            entry("b", 1),
            entry("a/new\nline\\x", 2),
            entry("a b/é", 3),
        ])
        .unwrap();
        let bytes = m.encode();
        let back = Manifest::decode(&bytes, m.hash()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.get(0).path, "a b/é");
        assert_eq!(back.get(2).path, "b");
        assert_eq!(back.get(1).path, "a/new\nline\\x");
    }

    #[test]
    fn rejects_unsafe_duplicate_and_conflicting_paths() {
        let h = Hash(0);
        let line = |p: &str| format!("{} 1 - {p}\n", Hash(5));
        for body in [
            line("../x"),
            line("/abs"),
            line(".git/config"),
            line("a") + &line("a"),
            line("b") + &line("a"),
            line("a") + &line("a/b"),
            "zz 1 - a\n".to_string(),
            format!("{} 1 q a\n", Hash(5)),
            format!("{} 1 -\n", Hash(5)),
        ] {
            let bytes = format!("{HEADER}{body}");
            assert!(Manifest::decode(bytes.as_bytes(), h).is_err(), "{body:?}");
        }
        assert!(Manifest::decode(b"nonsense", h).is_err());
    }

    #[test]
    fn from_sorted_equals_new_and_refuses_disorder() {
        let e = vec![entry("a", 1), entry("a.txt", 2), entry("ab/c", 3)];
        fn borrowed(e: &[ManifestEntry]) -> Vec<Entry<'_>> {
            e.iter()
                .map(|x| Entry {
                    path: &x.path,
                    hash: x.hash,
                    size: x.size,
                    executable: x.executable,
                })
                .collect()
        }
        let m = Manifest::from_sorted(borrowed(&e).into_iter(), 3, 10).unwrap();
        assert_eq!(m, Manifest::new(e.clone()).unwrap());
        let swapped = vec![e[1].clone(), e[0].clone()];
        assert!(Manifest::from_sorted(borrowed(&swapped).into_iter(), 2, 6).is_err());
        let clash = vec![entry("a", 1), entry("a/b", 2)];
        assert!(Manifest::from_sorted(borrowed(&clash).into_iter(), 2, 4).is_err());
    }

    #[test]
    fn a_file_beside_a_longer_sibling_is_fine() {
        let m = Manifest::new(vec![entry("a", 1), entry("a.txt", 2), entry("ab/c", 3)]).unwrap();
        assert!(Manifest::decode(&m.encode(), m.hash()).is_ok());
    }
}
