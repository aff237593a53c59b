//! The state DB (`.bale/state.db`, SQLite in WAL mode): per out, the
//! snapshot of its tree taken after the last successful add, commit or
//! checkout. Each snapshot is a small header row (`snapshots`) and one
//! compact blob (`snapshot_entries`), so loading an out of 10^6 files is one
//! read and no per-file query.
//!
//! Saving a snapshot of the same size as the one loaded (a repair or a
//! commit of edited files: same paths, other stats) rewrites only the
//! 64 KiB pieces of the blob that differ, found by the digests taken when
//! it was loaded; a random generation tag, renewed by every save, proves
//! that the row is still the one loaded. The header lives apart from the
//! blob because SQLite rewrites a whole row on any UPDATE: with the blob
//! in the same row, renewing the tag would copy all 77 MB of a 10^6-file
//! snapshot.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, MAIN_DB, OptionalExtension, params};

use crate::error::{Error, Result};
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
    entries: Vec<u8>,
    len: usize,
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

pub struct StateDb {
    conn: Connection,
    path: PathBuf,
    /// What was loaded of each out's row, for saving it in place.
    loaded: RefCell<HashMap<String, Loaded>>,
}

/// A snapshot row as loaded: which row and generation it was, and the
/// digest of each `PIECE` bytes of its blob.
struct Loaded {
    rowid: i64,
    generation: i64,
    len: usize,
    pieces: Vec<u128>,
}

/// The blob is compared and rewritten in pieces of this many bytes.
const PIECE: usize = 64 * 1024;

fn piece_digests(blob: &[u8]) -> Vec<u128> {
    blob.chunks(PIECE)
        .map(xxhash_rust::xxh3::xxh3_128)
        .collect()
}

/// Bumped whenever the table or the blob encoding (or what it means)
/// changes. 4: a symlink's entry holds its target's stat. 5: the
/// `generation` column. 6: the blob in its own table. Older versions keep
/// their rows (4 -> 5 -> 6); any other is dropped.
const SCHEMA_VERSION: i64 = 6;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    out       TEXT PRIMARY KEY,  -- the out's path, relative to the repository
    hash      BLOB NOT NULL,     -- 16 bytes, big-endian xxh3-128
    link_type TEXT NOT NULL,
    cache_type TEXT NOT NULL,  -- the cache.type chain in force
    taken_ns  INTEGER NOT NULL,
    generation INTEGER NOT NULL  -- random, new at every save
);
CREATE TABLE IF NOT EXISTS snapshot_entries (
    out       TEXT PRIMARY KEY,  -- as in snapshots
    entries   BLOB NOT NULL      -- see encode_entry
);
";

/// Version 5 -> 6: the blobs move to `snapshot_entries`.
const MIGRATE_5_TO_6: &str = "
CREATE TABLE snapshot_entries (out TEXT PRIMARY KEY, entries BLOB NOT NULL);
INSERT INTO snapshot_entries SELECT out, entries FROM snapshots;
CREATE TABLE snapshots_6 (out TEXT PRIMARY KEY, hash BLOB NOT NULL,
    link_type TEXT NOT NULL, cache_type TEXT NOT NULL,
    taken_ns INTEGER NOT NULL, generation INTEGER NOT NULL);
INSERT INTO snapshots_6
    SELECT out, hash, link_type, cache_type, taken_ns, generation FROM snapshots;
DROP TABLE snapshots;
ALTER TABLE snapshots_6 RENAME TO snapshots;
";

impl StateDb {
    /// Opens the state DB; one that cannot be read as a state DB (damaged,
    /// not SQLite) is renamed to `state.db.corrupt` and started afresh, with
    /// one warning: it only caches facts that can be derived again.
    pub fn open_or_rebuild(path: &Path) -> Result<StateDb> {
        match Self::open(path) {
            Ok(db) => Ok(db),
            Err(Error::State { source, .. }) if is_damage(&source) => {
                let aside = path.with_extension("db.corrupt");
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: the state DB {} cannot be read ({source}); it was set aside as {} and is rebuilt: the next commands re-hash what they cannot trust",
                    path.display(),
                    aside.display()
                );
                let _ = std::fs::rename(path, &aside);
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.as_os_str().to_owned();
                    side.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(side));
                }
                Self::open(path)
            }
            Err(e) => Err(e),
        }
    }

    pub fn open(path: &Path) -> Result<StateDb> {
        let err = |source| Error::State {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // Snapshots are blobs of megabytes: large pages make them short
        // chains. It takes effect only when the file is new (an older DB
        // keeps its page size and works the same).
        conn.pragma_update(None, "page_size", 65536).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // The state DB only caches facts that can be derived again: a DB of
        // another schema version is dropped and started afresh.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version == 4 || version == 5 {
            let v4 = if version == 4 {
                "ALTER TABLE snapshots ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;"
            } else {
                ""
            };
            conn.execute_batch(&format!(
                "BEGIN; {v4} {MIGRATE_5_TO_6} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(err)?;
        } else if version != SCHEMA_VERSION {
            conn.execute_batch(&format!(
                "BEGIN; DROP TABLE IF EXISTS snapshots; DROP TABLE IF EXISTS snapshot_entries;
                 PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(err)?;
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(StateDb {
            conn,
            path: path.to_path_buf(),
            loaded: RefCell::default(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::State {
            path: self.path.clone(),
            source,
        }
    }

    /// The snapshot of `out`, if one was recorded and is readable. A blob
    /// that does not decode (an older or damaged DB) counts as none: the
    /// state DB is a cache of facts that can always be re-derived.
    pub fn load(&self, out: &str) -> Result<Option<Snapshot>> {
        let row = self
            .conn
            .query_row(
                "SELECT e.rowid, s.hash, s.link_type, s.cache_type, s.taken_ns,
                        length(e.entries), s.generation
                 FROM snapshots s JOIN snapshot_entries e ON e.out = s.out
                 WHERE s.out = ?1",
                params![out],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((rowid, hash, link_type, cache_type, taken_ns, size, generation)) = row else {
            return Ok(None);
        };
        // Read the blob incrementally straight into its final buffer: a plain
        // column read would hold a second, SQLite-side copy of it.
        let mut blob = vec![0; usize::try_from(size).unwrap_or(0)];
        self.conn
            .blob_open(MAIN_DB, c"snapshot_entries", c"entries", rowid, true)
            .and_then(|b| b.read_at_exact(&mut blob, 0))
            .map_err(|e| self.err(e))?;
        let (Ok(hash), Ok(link_type), Some(len)) = (
            <[u8; 16]>::try_from(hash.as_slice()),
            link_type.parse::<LinkType>(),
            count_well_formed(&blob),
        ) else {
            return Ok(None);
        };
        self.loaded.borrow_mut().insert(
            out.to_owned(),
            Loaded {
                rowid,
                generation,
                len: blob.len(),
                pieces: piece_digests(&blob),
            },
        );
        Ok(Some(Snapshot {
            hash: Hash::from_bytes(hash),
            link_type,
            cache_type,
            taken_ns,
            entries: blob,
            len,
        }))
    }

    /// Every out's last link type and chain, without loading the entries.
    pub fn link_types(&self) -> Result<Vec<(String, LinkType, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT out, link_type, cache_type FROM snapshots ORDER BY out")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (key, t, chain) = r.map_err(|e| self.err(e))?;
            if let Ok(t) = t.parse() {
                out.push((key, t, chain));
            }
        }
        Ok(out)
    }

    /// Records the given snapshots and forgets `removed`, in one transaction.
    /// A snapshot of the size of the row this DB loaded for its out, when
    /// that row was not saved since, is written in place: only its pieces
    /// that differ. Any other is written whole, straight from its buffer.
    pub fn save(&mut self, snapshots: &[(String, Snapshot)], removed: &[String]) -> Result<()> {
        let path = self.path.clone();
        let err = |source| Error::State {
            path: path.clone(),
            source,
        };
        let mut saved = Vec::with_capacity(snapshots.len());
        let loaded = self.loaded.get_mut();
        let tx = self.conn.transaction().map_err(err)?;
        for (out, s) in snapshots {
            let generation = fastrand::i64(..);
            let pieces = piece_digests(&s.entries);
            let current: Option<(i64, i64, i64)> = tx
                .prepare_cached(
                    "SELECT e.rowid, s.generation, length(e.entries)
                     FROM snapshots s JOIN snapshot_entries e ON e.out = s.out
                     WHERE s.out = ?1",
                )
                .and_then(|mut q| {
                    q.query_row(params![out], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(err)?;
            let hash = s.hash.to_bytes();
            let header = params![
                out,
                hash.as_slice(),
                s.link_type.as_str(),
                s.cache_type,
                s.taken_ns,
                generation,
            ];
            let in_place = match (current, loaded.get(out)) {
                (Some((rowid, g, len)), Some(l))
                    if rowid == l.rowid
                        && g == l.generation
                        && usize::try_from(len) == Ok(l.len)
                        && l.len == s.entries.len() =>
                {
                    Some((rowid, l))
                }
                _ => None,
            };
            let rowid = if let Some((rowid, l)) = in_place {
                tx.prepare_cached(
                    "UPDATE snapshots SET hash = ?2, link_type = ?3, cache_type = ?4,
                         taken_ns = ?5, generation = ?6
                     WHERE out = ?1",
                )
                .and_then(|mut q| q.execute(header))
                .map_err(err)?;
                let mut blob = tx
                    .blob_open(MAIN_DB, c"snapshot_entries", c"entries", rowid, false)
                    .map_err(err)?;
                for (i, piece) in s.entries.chunks(PIECE).enumerate() {
                    if pieces[i] != l.pieces[i] {
                        blob.write_at(piece, i * PIECE).map_err(err)?;
                    }
                }
                rowid
            } else {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO snapshots
                         (out, hash, link_type, cache_type, taken_ns, generation)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut q| q.execute(header))
                .map_err(err)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO snapshot_entries (out, entries)
                     VALUES (?1, zeroblob(?2))",
                )
                .and_then(|mut q| q.execute(params![out, s.entries.len() as i64]))
                .map_err(err)?;
                let rowid = tx.last_insert_rowid();
                if !s.entries.is_empty() {
                    tx.blob_open(MAIN_DB, c"snapshot_entries", c"entries", rowid, false)
                        .and_then(|mut b| b.write_at(&s.entries, 0))
                        .map_err(err)?;
                }
                rowid
            };
            saved.push((
                out.clone(),
                Loaded {
                    rowid,
                    generation,
                    len: s.entries.len(),
                    pieces,
                },
            ));
        }
        for table in ["snapshots", "snapshot_entries"] {
            let mut del = tx
                .prepare_cached(&format!("DELETE FROM {table} WHERE out = ?1"))
                .map_err(err)?;
            for out in removed {
                del.execute(params![out]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        for out in removed {
            loaded.remove(out);
        }
        loaded.extend(saved);
        Ok(())
    }
}

/// Whether an SQLite error means the file is not a sound database.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
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
fn count_well_formed(mut b: &[u8]) -> Option<usize> {
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
mod tests {
    use super::*;

    fn stat(n: u64) -> FileStat {
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

    fn entry(path: &str, n: u64, hash: Hash, link: Option<LinkType>) -> SnapshotEntry<'_> {
        SnapshotEntry {
            path,
            stat: stat(n),
            hash,
            link,
        }
    }

    fn snapshot() -> Snapshot {
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
    fn snapshots_round_trip_and_can_be_removed() {
        let t = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(&t.path().join("state.db")).unwrap();
        assert_eq!(db.load("data").unwrap(), None);
        db.save(&[("data".into(), snapshot())], &[]).unwrap();
        let back = db.load("data").unwrap().unwrap();
        assert_eq!(back, snapshot());
        let entries: Vec<_> = back.entries().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[1].path, entries[1].stat, entries[1].hash),
            ("b/é c", stat(2), Hash(14))
        );
        db.save(&[], &["data".into()]).unwrap();
        assert_eq!(db.load("data").unwrap(), None);
    }

    /// A snapshot of `n` files over several blob pieces; the file `edited`,
    /// if any, has another stat.
    fn big(n: u64, edited: Option<u64>) -> Snapshot {
        let paths: Vec<String> = (0..n).map(|i| format!("d/f{i:06}")).collect();
        let mut entries = SnapshotEntries::default();
        for (i, p) in (0..n).zip(&paths) {
            let size = if Some(i) == edited { 1_000_000 + i } else { i };
            entries.push(&entry(
                p,
                size,
                Hash(u128::from(i)),
                Some(LinkType::Hardlink),
            ));
        }
        Snapshot::new(Hash(1), LinkType::Hardlink, "hardlink".into(), 7, entries)
    }

    #[test]
    fn a_snapshot_of_the_same_size_is_saved_in_place_and_reads_back_whole() {
        let t = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(&t.path().join("state.db")).unwrap();
        db.save(&[("data".into(), big(5000, None))], &[]).unwrap();
        assert!(big(5000, None).entries.len() > 4 * PIECE);
        let loaded = db.load("data").unwrap().unwrap();
        assert_eq!(loaded, big(5000, None));
        // Same length, one entry changed: written in place.
        let edited = big(5000, Some(4321));
        assert_eq!(edited.entries.len(), loaded.entries.len());
        db.save(&[("data".into(), edited.clone())], &[]).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(edited.clone()));
        // And again, from what that save left (no load in between).
        let again = big(5000, Some(17));
        db.save(&[("data".into(), again.clone())], &[]).unwrap();
        let other = StateDb::open(&t.path().join("state.db")).unwrap();
        assert_eq!(other.load("data").unwrap(), Some(again));
    }

    #[test]
    fn a_row_saved_by_another_process_since_it_was_loaded_is_written_whole() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        let mut a = StateDb::open(&path).unwrap();
        a.save(&[("data".into(), big(5000, None))], &[]).unwrap();
        let mut a = StateDb::open(&path).unwrap();
        let mut b = StateDb::open(&path).unwrap();
        a.load("data").unwrap().unwrap();
        b.load("data").unwrap().unwrap();
        // b changes a file far from the one a changes, in another piece.
        b.save(&[("data".into(), big(5000, Some(4000)))], &[])
            .unwrap();
        a.save(&[("data".into(), big(5000, Some(10)))], &[])
            .unwrap();
        let fresh = StateDb::open(&path).unwrap();
        assert_eq!(fresh.load("data").unwrap(), Some(big(5000, Some(10))));
    }

    /// A DB made by an older bale: `schema` (which sets its user_version),
    /// then one row of `snapshot()` with the `extra` columns after it.
    fn old_db(schema: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(schema).unwrap();
        let s = snapshot();
        old.execute(
            &format!(
                "INSERT INTO snapshots VALUES ('data', ?1, 'hardlink', 'hardlink,copy', 1234, ?2{extra})"
            ),
            params![s.hash.to_bytes().as_slice(), s.entries],
        )
        .unwrap();
        (t, path)
    }

    const V4: &str = "CREATE TABLE snapshots (out TEXT PRIMARY KEY, hash BLOB NOT NULL,
         link_type TEXT NOT NULL, cache_type TEXT NOT NULL,
         taken_ns INTEGER NOT NULL, entries BLOB NOT NULL);";

    #[test]
    fn a_version_4_db_keeps_its_snapshots() {
        let (_t, path) = old_db(&format!("{V4} PRAGMA user_version = 4;"), "");
        let mut db = StateDb::open(&path).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(snapshot()));
        db.save(&[("data".into(), snapshot())], &[]).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(snapshot()));
    }

    #[test]
    fn a_version_5_db_keeps_its_snapshots() {
        let (_t, path) = old_db(
            &format!(
                "{V4} ALTER TABLE snapshots ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
                 PRAGMA user_version = 5;"
            ),
            ", 99",
        );
        let mut db = StateDb::open(&path).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(snapshot()));
        assert_eq!(db.link_types().unwrap().len(), 1);
        db.save(&[("data".into(), snapshot())], &[]).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(snapshot()));
        db.save(&[], &["data".into()]).unwrap();
        assert_eq!(db.load("data").unwrap(), None);
    }

    /// Frames in the WAL after a checkpoint that moved none of them.
    fn wal_frames(db: &StateDb) -> i64 {
        db.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    #[test]
    fn an_in_place_save_writes_only_the_changed_pages_not_the_whole_blob() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        let mut db = StateDb::open(&path).unwrap();
        db.save(&[("data".into(), big(20_000, None))], &[]).unwrap();
        let pages = big(20_000, None).entries.len() / 65536;
        assert!(pages >= 20, "{pages}");
        db.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        db.load("data").unwrap().unwrap();
        db.save(&[("data".into(), big(20_000, Some(12_345)))], &[])
            .unwrap();
        // The header's page, the changed piece's page or two, and the
        // tree pages above them; the blob's other pages stay where they are.
        let frames = wal_frames(&db);
        assert!(frames <= 6, "{frames} WAL frames for a one-entry change");
        assert_eq!(db.load("data").unwrap(), Some(big(20_000, Some(12_345))));
    }

    #[test]
    fn a_db_of_another_schema_version_is_started_afresh() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch("CREATE TABLE snapshots (out TEXT PRIMARY KEY, x BLOB);")
            .unwrap();
        drop(old);
        let mut db = StateDb::open(&path).unwrap();
        assert_eq!(db.load("data").unwrap(), None);
        db.save(&[("data".into(), snapshot())], &[]).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(snapshot()));
    }

    #[test]
    fn a_damaged_db_is_set_aside_and_started_afresh() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let mut db = StateDb::open_or_rebuild(&path).unwrap();
        assert!(t.path().join("state.db.corrupt").is_file());
        db.save(&[("data".into(), snapshot())], &[]).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(snapshot()));
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
