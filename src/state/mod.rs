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

mod snapshot;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, MAIN_DB, OptionalExtension, params};

use snapshot::count_well_formed;
pub use snapshot::{OwnedEntry, Snapshot, SnapshotEntries, SnapshotEntry};

use crate::error::{Error, Result};
use crate::fsutil::LinkType;
use crate::fsutil::sqlite::{self, is_damage};
use crate::hash::Hash;
use crate::warnings::Warnings;

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
    /// one warning (in `warnings`): it only caches facts that can be
    /// derived again.
    pub fn open_or_rebuild(path: &Path, warnings: &Warnings) -> Result<StateDb> {
        match Self::open(path) {
            Ok(db) => Ok(db),
            Err(Error::State { source, .. }) if is_damage(&source) => {
                let aside = sqlite::set_aside(path);
                warnings.push(format!(
                    "the state DB {} cannot be read ({source}); it was set aside as {} and is rebuilt: the next commands re-hash what they cannot trust",
                    path.display(),
                    aside.display()
                ));
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

#[cfg(test)]
mod tests {
    use super::snapshot::tests::{entry, snapshot, stat};
    use super::*;

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
        let warnings = Warnings::default();
        let mut db = StateDb::open_or_rebuild(&path, &warnings).unwrap();
        assert!(t.path().join("state.db.corrupt").is_file());
        assert_eq!(warnings.take().len(), 1, "the set-aside is told");
        db.save(&[("data".into(), snapshot())], &[]).unwrap();
        assert_eq!(db.load("data").unwrap(), Some(snapshot()));
    }
}
