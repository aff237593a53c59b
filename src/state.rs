//! The state DB (`.bale/state.db`, SQLite in WAL mode): per out, the
//! snapshot of its tree taken after the last successful add, commit or
//! checkout. Each snapshot is one row whose `entries` column is a compact
//! blob, so loading an out of 10^6 files is one read and no per-file query.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::workspace::link::LinkType;
use crate::workspace::stat::{FileStat, Kind};

/// One file (or symlink) of an out as it was when the snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// '/'-separated, relative to the out; "" for a file out.
    pub path: String,
    pub stat: FileStat,
    /// The content's hash.
    pub hash: Hash,
}

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
    /// Sorted by path.
    pub entries: Vec<SnapshotEntry>,
}

impl Snapshot {
    pub fn get(&self, path: &str) -> Option<&SnapshotEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }
}

pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

/// Bumped whenever the table or the blob encoding changes.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    out       TEXT PRIMARY KEY,  -- the out's path, relative to the repository
    hash      BLOB NOT NULL,     -- 16 bytes, big-endian xxh3-128
    link_type TEXT NOT NULL,
    cache_type TEXT NOT NULL,  -- the cache.type chain in force
    taken_ns  INTEGER NOT NULL,
    entries   BLOB NOT NULL      -- see encode_entries
) WITHOUT ROWID;
";

impl StateDb {
    pub fn open(path: &Path) -> Result<StateDb> {
        let err = |source| Error::State {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // The state DB only caches facts that can be derived again: a DB of
        // another schema version is dropped and started afresh.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version != SCHEMA_VERSION {
            conn.execute_batch("DROP TABLE IF EXISTS snapshots;")
                .map_err(err)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err)?;
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(StateDb {
            conn,
            path: path.to_path_buf(),
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
                "SELECT hash, link_type, cache_type, taken_ns, entries FROM snapshots WHERE out = ?1",
                params![out],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((hash, link_type, cache_type, taken_ns, blob)) = row else {
            return Ok(None);
        };
        let (Ok(hash), Ok(link_type), Some(entries)) = (
            <[u8; 16]>::try_from(hash.as_slice()),
            link_type.parse::<LinkType>(),
            decode_entries(&blob),
        ) else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            hash: Hash::from_bytes(hash),
            link_type,
            cache_type,
            taken_ns,
            entries,
        }))
    }

    /// Records the given snapshots and forgets `removed`, in one transaction.
    pub fn save(&mut self, snapshots: &[(String, Snapshot)], removed: &[String]) -> Result<()> {
        let path = self.path.clone();
        let err = |source| Error::State {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO snapshots (out, hash, link_type, cache_type, taken_ns, entries)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for (out, s) in snapshots {
                put.execute(params![
                    out,
                    s.hash.to_bytes().as_slice(),
                    s.link_type.as_str(),
                    s.cache_type,
                    s.taken_ns,
                    encode_entries(&s.entries)
                ])
                .map_err(err)?;
            }
            let mut del = tx
                .prepare_cached("DELETE FROM snapshots WHERE out = ?1")
                .map_err(err)?;
            for out in removed {
                del.execute(params![out]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

// Entry encoding, all integers little-endian:
//   u32 path length, path bytes, u8 kind, u32 mode, u64 size,
//   i64 mtime_ns, i64 ctime_ns, u64 ino, [u8; 16] hash
fn encode_entries(entries: &[SnapshotEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * (61 + 24));
    for e in entries {
        out.extend_from_slice(&(e.path.len() as u32).to_le_bytes());
        out.extend_from_slice(e.path.as_bytes());
        out.push(e.stat.kind as u8);
        out.extend_from_slice(&e.stat.mode.to_le_bytes());
        out.extend_from_slice(&e.stat.size.to_le_bytes());
        out.extend_from_slice(&e.stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&e.stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&e.stat.ino.to_le_bytes());
        out.extend_from_slice(&e.hash.to_bytes());
    }
    out
}

fn decode_entries(mut b: &[u8]) -> Option<Vec<SnapshotEntry>> {
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
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = u32::from_le_bytes(arr(&mut b)?) as usize;
        let path = std::str::from_utf8(take(&mut b, len)?).ok()?.to_owned();
        let kind = Kind::from_u8(arr::<1>(&mut b)?[0])?;
        let stat = FileStat {
            kind,
            mode: u32::from_le_bytes(arr(&mut b)?),
            size: u64::from_le_bytes(arr(&mut b)?),
            mtime_ns: i64::from_le_bytes(arr(&mut b)?),
            ctime_ns: i64::from_le_bytes(arr(&mut b)?),
            ino: u64::from_le_bytes(arr(&mut b)?),
            dev: 0,
            nlink: 0,
        };
        let hash = Hash::from_bytes(arr(&mut b)?);
        out.push(SnapshotEntry { path, stat, hash });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let entry = |path: &str, n: u64| SnapshotEntry {
            path: path.into(),
            stat: FileStat {
                kind: Kind::File,
                mode: 0o644,
                size: n,
                mtime_ns: -5,
                ctime_ns: i64::MAX,
                ino: u64::MAX,
                dev: 0,
                nlink: 0,
            },
            hash: Hash(n as u128 * 7),
        };
        Snapshot {
            hash: Hash(99),
            link_type: LinkType::Hardlink,
            cache_type: "hardlink,copy".into(),
            taken_ns: 1234,
            entries: vec![entry("a", 1), entry("b/é c", 2)],
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
        assert_eq!(back.get("b/é c").unwrap().stat.size, 2);
        db.save(&[], &["data".into()]).unwrap();
        assert_eq!(db.load("data").unwrap(), None);
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
    fn a_truncated_blob_decodes_to_nothing() {
        let blob = encode_entries(&snapshot().entries);
        assert!(decode_entries(&blob[..blob.len() - 1]).is_none());
        assert_eq!(decode_entries(&blob).unwrap(), snapshot().entries);
    }
}
