//! The pack index, `<cache>/packs/index.db`: its SQLite schema, opening
//! it, setting a damaged one aside, rebuilding it from the packs alone, and
//! the table of damaged records that `fsck` names.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, params};

use super::record::{Header, PACK_HEADER, RECORD_HEADER, RECORD_MAGIC, RECORD_TRAILER, decode};
use super::{Packs, guard};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::lock::{self, Access};
use crate::fsutil::sqlite::{self, is_damage};
use crate::hash::Hash;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packs (
    id        INTEGER PRIMARY KEY,
    committed INTEGER NOT NULL   -- bytes of the pack that hold committed records
);
CREATE TABLE IF NOT EXISTS objects (
    hash   BLOB PRIMARY KEY,     -- 16 bytes, big-endian xxh3-128
    pack   INTEGER NOT NULL,
    offset INTEGER NOT NULL,     -- of the record's header
    stored INTEGER NOT NULL,     -- payload length
    size   INTEGER NOT NULL,     -- raw length
    codec  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retired (
    id INTEGER PRIMARY KEY       -- a pack gc replaced, whose file may remain
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,      -- 'next_pack': pack ids are never reused
    value INTEGER NOT NULL
);
";
const SCHEMA_VERSION: i64 = 2;

/// Records found damaged and dropped from `objects`, kept so that `fsck`
/// names them until the user has dealt with them (the object is in the
/// cache again, or its pack was rewritten or is gone). Made by every open:
/// an index of an earlier version gains it in place.
const DAMAGED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS damaged (
    pack   INTEGER NOT NULL,
    offset INTEGER NOT NULL,     -- where the damaged bytes start
    length INTEGER NOT NULL,     -- how many
    hash   BLOB,                 -- the object, when its header still names it
    reason TEXT NOT NULL,
    PRIMARY KEY (pack, offset)
);
";

/// A stretch of a pack found damaged: its records are not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub pack: PathBuf,
    pub offset: u64,
    pub length: u64,
    /// The object the damaged record held, when its header still says.
    pub hash: Option<Hash>,
    pub reason: String,
}

/// Why a packed record is dropped.
pub(super) const NOT_CHECKING_OUT: &str = "the record does not check out (checksum or hash)";
pub(super) const CUT_OFF: &str = "the pack ends before the record does (the pack is truncated)";
const UNREADABLE: &str = "bytes that hold no readable record";

impl Packs {
    /// Runs `f` on the index, opening it first; `None` when there are no
    /// packs. A damaged index, or one missing beside packs, is rebuilt.
    pub(super) fn with_index<R>(
        &self,
        f: impl Fn(&Connection) -> rusqlite::Result<R>,
    ) -> Result<Option<R>> {
        let mut index = guard(&self.index);
        if index.is_none() {
            if !self.index_path().exists() {
                if !self.any_pack()? {
                    return Ok(None);
                }
                self.warnings.push(format!(
                    "the pack index {} is missing; it is rebuilt from the packs",
                    self.index_path().display()
                ));
                self.rebuild_index(lock::DEFAULT_WAIT)?;
            }
            *index = Some(self.open_index()?);
        }
        let Some(conn) = index.as_ref() else {
            return Ok(None);
        };
        match f(conn) {
            Ok(r) => Ok(Some(r)),
            Err(e) if is_damage(&e) => {
                *index = None;
                self.set_aside_index(&e)?;
                let conn = index.insert(self.open_index()?);
                f(conn).map(Some).map_err(|e| self.db_error(e))
            }
            Err(e) => Err(self.db_error(e)),
        }
    }

    pub(super) fn db_error(&self, source: rusqlite::Error) -> Error {
        Error::State {
            path: self.index_path(),
            source,
        }
    }

    /// Opens the index (which must exist, or be made by the caller, who
    /// holds the cache lock); a damaged one is set aside and rebuilt.
    fn open_index(&self) -> Result<Connection> {
        match open_existing_db(&self.index_path()) {
            Ok(c) => Ok(c),
            Err(e) if is_damage(&e) => {
                self.set_aside_index(&e)?;
                open_existing_db(&self.index_path()).map_err(|e| self.db_error(e))
            }
            Err(e) => Err(self.db_error(e)),
        }
    }

    /// Sets a damaged index aside and rebuilds it, under the cache lock (a
    /// writer that holds it finishes first; its index may be sound again
    /// by then, and is then kept).
    fn set_aside_index(&self, e: &rusqlite::Error) -> Result<()> {
        let _lock = lock::lock(&self.lock_path, Access::Write(lock::DEFAULT_WAIT))?.0;
        let path = self.index_path();
        if path.exists() && open_existing_db(&path).is_ok() {
            return Ok(());
        }
        let aside = sqlite::set_aside(&path);
        self.warnings.push(format!(
            "the pack index {} cannot be read ({e}); it was set aside as {} and is rebuilt from the packs",
            path.display(),
            aside.display()
        ));
        self.rebuild_index_locked().map(|_| ())
    }

    /// The damaged records the index remembers, after forgetting those
    /// dealt with: the object is in the index again (fetched or added
    /// anew), or the pack is no longer one of the index's (rewritten by gc,
    /// or gone). `loose(hash)` says whether the cache holds the object loose.
    pub fn damage(&self, loose: impl Fn(Hash) -> bool) -> Result<Vec<Damage>> {
        let rows = self
            .with_index(|c| {
                c.execute(
                    "DELETE FROM damaged WHERE pack NOT IN (SELECT id FROM packs)
                     OR hash IN (SELECT hash FROM objects)",
                    [],
                )?;
                let mut st = c.prepare(
                    "SELECT pack, offset, length, hash, reason FROM damaged ORDER BY pack, offset",
                )?;
                let rows = st.query_map([], |r| {
                    let hash: Option<[u8; 16]> = r.get(3)?;
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, u64>(1)?,
                        r.get::<_, u64>(2)?,
                        hash.map(Hash::from_bytes),
                        r.get::<_, String>(4)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?
            .unwrap_or_default();
        let mut out = Vec::new();
        for (pack, offset, length, hash, reason) in rows {
            if hash.is_some_and(&loose) {
                let key = hash.map(|h| h.to_bytes());
                self.with_index(|c| {
                    c.execute(
                        "DELETE FROM damaged WHERE pack = ?1 AND offset = ?2 AND hash = ?3",
                        params![pack, offset, key.as_ref().map(|k| &k[..])],
                    )
                })?;
                continue;
            }
            out.push(Damage {
                pack: self.pack_path(pack),
                offset,
                length,
                hash,
                reason,
            });
        }
        Ok(out)
    }

    /// Finds packs shorter than the index says they are (cut off by a
    /// copy, a full disk, a bad sector...): the objects recorded past a
    /// pack's end are dropped from the index, as one damaged stretch, and
    /// the pack's committed length becomes the end of its last whole
    /// record. Returns how many objects each such pack lost.
    pub fn drop_truncated(&self, wait: Duration) -> Result<Vec<(PathBuf, usize)>> {
        let _lock = lock::lock(&self.lock_path, Access::Write(wait))?.0;
        let committed: Vec<(u32, u64)> = self
            .with_index(|c| {
                let mut st = c.prepare("SELECT id, committed FROM packs")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?
            .unwrap_or_default();
        let mut out = Vec::new();
        for (id, committed) in committed {
            let path = self.pack_path(id);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            if len >= committed {
                continue;
            }
            let lost = self
                .with_index(|c| {
                    let tx = c.unchecked_transaction()?;
                    let lost = tx.execute(
                        "DELETE FROM objects WHERE pack = ?1 AND offset + ?2 + stored > ?3",
                        params![id, (RECORD_HEADER + RECORD_TRAILER) as u64, len],
                    )?;
                    let end: u64 = tx.query_row(
                        "SELECT COALESCE(MAX(offset + ?2 + stored), ?3) FROM objects WHERE pack = ?1",
                        params![id, (RECORD_HEADER + RECORD_TRAILER) as u64, PACK_HEADER.len() as u64],
                        |r| r.get(0),
                    )?;
                    tx.execute(
                        "UPDATE packs SET committed = ?2 WHERE id = ?1",
                        params![id, end],
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO damaged (pack, offset, length, hash, reason)
                         VALUES (?1, ?2, ?3, NULL, ?4)",
                        params![
                            id,
                            end,
                            committed - end,
                            format!(
                                "the pack is truncated: it ends at byte {len} of {committed}, and the {lost} object(s) stored past that are lost"
                            )
                        ],
                    )?;
                    tx.commit()?;
                    Ok(lost)
                })?
                .unwrap_or(0);
            guard(&self.files).remove(&id);
            out.push((path, lost));
        }
        Ok(out)
    }

    /// Rebuilds the index from the packs alone, under the cache lock: every
    /// record whose checksum and hash check out is indexed (the first one
    /// wins when an object is in two packs), and each pack's committed
    /// length is where its last good record ends. Returns (objects, packs).
    pub fn rebuild_index(&self, wait: Duration) -> Result<(usize, usize)> {
        let _lock = lock::lock(&self.lock_path, Access::Write(wait))?.0;
        self.rebuild_index_locked()
    }

    /// Repairs pack `id`'s header, then indexes (in `conn`'s transaction)
    /// every sound record from byte `from` on that the index does not hold
    /// yet, and, with `Damaged::Recorded`, records every damaged stretch.
    /// Returns where the last good record ends, and how many records were
    /// indexed.
    pub(super) fn index_pack(
        &self,
        conn: &Connection,
        id: u32,
        from: u64,
        damage: Damaged,
    ) -> Result<(u64, usize)> {
        let path = self.pack_path(id);
        repair_header(&path)?;
        let mut found = 0;
        let bad = |offset: u64, length: u64, hash: Option<Hash>, reason: &str| {
            if damage == Damaged::Ignored {
                return Ok(());
            }
            let key = hash.map(|h| h.to_bytes());
            conn.prepare_cached(
                "INSERT OR REPLACE INTO damaged (pack, offset, length, hash, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                id,
                offset,
                length,
                key.as_ref().map(|k| &k[..]),
                reason
            ])?;
            Ok(())
        };
        let end = scan_pack(&path, from, bad, |offset, h| {
            found += conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO objects (hash, pack, offset, stored, size, codec)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    &h.hash.to_bytes()[..],
                    id,
                    offset,
                    h.stored,
                    h.size,
                    h.codec
                ])?;
            Ok(())
        })
        .map_err(|e| match e {
            ScanError::Io(e) => Error::io("read", &path, e),
            ScanError::Db(e) => self.db_error(e),
        })?;
        Ok((end, found))
    }

    /// The rebuild proper; the caller holds the cache lock and has closed
    /// its connection to the index.
    pub(super) fn rebuild_index_locked(&self) -> Result<(usize, usize)> {
        fs::create_dir_all(&self.dir).at("create the packs folder", &self.dir)?;
        let tmp = self.dir.join("index.db.rebuild");
        let _ = fs::remove_file(&tmp);
        sqlite::remove_side_files(&tmp);
        let conn = open_db(&tmp).map_err(|e| self.db_error(e))?;
        let ids = self.pack_ids()?;
        let mut objects = 0;
        {
            let tx = conn.unchecked_transaction().map_err(|e| self.db_error(e))?;
            for &id in &ids {
                let (committed, found) = self.index_pack(&tx, id, 0, Damaged::Recorded)?;
                objects += found;
                tx.execute(
                    "INSERT OR REPLACE INTO packs (id, committed) VALUES (?1, ?2)",
                    params![id, committed],
                )
                .map_err(|e| self.db_error(e))?;
            }
            let next = ids.iter().max().map_or(1, |m| m + 1);
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_pack', ?1)",
                [next],
            )
            .map_err(|e| self.db_error(e))?;
            tx.commit().map_err(|e| self.db_error(e))?;
        }
        drop(conn);
        let path = self.index_path();
        sqlite::remove_side_files(&path);
        fs::rename(&tmp, &path).at("write", &path)?;
        sqlite::remove_side_files(&tmp);
        Ok((objects, ids.len()))
    }
}

/// Opens an index that must exist (a reader never makes one).
fn open_existing_db(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    setup_db(conn)
}

pub(super) fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    setup_db(Connection::open(path)?)
}

fn setup_db(conn: Connection) -> rusqlite::Result<Connection> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // A committed batch must survive a power cut: its bytes were synced
    // before, and the rows that name them are synced here.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    } else if version != SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            Some(format!(
                "pack index schema {version}, expected {SCHEMA_VERSION}"
            )),
        ));
    }
    conn.execute_batch(DAMAGED_SCHEMA)?;
    // Reading a table proves the file is a database.
    conn.query_row("SELECT count(*) FROM packs", [], |r| r.get::<_, i64>(0))?;
    Ok(conn)
}

enum ScanError {
    Io(io::Error),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for ScanError {
    fn from(e: rusqlite::Error) -> Self {
        ScanError::Db(e)
    }
}

/// Whether `index_pack` records the damaged stretches it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Damaged {
    Recorded,
    /// Bytes past the committed length: an abandoned batch, not damage.
    Ignored,
}

/// Reads a pack from byte `from` (at least its header's end), calling
/// `each(offset, header)` for every record whose checksum and hash hold;
/// a damaged stretch is skipped by looking for the next record magic, and
/// told to `bad(offset, length, hash its header names, reason)`. The pack's
/// own header is not needed: records describe themselves. Reads with
/// `pread`, one record (and a 64 KiB search window) at a time. Returns
/// where the last good record ends (the header's end, at least).
fn scan_pack(
    path: &Path,
    from: u64,
    mut bad: impl FnMut(u64, u64, Option<Hash>, &str) -> Result<(), rusqlite::Error>,
    mut each: impl FnMut(u64, &Header) -> Result<(), ScanError>,
) -> Result<u64, ScanError> {
    let f = File::open(path).map_err(ScanError::Io)?;
    let len = f.metadata().map_err(ScanError::Io)?.len();
    let mut at = from.max(PACK_HEADER.len() as u64);
    let mut end = at;
    let mut head = [0u8; RECORD_HEADER];
    let mut buf = Vec::new();
    let mut window = vec![0u8; 1 << 16];
    while at + (RECORD_HEADER + RECORD_TRAILER) as u64 <= len {
        f.read_exact_at(&mut head, at).map_err(ScanError::Io)?;
        let parsed = Header::parse(&head);
        let mut why = UNREADABLE;
        if let Some(h) = &parsed {
            why = NOT_CHECKING_OUT;
            let total = h
                .stored
                .checked_add((RECORD_HEADER + RECORD_TRAILER) as u64);
            match total {
                Some(total) if at + total <= len => {
                    buf.resize(total as usize, 0);
                    f.read_exact_at(&mut buf, at).map_err(ScanError::Io)?;
                    if decode(&buf, h.hash).is_some() {
                        each(at, h)?;
                        at += total;
                        end = at;
                        continue;
                    }
                }
                Some(_) => why = CUT_OFF,
                None => {}
            }
        }
        // Resynchronise on the next magic after `at`.
        let mut next = None;
        let mut probe = at + 1;
        while next.is_none() && probe + RECORD_MAGIC.len() as u64 <= len {
            let n = window.len().min((len - probe) as usize);
            f.read_exact_at(&mut window[..n], probe)
                .map_err(ScanError::Io)?;
            next = window[..n]
                .windows(RECORD_MAGIC.len())
                .position(|w| w == RECORD_MAGIC)
                .map(|p| probe + p as u64);
            // Overlap by the magic's length less one, not to miss one cut
            // by the window's edge.
            probe += (n as u64)
                .saturating_sub(RECORD_MAGIC.len() as u64 - 1)
                .max(1);
        }
        let stop = next.unwrap_or(len);
        bad(at, stop - at, parsed.map(|h| h.hash), why)?;
        match next {
            Some(n) => at = n,
            None => {
                at = len;
                break;
            }
        }
    }
    if at < len {
        // A tail too short to hold a record.
        bad(at, len - at, None, CUT_OFF)?;
    }
    Ok(end)
}

/// Puts a pack's 16-byte header back if it was damaged (no record can
/// start inside it, so nothing else is touched).
fn repair_header(path: &Path) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at("write", path)?;
    let mut head = [0u8; 16];
    if f.read_exact_at(&mut head, 0).is_err() || head != PACK_HEADER {
        f.write_all_at(&PACK_HEADER, 0).at("write", path)?;
        f.sync_data().at("write", path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::PackWriter;
    use super::super::tests::obj;
    use super::*;
    use crate::cache::pack::{Found, Record};

    #[test]
    fn a_stale_index_or_a_damaged_header_loses_no_committed_record() {
        let t = tempfile::tempdir().unwrap();
        let packs = Packs::new(t.path());
        let wait = Duration::from_secs(1);
        let h = |i: usize| Hash::of_bytes(&obj(i));
        let mut w = PackWriter::open(&packs, wait).unwrap();
        for i in 0..30 {
            w.add(Record::encode(h(i), obj(i), true)).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let old = fs::read(packs.index_path()).unwrap();
        let mut w = PackWriter::open(&packs, wait).unwrap();
        for i in 30..60 {
            w.add(Record::encode(h(i), obj(i), true)).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        // An index older than the packs (a restored copy).
        for side in ["index.db-wal", "index.db-shm"] {
            let _ = fs::remove_file(packs.dir().join(side));
        }
        fs::write(packs.index_path(), &old).unwrap();
        *guard(&packs.index) = None;
        drop(PackWriter::open(&packs, wait).unwrap());
        for i in 0..60 {
            assert!(
                matches!(packs.read(h(i)).unwrap(), Found::Bytes(b) if b == obj(i)),
                "object {i} lost to a stale index"
            );
        }
        // A damaged pack header, and no index.
        let path = packs.pack_path(1);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", 2).unwrap();
        fs::remove_file(packs.index_path()).unwrap();
        *guard(&packs.index) = None;
        let (n, _) = packs.rebuild_index(wait).unwrap();
        assert_eq!(n, 60);
        let mut head = [0u8; 16];
        File::open(&path)
            .unwrap()
            .read_exact_at(&mut head, 0)
            .unwrap();
        assert_eq!(head, PACK_HEADER, "the header is put back");
        drop(PackWriter::open(&packs, wait).unwrap());
        assert_eq!(packs.list().unwrap().len(), 60);
    }
}
