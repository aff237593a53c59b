//! A snapshot's codec: the entries of an out's tree, each encoded in a
//! compact row of its path and fixed fields, read in one pass in path order,
//! and spliced without decoding the rows that stay.

use crate::fsutil::{FileStat, Kind, LinkType};
use crate::hash::Hash;

/// One file (or symlink) of an out as it was when the snapshot was taken,
/// or as it is being recorded for the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotEntry<'a> {
    /// '/'-separated, relative to the out; "" for a file out.
    pub path: &'a str,
    /// The content's stat (a symlink: its target's, kind `Symlink`).
    pub stat: FileStat,
    /// The content's hash.
    pub hash: Hash,
    /// How the file was made from its object, when known.
    pub link: Option<LinkType>,
}

/// A snapshot entry that owns its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedEntry {
    pub path: String,
    pub stat: FileStat,
    pub hash: Hash,
    pub link: Option<LinkType>,
}

impl OwnedEntry {
    pub fn as_entry(&self) -> SnapshotEntry<'_> {
        SnapshotEntry {
            path: &self.path,
            stat: self.stat,
            hash: self.hash,
            link: self.link,
        }
    }
}

impl From<SnapshotEntry<'_>> for OwnedEntry {
    fn from(e: SnapshotEntry<'_>) -> OwnedEntry {
        OwnedEntry {
            path: e.path.to_owned(),
            stat: e.stat,
            hash: e.hash,
            link: e.link,
        }
    }
}

/// The tree of an out after the last successful add, commit or checkout.
/// Its entries stay in their compact encoding and are read in one pass in
/// path order: nothing per file is allocated to load or compare one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The hash the out had (manifest hash for a directory).
    pub hash: Hash,
    /// The link type the workspace files were made with.
    pub link_type: LinkType,
    /// The `cache.type` chain in force then, e.g. "reflink,copy".
    pub cache_type: String,
    /// When the snapshot was taken, on the file system's clock (ns).
    pub taken_ns: i64,
    /// The entries, sorted by path, encoded as described at `encode_entry`.
    pub(super) entries: Vec<u8>,
    pub(super) len: usize,
}

impl Snapshot {
    pub fn new(
        hash: Hash,
        link_type: LinkType,
        cache_type: String,
        taken_ns: i64,
        entries: SnapshotEntries,
    ) -> Snapshot {
        Snapshot {
            hash,
            link_type,
            cache_type,
            taken_ns,
            entries: entries.bytes,
            len: entries.len,
        }
    }

    /// How many files the snapshot holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The same snapshot without its entries (its hash, link type, chain
    /// and time), for when they have been read and are no longer needed.
    pub fn header_only(self) -> Snapshot {
        Snapshot {
            entries: Vec::new(),
            len: 0,
            ..self
        }
    }

    /// The entries in path order.
    pub fn entries(&self) -> impl Iterator<Item = SnapshotEntry<'_>> {
        let mut rest = self.entries.as_slice();
        std::iter::from_fn(move || decode_entry(&mut rest))
    }
}

impl Snapshot {
    /// This snapshot's entries with those at `drop` (sorted paths) left
    /// out and `rows` (sorted, none at a path that stays) merged in, and
    /// the link type all of them share, if one. Staying entries are copied
    /// as they are encoded, in runs, except those whose inode is in
    /// `inodes` (sorted): `restat` gives those their stat now. A repair of
    /// a few files in an out of 10^6 makes its next snapshot this way,
    /// without decoding the rest.
    pub fn splice<'a, E>(
        &self,
        drop: &[&str],
        rows: impl Iterator<Item = SnapshotEntry<'a>>,
        inodes: &[u64],
        mut restat: impl FnMut(&str) -> std::result::Result<FileStat, E>,
    ) -> std::result::Result<(SnapshotEntries, Option<LinkType>), E> {
        let mut out = SnapshotEntries {
            bytes: Vec::with_capacity(self.entries.len() + 256),
            len: 0,
        };
        // The link byte of every entry written: one value, or none shared.
        let mut common: Option<Option<u8>> = None;
        let mut share = |byte: u8| {
            common = match common {
                None => Some(Some(byte)),
                Some(Some(c)) if c == byte => Some(Some(c)),
                Some(_) => Some(None),
            }
        };
        let mut rows = rows.peekable();
        let mut drop = drop.iter().peekable();
        let b = self.entries.as_slice();
        let (mut pos, mut run) = (0, 0);
        while pos < b.len() {
            let Some(e) = raw_entry(&b[pos..]) else {
                break;
            };
            let next = pos + e.len;
            if rows.peek().is_some_and(|r| r.path.as_bytes() < e.path) {
                out.bytes.extend_from_slice(&b[run..pos]);
                run = pos;
                while let Some(r) = rows.next_if(|r| r.path.as_bytes() < e.path) {
                    out.push(&r);
                    share(link_byte(r.link));
                }
            }
            while drop.next_if(|d| d.as_bytes() < e.path).is_some() {}
            if drop.next_if(|d| d.as_bytes() == e.path).is_some() {
                out.bytes.extend_from_slice(&b[run..pos]);
                run = next;
            } else if inodes.binary_search(&e.ino).is_ok() {
                out.bytes.extend_from_slice(&b[run..pos]);
                run = next;
                let mut r = decode_entry(&mut &b[pos..next])
                    .unwrap_or_else(|| unreachable!("raw_entry read this entry whole"));
                r.stat = restat(r.path)?;
                out.push(&r);
                share(e.link);
            } else {
                out.len += 1;
                share(e.link);
            }
            pos = next;
        }
        out.bytes.extend_from_slice(&b[run..pos]);
        for r in rows {
            out.push(&r);
            share(link_byte(r.link));
        }
        let common = common.flatten().and_then(link_of_byte);
        Ok((out, common))
    }
}

/// An encoded entry's path, inode and link byte, and its length in bytes.
struct RawEntry<'a> {
    path: &'a [u8],
    ino: u64,
    link: u8,
    len: usize,
}

/// The encoded entry at the front of `b` (`None`: too short).
fn raw_entry(b: &[u8]) -> Option<RawEntry<'_>> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let fixed = b.get(4 + n..4 + n + FIXED_BYTES)?;
    Some(RawEntry {
        path: &b[4..4 + n],
        ino: u64::from_le_bytes(fixed[INO_AT..INO_AT + 8].try_into().ok()?),
        link: fixed[LINK_AT],
        len: 4 + n + FIXED_BYTES,
    })
}

/// How an entry's link type is encoded (0: not known).
fn link_byte(link: Option<LinkType>) -> u8 {
    link.map_or(0, |t| {
        1 + LinkType::ALL.iter().position(|a| *a == t).unwrap_or(0) as u8
    })
}

/// The link type a link byte encodes (`None`: not known, or no such type).
fn link_of_byte(byte: u8) -> Option<LinkType> {
    byte.checked_sub(1)
        .and_then(|i| LinkType::ALL.get(usize::from(i)).copied())
}

/// Entries being encoded for a snapshot; push them in path order.
#[derive(Debug, Default)]
pub struct SnapshotEntries {
    bytes: Vec<u8>,
    len: usize,
}

impl SnapshotEntries {
    pub fn with_capacity(files: usize) -> SnapshotEntries {
        SnapshotEntries {
            bytes: Vec::with_capacity(files * 80),
            len: 0,
        }
    }

    pub fn push(&mut self, e: &SnapshotEntry<'_>) {
        encode_entry(&mut self.bytes, e.path, &e.stat, e.hash, e.link);
        self.len += 1;
    }
}

// Entry encoding, all integers little-endian:
//   u32 path length, path bytes, u8 kind, u32 mode, u64 size,
//   i64 mtime_ns, i64 ctime_ns, u64 ino, [u8; 16] hash,
//   u8 link type (0 unknown, 1 reflink, 2 hardlink, 3 symlink, 4 copy)
fn encode_entry(
    out: &mut Vec<u8>,
    path: &str,
    stat: &FileStat,
    hash: Hash,
    link: Option<LinkType>,
) {
    // The fixed fields go through one stack array and three copies, not
    // nine growing pushes: a snapshot of 10^6 files encodes 10^6 of these.
    let mut fixed = [0u8; FIXED_BYTES];
    fixed[0] = stat.kind as u8;
    fixed[1..5].copy_from_slice(&stat.mode.to_le_bytes());
    fixed[5..13].copy_from_slice(&stat.size.to_le_bytes());
    fixed[13..21].copy_from_slice(&stat.mtime_ns.to_le_bytes());
    fixed[21..29].copy_from_slice(&stat.ctime_ns.to_le_bytes());
    fixed[INO_AT..INO_AT + 8].copy_from_slice(&stat.ino.to_le_bytes());
    fixed[37..53].copy_from_slice(&hash.to_bytes());
    fixed[LINK_AT] = link_byte(link);
    out.reserve(4 + path.len() + FIXED_BYTES);
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(&fixed);
}

/// The bytes of an entry after its path: kind, mode, size, mtime, ctime,
/// inode, hash, link type.
const FIXED_BYTES: usize = 1 + 4 + 8 + 8 + 8 + 8 + 16 + 1;

/// Where the inode and the link byte are in the fixed fields.
const INO_AT: usize = 1 + 4 + 8 + 8 + 8;
const LINK_AT: usize = FIXED_BYTES - 1;

/// Decodes the entry at the front of `b` and moves past it; `None` at the
/// end or on malformed bytes.
fn decode_entry<'a>(b: &mut &'a [u8]) -> Option<SnapshotEntry<'a>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Some(head)
    }
    fn arr<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
        take(b, N)?.try_into().ok()
    }
    let len = u32::from_le_bytes(arr(b)?) as usize;
    let path = std::str::from_utf8(take(b, len)?).ok()?;
    let kind = Kind::from_u8(arr::<1>(b)?[0])?;
    let stat = FileStat {
        kind,
        mode: u32::from_le_bytes(arr(b)?),
        size: u64::from_le_bytes(arr(b)?),
        mtime_ns: i64::from_le_bytes(arr(b)?),
        ctime_ns: i64::from_le_bytes(arr(b)?),
        ino: u64::from_le_bytes(arr(b)?),
        dev: 0,
        nlink: 0,
    };
    let hash = Hash::from_bytes(arr(b)?);
    let link = match arr::<1>(b)?[0] {
        0 => None,
        n => Some(link_of_byte(n)?),
    };
    Some(SnapshotEntry {
        path,
        stat,
        hash,
        link,
    })
}

/// How many entries a blob holds, if it decodes whole with its paths
/// strictly increasing.
pub(super) fn count_well_formed(mut b: &[u8]) -> Option<usize> {
    let mut last: Option<&str> = None;
    let mut n = 0;
    while !b.is_empty() {
        let e = decode_entry(&mut b)?;
        if last.is_some_and(|l| l >= e.path) {
            return None;
        }
        last = Some(e.path);
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::state) fn stat(n: u64) -> FileStat {
        FileStat {
            kind: Kind::File,
            mode: 0o644,
            size: n,
            mtime_ns: -5,
            ctime_ns: i64::MAX,
            ino: u64::MAX,
            dev: 0,
            nlink: 0,
        }
    }

    pub(in crate::state) fn entry(
        path: &str,
        n: u64,
        hash: Hash,
        link: Option<LinkType>,
    ) -> SnapshotEntry<'_> {
        SnapshotEntry {
            path,
            stat: stat(n),
            hash,
            link,
        }
    }

    pub(in crate::state) fn snapshot() -> Snapshot {
        let mut entries = SnapshotEntries::default();
        entries.push(&entry("a", 1, Hash(7), None));
        entries.push(&entry("b/é c", 2, Hash(14), Some(LinkType::Copy)));
        Snapshot::new(
            Hash(99),
            LinkType::Hardlink,
            "hardlink,copy".into(),
            1234,
            entries,
        )
    }

    proptest::proptest! {
        /// A splice is the naive rebuild: staying entries (re-stat'ed when
        /// their inode is named) and the new rows, in path order, with the
        /// link type they all share.
        #[test]
        fn a_splice_is_the_rebuilt_list(
            old in proptest::collection::btree_map("[abc/]{1,4}", 0u8..3, 0..40),
            dropped in proptest::collection::vec(proptest::bool::ANY, 40),
            new in proptest::collection::btree_map("[abcd/]{1,4}", 0u8..3, 0..8),
            inodes in proptest::collection::btree_set(0u64..40, 0..5),
        ) {
            let link = |k: u8| [None, Some(LinkType::Copy), Some(LinkType::Hardlink)][k as usize];
            let owned = |(i, (p, k)): (usize, (&String, &u8))| OwnedEntry {
                path: p.clone(),
                stat: FileStat { ino: i as u64, ..stat(i as u64) },
                hash: Hash(i as u128),
                link: link(*k),
            };
            let old: Vec<OwnedEntry> = old.iter().enumerate().map(owned).collect();
            let drop: Vec<&str> = old
                .iter()
                .zip(&dropped)
                .filter(|(_, d)| **d)
                .map(|(e, _)| e.path.as_str())
                .collect();
            // New rows go where nothing stays.
            let rows: Vec<OwnedEntry> = new
                .iter()
                .enumerate()
                .map(|(i, e)| OwnedEntry { hash: Hash(1000 + i as u128), ..owned((100 + i, e)) })
                .filter(|r| !old.iter().any(|o| o.path == r.path) || drop.contains(&r.path.as_str()))
                .collect();
            let mut entries = SnapshotEntries::default();
            for e in &old {
                entries.push(&e.as_entry());
            }
            let s = Snapshot::new(Hash(1), LinkType::Copy, "copy".into(), 7, entries);
            let inodes: Vec<u64> = inodes.into_iter().collect();
            let fresh = |p: &str| Ok::<_, ()>(FileStat { size: 999, ..stat(p.len() as u64) });
            let (got, common) = s
                .splice(&drop, rows.iter().map(OwnedEntry::as_entry), &inodes, fresh)
                .unwrap();
            let mut want: Vec<OwnedEntry> = old
                .iter()
                .filter(|e| !drop.contains(&e.path.as_str()))
                .map(|e| match inodes.binary_search(&e.stat.ino) {
                    Ok(_) => OwnedEntry { stat: fresh(&e.path).unwrap(), ..e.clone() },
                    Err(_) => e.clone(),
                })
                .chain(rows.iter().cloned())
                .collect();
            want.sort_by(|a, b| a.path.cmp(&b.path));
            let back = Snapshot::new(Hash(1), LinkType::Copy, "copy".into(), 7, got);
            proptest::prop_assert_eq!(back.len(), want.len());
            let back: Vec<OwnedEntry> = back.entries().map(OwnedEntry::from).collect();
            // Stats come back without device and link count.
            let want_stats: Vec<OwnedEntry> = want
                .iter()
                .map(|e| OwnedEntry { stat: FileStat { dev: 0, nlink: 0, ..e.stat }, ..e.clone() })
                .collect();
            proptest::prop_assert_eq!(&back, &want_stats);
            let first = want.first().and_then(|e| e.link);
            let shared = if want.iter().all(|e| e.link == first) { first } else { None };
            proptest::prop_assert_eq!(common, shared);
        }
    }

    #[test]
    fn a_truncated_or_unsorted_blob_is_not_well_formed() {
        let blob = snapshot().entries;
        assert_eq!(count_well_formed(&blob), Some(2));
        assert_eq!(count_well_formed(&blob[..blob.len() - 1]), None);
        let mut unsorted = SnapshotEntries::default();
        unsorted.push(&entry("b", 1, Hash(1), None));
        unsorted.push(&entry("a", 1, Hash(1), None));
        assert_eq!(count_well_formed(&unsorted.bytes), None);
    }
}
